"""Running analysis jobs: the runtime the queue's actor calls, the reconciler, ``iap worker``.

Dramatiq runs actors in plain threads; the database, storage and cache are async. A worker
therefore keeps one event loop for I/O and submits coroutines to it from the actor threads,
while the CPU-bound pass (decode + analysers) stays in the actor thread. In the embedded
deployment that loop is the API's own; an ``iap worker`` process runs its own.
"""

from __future__ import annotations

import asyncio
import io
import logging
import signal
import threading
import uuid
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from iap.analysis import service
from iap.analysis.analysers import ANALYSERS, by_name
from iap.analysis.pipeline import run_pass
from iap.config import Settings
from iap.deps import Services
from iap.events.bus import make_event
from iap.events.service import stale_deliveries
from iap.events.webhooks import WebhookDeliverer
from iap.images.service import invalidate
from iap.observability.logs import configure_logging
from iap.observability.metrics import observe_job, observe_pass
from iap.queue import ACTOR_NAME, WEBHOOK_ACTOR, AnalysisQueue

log = logging.getLogger(__name__)
T = TypeVar("T")


class WorkerRuntime:
    def __init__(self, services: Services, queue: AnalysisQueue, loop: asyncio.AbstractEventLoop):
        self.services = services
        self.queue = queue
        self.loop = loop

    def install(self) -> None:
        """Make this runtime the one the queue's actor and failure hook call."""
        self.queue.handlers[ACTOR_NAME] = self.process
        self.queue.failure_handlers[ACTOR_NAME] = self.record_failure
        deliveries = WebhookDeliverer(self.services, self._run)
        self.queue.handlers[WEBHOOK_ACTOR] = deliveries.deliver
        self.queue.failure_handlers[WEBHOOK_ACTOR] = deliveries.record_failure

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def process(self, job_id: str) -> None:
        """One attempt at one job (called in an actor thread). Raising means: retry later."""
        ticket = self._run(self._claim(uuid.UUID(job_id)))
        if ticket is None:
            log.info("job %s is not waiting for analysis any more; message dropped", job_id)
            observe_job("dropped")
            return
        self._announce(ticket.user_id, "analysis.started", ticket, attempt=ticket.attempt)
        data = self._run(self._read_original(ticket.storage_key))
        disabled = self.services.settings.disabled_analyser_names
        chosen = ANALYSERS if ticket.analysers is None else by_name(ticket.analysers)
        analysers = [a for a in chosen if a.name not in disabled]
        decode_ms, outcomes = run_pass(io.BytesIO(data), analysers)
        del data
        observe_pass(decode_ms, outcomes)
        self._run(self._record_success(ticket, outcomes))
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

    def record_failure(self, job_id: str, error: str, final: bool) -> None:
        log.warning(
            "job %s attempt failed%s: %s", job_id, " for the last time" if final else "", error
        )
        observe_job("failed" if final else "retrying")
        owner = self._run(self._record_failure(uuid.UUID(job_id), error, final))
        if owner is not None:
            image_id, user_id = owner
            kind = "analysis.failed" if final else "analysis.retrying"
            event = make_event(kind, image_id=image_id, job_id=job_id, error=error)
            self._run(self.services.notifier.notify(user_id, event))

    def _announce(
        self, user_id: uuid.UUID, kind: str, ticket: service.Ticket, **fields: Any
    ) -> None:
        event = make_event(kind, image_id=ticket.image_id, job_id=ticket.job_id, **fields)
        self._run(self.services.notifier.notify(user_id, event))

    async def _claim(self, job_id: uuid.UUID) -> service.Ticket | None:
        async with self.services.sessions() as session:
            ticket = await service.claim(session, job_id)
        if ticket is not None:
            await invalidate(self.services.cache, ticket.image_id)  # readers see "running"
        return ticket

    async def _read_original(self, key: str) -> bytes:
        return await self.services.storage.read_all(key)

    async def _record_success(self, ticket: service.Ticket, outcomes: list[Any]) -> None:
        async with self.services.sessions() as session:
            await service.record_success(
                session, self.services.storage, self.services.cache, ticket, outcomes
            )

    async def _record_failure(
        self, job_id: uuid.UUID, error: str, final: bool
    ) -> tuple[uuid.UUID, uuid.UUID] | None:
        async with self.services.sessions() as session:
            return await service.record_failure(
                session, self.services.cache, job_id, error, final=final
            )

    async def reconcile(self, *, everything: bool = False) -> int:
        """Hand the broker every job it may have lost. ``everything``: all queued and running
        jobs (an in-process broker starts empty, so nothing it held survived)."""
        settings = self.services.settings
        untouched = timedelta(seconds=0 if everything else settings.reconcile_after_seconds)
        # A running job past twice its time limit has lost its worker.
        running = timedelta(
            seconds=0 if everything else settings.analysis_time_limit_seconds * 2 + 60
        )
        async with self.services.sessions() as session:
            job_ids = await service.stale_jobs(
                session, untouched_for=untouched, running_for=running
            )
            sent = await self.queue.enqueue(job_ids)
            await service.mark_enqueued(session, sent)
            # A delivery waits at most max_backoff between attempts; longer means it was lost.
            quiet = timedelta(seconds=settings.webhook_max_backoff_ms / 1000) + untouched
            delivery_ids = await stale_deliveries(
                session, older_than=timedelta(0) if everything else quiet
            )
        resent = await self.queue.enqueue(delivery_ids, WEBHOOK_ACTOR)
        if sent or resent:
            log.info(
                "reconciler handed %d job(s) and %d webhook delivery(ies) to the broker",
                len(sent),
                len(resent),
            )
        return len(sent)

    async def reconcile_forever(self, *, first_everything: bool) -> None:
        everything = first_everything
        while True:
            try:
                await self.reconcile(everything=everything)
            except Exception:
                log.exception("reconciliation failed; trying again in a while")
            everything = False
            await asyncio.sleep(self.services.settings.reconcile_interval_seconds)


def drain_timeout_ms(settings: Settings) -> int:
    """How long stopping a worker waits for the messages in hand. No attempt may outlive its
    actor's time limit, so this lets every one of them finish, yet is never a wait without end;
    messages fetched but not started go back to the broker at once."""
    longest = max(settings.analysis_time_limit_seconds, settings.webhook_timeout_seconds + 30)
    return (longest + 5) * 1000


def run_worker(settings: Settings, threads: int) -> None:
    """Body of one ``iap worker`` process: consume until SIGTERM/SIGINT, then drain and exit."""
    from iap.app import build_services, close_services

    configure_logging(settings.log_level, settings.log_format)
    loop = asyncio.new_event_loop()
    io_thread = threading.Thread(target=loop.run_forever, name="iap-io", daemon=True)
    io_thread.start()

    def run(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    services = run(build_services(settings))
    queue = services.queue
    runtime = WorkerRuntime(services, queue, loop)
    runtime.install()
    worker = queue.worker(threads)
    worker.start()
    reconciler = asyncio.run_coroutine_threadsafe(
        runtime.reconcile_forever(first_everything=queue.in_process), loop
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("worker consuming %r with %d thread(s)", settings.queue_name, threads)
    stop.wait()
    log.info("worker stopping: finishing messages in hand")
    reconciler.cancel()
    worker.stop(timeout=drain_timeout_ms(settings))
    run(close_services(services))  # closes the queue too
    loop.call_soon_threadsafe(loop.stop)
    io_thread.join(timeout=5)
