"""Analysis jobs and results. The job row is the source of truth for an image's analysis:

    queued --claim--> running --results--> succeeded
      ^                  |
      |                  +--attempt failed--> queued (a retry is scheduled by the broker)
      |                  +--last attempt failed--> failed (dead-lettered)
      +------------- retry / re-analyse ---------------+

A job runs at most once at a time. Claiming it starts a *run* (a new ``run_id``) whose worker
renews ``heartbeat_at``; only that run records the job's end. A run whose heartbeat is older
than the lease lost its worker (killed, cut off), and the next message for the job takes it
over. Re-analysis asked for while a run is in progress does not start a second one: it is
noted on the job (``rerun_pending``, the analysers merged) and queued when the run ends.

Messages carry only the job id; a message for a job that is no longer queued or running (the
image was deleted, a duplicate delivery after success) is acknowledged and dropped, and one for
a job another worker is running comes back when that run's lease would have run out.
"""

from __future__ import annotations

import enum
import io
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from pydantic import ValidationError
from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from iap.analysis.analysers import ANALYSERS, producing
from iap.analysis.analysers.base import AnalyserResult
from iap.analysis.errors import JobNotFailed, JobNotFound
from iap.analysis.models import AnalysisJob, AnalysisResult, JobStatus
from iap.analysis.pipeline import Outcome
from iap.auth.models import User
from iap.cache import Cache
from iap.db import utcnow
from iap.finding import service as finding
from iap.finding.indexing import reindex
from iap.finding.words import ANALYSED
from iap.images.models import Image
from iap.images.service import (
    delete_image_files,
    derivatives_prefix,
    get_owned_image,
    invalidate,
)
from iap.people import service as people
from iap.storage import BlobStorage

R = TypeVar("R", bound=AnalyserResult)


def derivative_key(image_id: uuid.UUID, name: str) -> str:
    return f"{derivatives_prefix(image_id)}{name}"


@dataclass(frozen=True)
class Ticket:
    """What a worker needs to process one claimed job: one run of it."""

    job_id: uuid.UUID
    image_id: uuid.UUID
    user_id: uuid.UUID
    storage_key: str
    analysers: list[str] | None
    attempt: int
    run_id: uuid.UUID


@dataclass(frozen=True)
class Busy:
    """Another worker's run holds the job; its lease runs out in ``seconds`` at the latest."""

    seconds: float


def _lease_lapsed(now: datetime, lease: timedelta) -> ColumnElement[bool]:
    return AnalysisJob.heartbeat_at.is_(None) | (AnalysisJob.heartbeat_at < now - lease)


def _is_running(job: AnalysisJob, now: datetime, lease: timedelta) -> bool:
    """A run holds the job: it is running and its worker showed life within the lease."""
    return (
        job.status == JobStatus.RUNNING
        and job.heartbeat_at is not None
        and job.heartbeat_at >= now - lease
    )


async def claim(session: AsyncSession, job_id: uuid.UUID, lease: timedelta) -> Ticket | Busy | None:
    """Start a run of the job and count the attempt. ``Busy`` if a live run holds it; None if
    there is nothing to do (finished, or the image is gone)."""
    now = utcnow()
    run_id = uuid.uuid4()
    claimed = await session.execute(
        update(AnalysisJob)
        .where(
            AnalysisJob.id == job_id,
            (AnalysisJob.status == JobStatus.QUEUED)
            | ((AnalysisJob.status == JobStatus.RUNNING) & _lease_lapsed(now, lease)),
        )
        .values(
            status=JobStatus.RUNNING,
            run_id=run_id,
            started_at=now,
            heartbeat_at=now,
            finished_at=None,
            attempts=AnalysisJob.attempts + 1,
        )
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        held = await session.scalar(
            select(AnalysisJob.heartbeat_at).where(
                AnalysisJob.id == job_id, AnalysisJob.status == JobStatus.RUNNING
            )
        )
        await session.rollback()
        if held is None:
            return None
        return Busy(max(0.0, (held + lease - now).total_seconds()))
    row = (
        await session.execute(
            select(AnalysisJob, Image.user_id, Image.storage_key)
            .join(Image, Image.id == AnalysisJob.image_id)
            .where(AnalysisJob.id == job_id)
        )
    ).one()
    job, user_id, storage_key = row
    await session.commit()
    return Ticket(job.id, job.image_id, user_id, storage_key, job.analysers, job.attempts, run_id)


async def renew(session: AsyncSession, ticket: Ticket) -> bool:
    """The run's heartbeat; False when the run has lost the job (image deleted, taken over)."""
    renewed = await session.execute(
        update(AnalysisJob)
        .where(AnalysisJob.id == ticket.job_id, AnalysisJob.run_id == ticket.run_id)
        .values(heartbeat_at=utcnow())
    )
    await session.commit()
    return bool(renewed.rowcount == 1)  # type: ignore[attr-defined]


async def holds(session: AsyncSession, ticket: Ticket) -> bool:
    """Whether the run still holds its job (read only: checked between a pass's steps)."""
    found = await session.scalar(
        select(AnalysisJob.id).where(
            AnalysisJob.id == ticket.job_id, AnalysisJob.run_id == ticket.run_id
        )
    )
    return found is not None


async def _own_run(
    session: AsyncSession, job_id: uuid.UUID, run_id: uuid.UUID | None, lease: timedelta
) -> AnalysisJob | None:
    """The job, locked, if the run may record its end: it is that run's, or (``run_id``
    None: an attempt that failed before it could claim) no live run holds it."""
    job = await _locked_job(session, AnalysisJob.id == job_id)
    if job is None:
        return None
    if run_id is not None:
        return job if job.run_id == run_id and job.status == JobStatus.RUNNING else None
    # An attempt that never claimed may only speak for a job still waiting for a run (not a
    # finished one: a duplicate message for a succeeded job must not turn it failed).
    waiting = job.status == JobStatus.QUEUED or (
        job.status == JobStatus.RUNNING and not _is_running(job, utcnow(), lease)
    )
    return job if waiting else None


async def _locked_job(session: AsyncSession, criterion: ColumnElement[bool]) -> AnalysisJob | None:
    """The job, read after taking its lock (held until the transaction ends), so concurrent
    changes to one job take turns instead of overwriting each other. The no-op write takes
    the row's lock on PostgreSQL and the database's write lock on SQLite, where SELECT ... FOR
    UPDATE does nothing and a plain read would see a state another writer is about to change."""
    await session.execute(
        update(AnalysisJob)
        .where(criterion)
        .values(status=AnalysisJob.status)
        .execution_options(synchronize_session=False)
    )
    return await session.scalar(
        select(AnalysisJob).where(criterion).execution_options(populate_existing=True)
    )


def _end_run(job: AnalysisJob, status: JobStatus) -> bool:
    """End the job's run with ``status``, or queue the re-run asked for meanwhile (True)."""
    if job.rerun_pending:
        reset_job(job, job.rerun_analysers)
        return True
    job.status = status
    job.finished_at = utcnow()
    job.run_id = None
    job.heartbeat_at = None
    return False


class RunEnd(enum.Enum):
    RECORDED = "recorded"  # the job is finished
    REQUEUED = "requeued"  # ... and a re-run asked for meanwhile is queued: dispatch it
    SUPERSEDED = "superseded"  # the run had lost the job (taken over): nothing recorded
    GONE = "gone"  # the image was deleted: nothing recorded, its files removed


async def record_success(
    session: AsyncSession,
    storage: BlobStorage,
    cache: Cache,
    ticket: Ticket,
    outcomes: list[Outcome],
) -> RunEnd:
    """Store derivatives, then results, then mark the job succeeded (in that order, so a
    succeeded job always has its files), if the run still holds the job. If the image was
    deleted meanwhile, its new files go too and nothing is recorded."""
    for outcome in outcomes:
        for name, derived in outcome.files.items():
            await storage.put(
                derivative_key(ticket.image_id, name),
                io.BytesIO(derived.data),
                derived.content_type,
            )
    # The image first, then the job: the order a delete takes them in (``lock_images``), or
    # PostgreSQL finds a deadlock between this and a delete. A key-share lock keeps the image
    # from being deleted under the new results without blocking other readers or writers.
    image_lives = await session.scalar(
        select(Image.id)
        .where(Image.id == ticket.image_id)
        .with_for_update(read=True, key_share=True)
    )
    if image_lives is None:
        await session.rollback()
        await delete_image_files(storage, ticket.image_id, ticket.storage_key)
        return RunEnd.GONE
    try:
        job = await _own_run(session, ticket.job_id, ticket.run_id, timedelta(0))
        if job is None:
            # Another run took the job over; it writes the same files and its own results.
            await session.rollback()
            return RunEnd.SUPERSEDED
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
        for outcome in outcomes:
            if outcome.status != "succeeded" or not outcome.result:
                continue
            if outcome.analyser == "hashes":
                await finding.index_hashes(session, ticket.image_id, ticket.user_id, outcome.result)
            elif outcome.analyser == "faces":
                await people.record_faces(session, ticket.image_id, ticket.user_id, outcome.result)
        if any(outcome.analyser in ANALYSED for outcome in outcomes):
            image = await session.get(Image, ticket.image_id)
            if image is not None:
                await reindex(session, image)
        job.error = None
        requeued = _end_run(job, JobStatus.SUCCEEDED)
        await session.commit()
    except IntegrityError:
        await session.rollback()
        if await session.get(Image, ticket.image_id) is not None:
            # Not a deleted image: another run recorded the same results first (the job's
            # lock makes this unexpected). Its results stand, and the files are the image's
            # own: nothing to undo.
            return RunEnd.SUPERSEDED
        # The image was deleted after the check above (its delete won the row lock): the
        # results have nothing to belong to, and the new files must go with the rest.
        await delete_image_files(storage, ticket.image_id, ticket.storage_key)
        return RunEnd.GONE
    await invalidate(cache, ticket.image_id)
    return RunEnd.REQUEUED if requeued else RunEnd.RECORDED


@dataclass(frozen=True)
class Failure:
    image_id: uuid.UUID
    user_id: uuid.UUID
    requeued: bool  # a re-run asked for during the run is queued: dispatch it


async def record_failure(
    session: AsyncSession,
    cache: Cache,
    job_id: uuid.UUID,
    error: str,
    *,
    final: bool,
    run_id: uuid.UUID | None,
    lease: timedelta,
) -> Failure | None:
    """Note a failed attempt of the run ``run_id`` (None: it failed before claiming the job);
    the last one marks the job failed. None if the attempt had no say over the job any more
    (the image is gone, or another run holds it)."""
    job = await _own_run(session, job_id, run_id, lease)
    user_id = None
    if job is not None:
        user_id = await session.scalar(select(Image.user_id).where(Image.id == job.image_id))
    if job is None or user_id is None:
        await session.rollback()
        return None
    job.error = error[:2000]
    requeued = False
    if final:
        requeued = _end_run(job, JobStatus.FAILED)
    elif job.status == JobStatus.RUNNING:
        job.status = JobStatus.QUEUED  # the broker holds the retry
        job.run_id = None
        job.heartbeat_at = None
    await session.commit()
    await invalidate(cache, job.image_id)
    return Failure(job.image_id, user_id, requeued)


def merge_analysers(first: list[str] | None, second: list[str] | None) -> list[str] | None:
    """Both requests' analysers, in the registry's order (None: every analyser)."""
    if first is None or second is None:
        return None
    wanted = set(first) | set(second)
    return [analyser.name for analyser in ANALYSERS if analyser.name in wanted]


async def request_analysis(
    session: AsyncSession,
    cache: Cache,
    user: User,
    image_id: uuid.UUID,
    analysers: list[str] | None,
    lease: timedelta,
) -> tuple[AnalysisJob, bool]:
    """Queue the image for (re-)analysis by all or the named analysers. Returns the job and
    whether a message must be sent for it.

    While a run is in progress, the request is noted for after it (requests meanwhile merge).
    A job still waiting for its first attempt takes the new analysers into that attempt."""
    image = await get_owned_image(session, user, image_id)
    job = await _locked_job(session, AnalysisJob.image_id == image.id)
    send = True
    if job is None:
        job = AnalysisJob(image_id=image.id)
        session.add(job)
        reset_job(job, analysers)
    elif _is_running(job, utcnow(), lease):
        pending = job.rerun_analysers if job.rerun_pending else analysers
        job.rerun_analysers = merge_analysers(pending, analysers)
        job.rerun_pending = True
        send = False
    elif job.status == JobStatus.QUEUED and job.attempts == 0:
        job.analysers = merge_analysers(job.analysers, analysers)
        send = job.enqueued_at is None  # else its message is on its way
    elif job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        # Unfinished (awaiting a retry, or its run's worker was lost): start over, keeping
        # what it was to do and any re-run already promised.
        unfinished = merge_analysers(job.analysers, analysers)
        if job.rerun_pending:
            unfinished = merge_analysers(unfinished, job.rerun_analysers)
        reset_job(job, unfinished)
    else:
        reset_job(job, analysers)
    await session.commit()
    await invalidate(cache, image.id)
    return job, send


def reset_job(job: AnalysisJob, analysers: list[str] | None) -> None:
    job.status = JobStatus.QUEUED
    job.analysers = analysers
    job.attempts = 0
    job.error = None
    job.queued_at = utcnow()
    job.enqueued_at = None
    job.started_at = None
    job.finished_at = None
    job.run_id = None
    job.heartbeat_at = None
    job.rerun_pending = False
    job.rerun_analysers = None


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
    session: AsyncSession,
    *,
    untouched_for: timedelta,
    running_for: timedelta,
    unsent_for: timedelta | None = None,
    limit: int = 500,
) -> list[uuid.UUID]:
    """Jobs the broker may have lost: queued but not handed over recently (never handed over
    for ``unsent_for``: one just committed is being sent right now), or running with no
    heartbeat for ``running_for`` (its worker died without the broker noticing)."""
    now = utcnow()
    unsent_for = untouched_for if unsent_for is None else unsent_for
    rows = await session.scalars(
        select(AnalysisJob.id)
        .where(
            or_(
                (AnalysisJob.status == JobStatus.QUEUED)
                & (
                    (AnalysisJob.enqueued_at.is_(None) & (AnalysisJob.queued_at < now - unsent_for))
                    | (AnalysisJob.enqueued_at < now - untouched_for)
                ),
                (AnalysisJob.status == JobStatus.RUNNING)
                & _lease_lapsed(now, running_for)
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
