"""Analysis jobs and results. The job row is the source of truth for an image's analysis:

    queued --claim--> running --results--> succeeded
      ^                  |
      |                  +--attempt failed--> queued (a retry is scheduled by the broker)
      |                  +--last attempt failed--> failed (dead-lettered)
      +------------- retry / re-analyse ---------------+

Messages carry only the job id; a message for a job that is no longer queued or running (the
image was deleted, a duplicate delivery after success) is acknowledged and dropped.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from pydantic import ValidationError
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from iap.analysis.analysers import producing
from iap.analysis.analysers.base import AnalyserResult
from iap.analysis.errors import JobNotFailed, JobNotFound
from iap.analysis.models import AnalysisJob, AnalysisResult, JobStatus
from iap.analysis.pipeline import Outcome
from iap.auth.models import User
from iap.cache import Cache
from iap.db import utcnow
from iap.images.models import Image
from iap.images.service import (
    delete_image_files,
    derivatives_prefix,
    get_owned_image,
    invalidate,
)
from iap.storage import BlobStorage

R = TypeVar("R", bound=AnalyserResult)


def derivative_key(image_id: uuid.UUID, name: str) -> str:
    return f"{derivatives_prefix(image_id)}{name}"


@dataclass(frozen=True)
class Ticket:
    """What a worker needs to process one claimed job."""

    job_id: uuid.UUID
    image_id: uuid.UUID
    user_id: uuid.UUID
    storage_key: str
    analysers: list[str] | None
    attempt: int


async def claim(session: AsyncSession, job_id: uuid.UUID) -> Ticket | None:
    """Mark the job running and count the attempt; None if there is nothing to do."""
    now = utcnow()
    claimed = await session.execute(
        update(AnalysisJob)
        .where(
            AnalysisJob.id == job_id,
            AnalysisJob.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
        )
        .values(status=JobStatus.RUNNING, started_at=now, attempts=AnalysisJob.attempts + 1)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        await session.rollback()
        return None
    row = (
        await session.execute(
            select(AnalysisJob, Image.user_id, Image.storage_key)
            .join(Image, Image.id == AnalysisJob.image_id)
            .where(AnalysisJob.id == job_id)
        )
    ).one()
    job, user_id, storage_key = row
    await session.commit()
    return Ticket(job.id, job.image_id, user_id, storage_key, job.analysers, job.attempts)


async def record_success(
    session: AsyncSession,
    storage: BlobStorage,
    cache: Cache,
    ticket: Ticket,
    outcomes: list[Outcome],
) -> None:
    """Store derivatives, then results, then mark the job succeeded (in that order, so a
    succeeded job always has its files). If the image was deleted meanwhile, its new files go
    too and nothing is recorded."""
    for outcome in outcomes:
        for name, derived in outcome.files.items():
            await storage.put(
                derivative_key(ticket.image_id, name),
                io.BytesIO(derived.data),
                derived.content_type,
            )
    if await session.get(Image, ticket.image_id) is None:
        await delete_image_files(storage, ticket.image_id, ticket.storage_key)
        return
    try:
        for outcome in outcomes:
            await session.execute(
                delete(AnalysisResult).where(
                    AnalysisResult.image_id == ticket.image_id,
                    AnalysisResult.analyser == outcome.analyser,
                    AnalysisResult.version == outcome.version,
                )
            )
            session.add(
                AnalysisResult(
                    image_id=ticket.image_id,
                    analyser=outcome.analyser,
                    version=outcome.version,
                    status=outcome.status,
                    result=outcome.result,
                    error=outcome.error,
                    duration_ms=round(outcome.duration_ms, 3),
                )
            )
        await session.execute(
            update(AnalysisJob)
            .where(AnalysisJob.id == ticket.job_id)
            .values(status=JobStatus.SUCCEEDED, finished_at=utcnow(), error=None)
        )
        await session.commit()
    except IntegrityError:
        await session.rollback()
        if await session.get(Image, ticket.image_id) is not None:
            # Not a deleted image: another run of this job (a message delivered twice)
            # recorded the same results first. Its results stand, and the files are the
            # image's own: nothing to undo.
            return
        # The image was deleted after the check above (its delete won the row lock): the
        # results have nothing to belong to, and the new files must go with the rest.
        await delete_image_files(storage, ticket.image_id, ticket.storage_key)
        return
    await invalidate(cache, ticket.image_id)


async def record_failure(
    session: AsyncSession, cache: Cache, job_id: uuid.UUID, error: str, *, final: bool
) -> tuple[uuid.UUID, uuid.UUID] | None:
    """Note a failed attempt; the last one marks the job failed. Returns (image, owner) ids."""
    row = (
        await session.execute(
            select(AnalysisJob, Image.user_id)
            .join(Image, Image.id == AnalysisJob.image_id)
            .where(AnalysisJob.id == job_id)
        )
    ).one_or_none()
    if row is None:
        return None
    job, user_id = row
    job.error = error[:2000]
    if final:
        job.status = JobStatus.FAILED
        job.finished_at = utcnow()
    elif job.status == JobStatus.RUNNING:
        job.status = JobStatus.QUEUED  # the broker holds the retry
    await session.commit()
    await invalidate(cache, job.image_id)
    return job.image_id, user_id


async def request_analysis(
    session: AsyncSession,
    cache: Cache,
    user: User,
    image_id: uuid.UUID,
    analysers: list[str] | None,
) -> AnalysisJob:
    """Queue the image for (re-)analysis by all or the named analysers."""
    image = await get_owned_image(session, user, image_id)
    job = image.job
    if job is None:
        job = AnalysisJob(image_id=image.id)
        session.add(job)
    reset_job(job, analysers)
    await session.commit()
    await invalidate(cache, image.id)
    return job


def reset_job(job: AnalysisJob, analysers: list[str] | None) -> None:
    job.status = JobStatus.QUEUED
    job.analysers = analysers
    job.attempts = 0
    job.error = None
    job.queued_at = utcnow()
    job.enqueued_at = None
    job.started_at = None
    job.finished_at = None


async def results_of(session: AsyncSession, image_id: uuid.UUID) -> list[AnalysisResult]:
    """The newest version's result of every analyser that ran on the image."""
    newest = (
        select(AnalysisResult.analyser, func.max(AnalysisResult.version).label("version"))
        .where(AnalysisResult.image_id == image_id)
        .group_by(AnalysisResult.analyser)
        .subquery()
    )
    rows = await session.scalars(
        select(AnalysisResult)
        .join(
            newest,
            (AnalysisResult.analyser == newest.c.analyser)
            & (AnalysisResult.version == newest.c.version),
        )
        .where(AnalysisResult.image_id == image_id)
        .order_by(AnalysisResult.analyser)
    )
    return list(rows)


async def latest_results(
    session: AsyncSession, image_ids: list[uuid.UUID], model: type[R]
) -> dict[uuid.UUID, R]:
    """Per image, the newest succeeded result of the analyser producing ``model``; results of
    an older version that ``model`` no longer reads are left out."""
    if not image_ids:
        return {}
    rows = await session.execute(
        select(AnalysisResult.image_id, AnalysisResult.result)
        .where(
            AnalysisResult.image_id.in_(image_ids),
            AnalysisResult.analyser == producing(model).name,
            AnalysisResult.status == "succeeded",
        )
        .order_by(AnalysisResult.version)
    )
    found: dict[uuid.UUID, R] = {}
    for image_id, result in rows:
        try:
            found[image_id] = model.model_validate(result)  # newer versions overwrite older
        except ValidationError:
            continue  # an older version's shape: not this model's result
    return found


@dataclass(frozen=True)
class Queued:
    """A job to hand to the broker, and whom to tell."""

    job_id: uuid.UUID
    image_id: uuid.UUID
    user_id: uuid.UUID


async def mark_enqueued(session: AsyncSession, job_ids: list[uuid.UUID]) -> None:
    if job_ids:
        await session.execute(
            update(AnalysisJob).where(AnalysisJob.id.in_(job_ids)).values(enqueued_at=utcnow())
        )
        await session.commit()


async def stale_jobs(
    session: AsyncSession, *, untouched_for: timedelta, running_for: timedelta, limit: int = 500
) -> list[uuid.UUID]:
    """Jobs the broker may have lost: queued but not handed over recently, or running for
    longer than any attempt may take (its worker died without the broker noticing)."""
    now = utcnow()
    rows = await session.scalars(
        select(AnalysisJob.id)
        .where(
            or_(
                (AnalysisJob.status == JobStatus.QUEUED)
                & (
                    AnalysisJob.enqueued_at.is_(None)
                    | (AnalysisJob.enqueued_at < now - untouched_for)
                ),
                (AnalysisJob.status == JobStatus.RUNNING)
                & (AnalysisJob.started_at < now - running_for)
                & (
                    AnalysisJob.enqueued_at.is_(None)
                    | (AnalysisJob.enqueued_at < now - running_for)
                ),
            )
        )
        .order_by(AnalysisJob.queued_at)
        .limit(limit)
    )
    return list(rows)


async def failed_jobs(
    session: AsyncSession, *, page: int, limit: int
) -> tuple[int, list[tuple[AnalysisJob, Image]]]:
    where = AnalysisJob.status == JobStatus.FAILED
    total = await session.scalar(select(func.count()).select_from(AnalysisJob).where(where)) or 0
    rows = await session.execute(
        select(AnalysisJob, Image)
        .join(Image, Image.id == AnalysisJob.image_id)
        .where(where)
        .order_by(AnalysisJob.finished_at.desc(), AnalysisJob.id)
        .offset((page - 1) * limit)
        .limit(limit)
    )
    return total, [(job, image) for job, image in rows]


async def retry_failed(
    session: AsyncSession, cache: Cache, job_ids: list[uuid.UUID] | None
) -> list[Queued]:
    """Put failed jobs (the given ones, or all) back in the queue."""
    query = (
        select(AnalysisJob, Image.user_id)
        .join(Image, Image.id == AnalysisJob.image_id)
        .where(AnalysisJob.status == JobStatus.FAILED)
    )
    if job_ids is not None:
        query = query.where(AnalysisJob.id.in_(job_ids))
    rows = (await session.execute(query)).all()
    for job, _ in rows:
        reset_job(job, job.analysers)
    await session.commit()
    await invalidate(cache, *(job.image_id for job, _ in rows))
    return [Queued(job.id, job.image_id, user_id) for job, user_id in rows]


async def retry_job(session: AsyncSession, cache: Cache, job_id: uuid.UUID) -> list[Queued]:
    """Put one failed job back in the queue (its attempts start from zero)."""
    job = await session.get(AnalysisJob, job_id)
    if job is None:
        raise JobNotFound()
    if job.status != JobStatus.FAILED:
        raise JobNotFailed(f"The job is {job.status.value}; only failed jobs can be retried.")
    return await retry_failed(session, cache, [job_id])
