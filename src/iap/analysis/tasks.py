"""The ``analyse_image`` task: its record, its handler, and how jobs are handed to it.

The handler runs in a worker thread (see ``iap.worker``): its I/O goes to the worker's event
loop through ``run``, while the CPU-bound pass (decode + analysers) stays in the thread.
"""

from __future__ import annotations

import io
import logging
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from iap.analysis import service
from iap.analysis.analysers import ANALYSERS, by_name
from iap.analysis.pipeline import Outcome, run_pass
from iap.config import Settings
from iap.events.bus import make_event
from iap.images.service import invalidate
from iap.observability.metrics import observe_job, observe_pass
from iap.queue import Notifies, Recovery, Runner, Task, TaskContext, TaskLimits, TaskQueue

log = logging.getLogger(__name__)


class AnalysisHandler:
    """Runs one attempt at one analysis job, and records failed attempts."""

    def __init__(self, context: TaskContext, run: Runner) -> None:
        self.context = context
        self._on_loop = run

    def run(self, job_id: str) -> None:
        """Raising means: retry later."""
        ticket = self._on_loop(self._claim(uuid.UUID(job_id)))
        if ticket is None:
            log.info("job %s is not waiting for analysis any more; message dropped", job_id)
            observe_job("dropped")
            return
        self._announce(ticket.user_id, "analysis.started", ticket, attempt=ticket.attempt)
        data = self._on_loop(self.context.storage.read_all(ticket.storage_key))
        disabled = self.context.settings.disabled_analyser_names
        chosen = ANALYSERS if ticket.analysers is None else by_name(ticket.analysers)
        analysers = [a for a in chosen if a.name not in disabled]
        decode_ms, outcomes = run_pass(io.BytesIO(data), analysers)
        del data
        observe_pass(decode_ms, outcomes)
        self._on_loop(self._record_success(ticket, outcomes))
        observe_job("succeeded")
        failed = [o.analyser for o in outcomes if o.status == "failed"]
        self._announce(ticket.user_id, "analysis.succeeded", ticket, failed_analysers=failed)
        log.info(
            "job %s done: image %s, attempt %d, decode %.0f ms, %s",
            job_id,
            ticket.image_id,
            ticket.attempt,
            decode_ms,
            ", ".join(f"{o.analyser}={o.status}({o.duration_ms:.0f} ms)" for o in outcomes),
        )

    def failed(self, job_id: str, error: str, final: bool) -> None:
        log.warning(
            "job %s attempt failed%s: %s", job_id, " for the last time" if final else "", error
        )
        observe_job("failed" if final else "retrying")
        owner = self._on_loop(self._record_failure(uuid.UUID(job_id), error, final))
        if owner is not None:
            image_id, user_id = owner
            kind = "analysis.failed" if final else "analysis.retrying"
            event = make_event(kind, image_id=image_id, job_id=job_id, error=error)
            self._on_loop(self.context.notifier.notify(user_id, event))

    def _announce(
        self, user_id: uuid.UUID, kind: str, ticket: service.Ticket, **fields: Any
    ) -> None:
        event = make_event(kind, image_id=ticket.image_id, job_id=ticket.job_id, **fields)
        self._on_loop(self.context.notifier.notify(user_id, event))

    async def _claim(self, job_id: uuid.UUID) -> service.Ticket | None:
        async with self.context.sessions() as session:
            ticket = await service.claim(session, job_id)
        if ticket is not None:
            await invalidate(self.context.cache, ticket.image_id)  # readers see "running"
        return ticket

    async def _record_success(self, ticket: service.Ticket, outcomes: list[Outcome]) -> None:
        async with self.context.sessions() as session:
            await service.record_success(
                session, self.context.storage, self.context.cache, ticket, outcomes
            )

    async def _record_failure(
        self, job_id: uuid.UUID, error: str, final: bool
    ) -> tuple[uuid.UUID, uuid.UUID] | None:
        async with self.context.sessions() as session:
            return await service.record_failure(
                session, self.context.cache, job_id, error, final=final
            )


async def _lost_jobs(
    session: AsyncSession, settings: Settings, everything: bool
) -> list[uuid.UUID]:
    if everything:  # an in-process broker starts empty: nothing it held survived
        return await service.stale_jobs(
            session, untouched_for=timedelta(0), running_for=timedelta(0)
        )
    return await service.stale_jobs(
        session,
        untouched_for=timedelta(seconds=settings.reconcile_after_seconds),
        # A running job past twice its time limit has lost its worker.
        running_for=timedelta(seconds=settings.analysis_time_limit_seconds * 2 + 60),
    )


def _limits(settings: Settings) -> TaskLimits:
    return TaskLimits(
        max_retries=settings.analysis_max_retries,
        min_backoff_ms=settings.analysis_min_backoff_ms,
        max_backoff_ms=settings.analysis_max_backoff_ms,
        time_limit_ms=settings.analysis_time_limit_seconds * 1000,
    )


ANALYSE_IMAGE = Task(
    name="analyse_image",
    queue="",
    limits=_limits,
    handler=AnalysisHandler,
    recovery=Recovery(lost=_lost_jobs, resent=service.mark_enqueued),
)


async def dispatch(
    session: AsyncSession, queue: TaskQueue, notifier: Notifies, jobs: list[service.Queued]
) -> None:
    """Tell the owners their jobs are queued, then hand the jobs to the broker and note when
    (in that order, so that "queued" never arrives after a fast worker's "started"). Jobs the
    broker refuses stay queued in the database for the reconciler."""
    for job in jobs:
        event = make_event("analysis.queued", image_id=job.image_id, job_id=job.job_id)
        await notifier.notify(job.user_id, event)
    sent = await queue.enqueue(ANALYSE_IMAGE, [job.job_id for job in jobs])
    await service.mark_enqueued(session, sent)
