"""Running background tasks: the runtime that serves every task's messages in this process,
the reconciler, and the body of ``iap worker``.

Dramatiq runs handlers in plain threads; the database, storage and cache are async. A worker
therefore keeps one event loop for I/O, which handlers submit coroutines to from their threads.
In the embedded deployment that loop is the API's own; an ``iap worker`` process runs its own.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from iap.config import Settings
from iap.observability.logs import configure_logging
from iap.queue import TaskQueue
from iap.services import Services, build_services, close_services

log = logging.getLogger(__name__)
T = TypeVar("T")


class WorkerRuntime:
    def __init__(self, services: Services, loop: asyncio.AbstractEventLoop) -> None:
        self.services = services
        self.loop = loop

    def install(self) -> None:
        """Make this process run every task's messages."""
        self.services.queue.serve(self.services, self._run)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def reconcile(self, *, everything: bool = False) -> dict[str, int]:
        """Hand the broker every message it may have lost, task by task; return how many of
        each. ``everything``: all unfinished ones (an in-process broker starts empty, so
        nothing it held survived)."""
        queue, settings = self.services.queue, self.services.settings
        counts: dict[str, int] = {}
        for task in queue.tasks:
            if task.recovery is None:
                continue
            async with self.services.sessions() as session:
                lost = await task.recovery.lost(session, settings, everything)
                sent = await queue.enqueue(task, lost)
                if task.recovery.resent is not None:
                    await task.recovery.resent(session, sent)
            if sent:
                counts[task.name] = len(sent)
        if counts:
            handed = ", ".join(f"{count} {name}" for name, count in counts.items())
            log.info("reconciler handed messages to the broker: %s", handed)
        return counts

    async def reconcile_forever(self, *, first_everything: bool) -> None:
        everything = first_everything
        while True:
            try:
                await self.reconcile(everything=everything)
            except Exception:
                log.exception("reconciliation failed; trying again in a while")
            everything = False
            await asyncio.sleep(self.services.settings.reconcile_interval_seconds)


def drain_timeout_ms(queue: TaskQueue) -> int:
    """How long stopping a worker waits for the messages in hand. No attempt may outlive its
    task's time limit, so this lets every one of them finish, yet is never a wait without end;
    messages fetched but not started go back to the broker at once."""
    return queue.longest_time_limit_ms() + 5_000


def run_worker(settings: Settings, threads: int) -> None:
    """Body of one ``iap worker`` process: consume until SIGTERM/SIGINT, then drain and exit."""
    configure_logging(settings.log_level, settings.log_format)
    loop = asyncio.new_event_loop()
    io_thread = threading.Thread(target=loop.run_forever, name="iap-io", daemon=True)
    io_thread.start()

    def run(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    services = run(build_services(settings))
    queue = services.queue
    runtime = WorkerRuntime(services, loop)
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
    worker.stop(timeout=drain_timeout_ms(queue))
    run(close_services(services))  # closes the queue too
    loop.call_soon_threadsafe(loop.stop)
    io_thread.join(timeout=5)
