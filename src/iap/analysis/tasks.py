"""The ``analyse_image`` task: its record, its handler, and how jobs are handed to it.

The handler runs in a worker thread (see ``iap.worker``): its I/O goes to the worker's event
loop through ``run``, while the CPU-bound pass (decode + analysers) stays in the thread, or,
for the embedded worker, goes to a child process (``iap.analysis.pass_pool``) that the thread
waits on, so that the pass never holds the API's event loop up.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import threading
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from iap.analysis import service
from iap.analysis.analysers import ANALYSERS, by_name
from iap.analysis.pipeline import Outcome, PassStopped, run_pass
from iap.config import Settings
from iap.events.bus import make_event
from iap.images.service import invalidate
from iap.observability.metrics import observe_job, observe_pass
from iap.people.tasks import CLUSTER_FACES
from iap.queue import Notifies, Recovery, Runner, Task, TaskContext, TaskLimits, TaskQueue

log = logging.getLogger(__name__)


class AnalysisHandler:
    """Runs one attempt at one analysis job (one run of it), and records failed attempts.

    While the pass works in this thread, a heartbeat on the worker's loop renews the run's
    lease; between the pass's steps the run checks that it still holds the job, and stops
    early if not (the image was deleted, or the run was presumed dead and taken over)."""

    def __init__(self, context: TaskContext, run: Runner) -> None:
        self.context = context
        self._on_loop = run
        # The run this thread is in, for ``failed`` (Dramatiq calls it in the same thread).
        self._current = threading.local()

    @property
    def _lease(self) -> timedelta:
        return timedelta(seconds=self.context.settings.analysis_lease_seconds)

    def run(self, job_id: str) -> None:
        """Raising means: retry later."""
        self._current.ticket = None
        claimed = self._on_loop(self._claim(uuid.UUID(job_id)))
        if isinstance(claimed, service.Busy):
            # Another worker runs the job. Come back when its lease would have run out: if
            # that worker died, this message takes the job over then.
            delay_ms = int(claimed.seconds * 1000) + 1000
            log.info("job %s is running elsewhere; looking again in %d ms", job_id, delay_ms)
            self._on_loop(
                self.context.queue.enqueue(ANALYSE_IMAGE, [uuid.UUID(job_id)], delay_ms=delay_ms)
            )
            observe_job("deferred")
            return
        if claimed is None:
            log.info("job %s is not waiting for analysis any more; message dropped", job_id)
            observe_job("dropped")
            return
        ticket = self._current.ticket = claimed
        most = self.context.settings.analysis_max_retries + 1
        if ticket.attempt > most:
            # Dramatiq counts the attempts that raised; a worker killed mid-pass (out of
            # memory on this image, say) raises nothing, and its message comes back for ever.
            self.failed(
                job_id,
                f"the worker running this job was lost on {ticket.attempt - 1} attempts "
                f"(killed, out of memory?); more than the {most} allowed",
                final=True,
            )
            return
        self._announce(ticket.user_id, "analysis.started", ticket, attempt=ticket.attempt)
        heartbeat = self._on_loop(self._start_heartbeat(ticket))
        try:
            # Only the BytesIO holds the original: the pass closes it once decoded.
            source = io.BytesIO(self._on_loop(self.context.storage.read_all(ticket.storage_key)))
            disabled = self.context.settings.disabled_analyser_names
            chosen = ANALYSERS if ticket.analysers is None else by_name(ticket.analysers)
            analysers = [a for a in chosen if a.name not in disabled]

            def lost() -> bool:
                return not self._on_loop(self._holds(ticket))

            pool = self.context.analysis_pool
            if pool is None:
                decode_ms, outcomes = run_pass(source, analysers, lost=lost)
            else:
                names = [analyser.name for analyser in analysers]
                decode_ms, outcomes = pool.run_pass(source.getvalue(), names, lost=lost)
            del source
            observe_pass(decode_ms, outcomes)
            end = self._on_loop(self._record_success(ticket, outcomes))
        except PassStopped:
            end = None
        finally:
            self._on_loop(self._stop_heartbeat(heartbeat))
        if end in (None, service.RunEnd.GONE, service.RunEnd.SUPERSEDED):
            why = {
                None: "its run lost the job (the image was deleted, or the run was taken over)",
                service.RunEnd.GONE: "the image was deleted",
                service.RunEnd.SUPERSEDED: "the run was taken over by another worker",
            }[end]
            log.info("job %s stopped, nothing recorded: %s", job_id, why)
            observe_job("abandoned")
            return
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
        if end is service.RunEnd.REQUEUED:
            self._requeue(ticket.job_id, ticket.image_id, ticket.user_id)
        if any(o.analyser == "faces" and (o.result or {}).get("count") for o in outcomes):
            # New faces may wait for a person now (clustering finds out, cheaply if not).
            grouping_delay = self.context.settings.face_grouping_delay_ms or None
            self._on_loop(
                self.context.queue.enqueue(CLUSTER_FACES, [ticket.user_id], delay_ms=grouping_delay)
            )

    def failed(self, job_id: str, error: str, final: bool) -> None:
        log.warning(
            "job %s attempt failed%s: %s", job_id, " for the last time" if final else "", error
        )
        observe_job("failed" if final else "retrying")
        ticket: service.Ticket | None = getattr(self._current, "ticket", None)
        run_id = ticket.run_id if ticket is not None and str(ticket.job_id) == job_id else None
        failure = self._on_loop(self._record_failure(uuid.UUID(job_id), error, final, run_id))
        if failure is None:
            return
        kind = "analysis.failed" if final else "analysis.retrying"
        event = make_event(kind, image_id=failure.image_id, job_id=job_id, error=error)
        self._on_loop(self.context.notifier.notify(failure.user_id, event))
        if failure.requeued:
            self._requeue(uuid.UUID(job_id), failure.image_id, failure.user_id)

    def _requeue(self, job_id: uuid.UUID, image_id: uuid.UUID, user_id: uuid.UUID) -> None:
        """Send the re-run that was asked for while the run that just ended was in progress."""
        self._on_loop(self._dispatch(service.Queued(job_id, image_id, user_id)))

    async def _dispatch(self, job: service.Queued) -> None:
        async with self.context.sessions() as session:
            await dispatch(session, self.context.queue, self.context.notifier, [job])

    async def _start_heartbeat(self, ticket: service.Ticket) -> asyncio.Task[None]:
        return asyncio.create_task(self._beat(ticket))

    async def _beat(self, ticket: service.Ticket) -> None:
        settings = self.context.settings
        every = settings.analysis_lease_seconds / 3
        # The beat shows this loop is alive, not that the pass moves: past the time limit (a
        # thread stuck in native code, which Dramatiq's limit cannot interrupt), stop
        # renewing, so that the lease runs out and another worker takes the job over.
        until = asyncio.get_running_loop().time() + settings.analysis_time_limit_seconds
        while asyncio.get_running_loop().time() < until:
            await asyncio.sleep(every)
            try:
                async with self.context.sessions() as session:
                    if not await service.renew(session, ticket):
                        return  # the run lost the job; the pass notices at its next step
            except Exception as exc:  # a database outage: the next beat tries again
                log.warning("could not renew job %s's lease (%s)", ticket.job_id, exc)
        log.error(
            "job %s: the pass outlived the time limit (%d s); its lease is left to run out",
            ticket.job_id,
            settings.analysis_time_limit_seconds,
        )

    async def _stop_heartbeat(self, heartbeat: asyncio.Task[None]) -> None:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat

    async def _holds(self, ticket: service.Ticket) -> bool:
        try:
            async with self.context.sessions() as session:
                return await service.holds(session, ticket)
        except Exception as exc:  # a database blip: go on; recording the end decides
            log.warning("could not check job %s's run (%s); going on", ticket.job_id, exc)
            return True

    def _announce(
        self, user_id: uuid.UUID, kind: str, ticket: service.Ticket, **fields: Any
    ) -> None:
        event = make_event(kind, image_id=ticket.image_id, job_id=ticket.job_id, **fields)
        self._on_loop(self.context.notifier.notify(user_id, event))

    async def _claim(self, job_id: uuid.UUID) -> service.Ticket | service.Busy | None:
        async with self.context.sessions() as session:
            claimed = await service.claim(session, job_id, self._lease)
        if isinstance(claimed, service.Ticket):
            await invalidate(self.context.cache, claimed.image_id)  # readers see "running"
        return claimed

    async def _record_success(
        self, ticket: service.Ticket, outcomes: list[Outcome]
    ) -> service.RunEnd:
        async with self.context.sessions() as session:
            return await service.record_success(
                session, self.context.storage, self.context.cache, ticket, outcomes
            )

    async def _record_failure(
        self, job_id: uuid.UUID, error: str, final: bool, run_id: uuid.UUID | None
    ) -> service.Failure | None:
        async with self.context.sessions() as session:
            return await service.record_failure(
                session,
                self.context.cache,
                job_id,
                error,
                final=final,
                run_id=run_id,
                lease=self._lease,
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
        # One that was never handed over is being sent right now, or its sender failed: give
        # the sender a reconcile interval before sending a second message.
        unsent_for=timedelta(seconds=settings.reconcile_interval_seconds),
        # A running job whose heartbeat is older than the lease has lost its worker.
        running_for=timedelta(seconds=settings.analysis_lease_seconds),
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
