"""Background tasks, on Dramatiq.

- Embedded (no ``IAP_BROKER_URL``): an in-memory broker and worker threads inside the API
  process. Messages die with the process; the reconciler re-enqueues them at the next start.
- Scaled: RabbitMQ (``amqp://``) or Redis (``redis://``); ``iap worker`` processes consume.

A task is declared once, beside its domain, as a ``Task`` record: its name, its queue, its
retry and time limits, its handler, and how the reconciler finds messages a broker may have
lost. ``iap.tasks`` lists the records; each ``TaskQueue`` (one per process, with a broker of
its own) declares an actor per record, so nothing global is shared between instances.

A message carries only an id (of a job row, a delivery row, ...). The database row is the
source of truth: a handler claims it there before working, so a message delivered twice does
its work once. Messages are acknowledged after the work is done (a killed worker's message is
delivered again), retried with exponential backoff, bounded by a time limit per attempt, and
dead-lettered after the last retry, when the handler records the failure for good.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import dramatiq
from anyio import to_thread
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware, Retries
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from iap.cache import Cache
from iap.config import Settings
from iap.observability.context import MessageContext, message_options
from iap.storage import BlobStorage

if TYPE_CHECKING:
    from iap.analysis.pass_pool import PassPool

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class TaskLimits:
    max_retries: int
    min_backoff_ms: int
    max_backoff_ms: int
    time_limit_ms: int


class Runner(Protocol):
    """Runs a coroutine on the worker's I/O loop from a task's thread, and returns its value."""

    def __call__(self, coro: Coroutine[Any, Any, T], /) -> T: ...


class TaskHandler(Protocol):
    """What runs a task's messages in a worker (Dramatiq runs them in plain threads)."""

    def run(self, argument: str) -> None:
        """One attempt. Raising means: this attempt failed, retry later."""
        ...

    def failed(self, argument: str, error: str, final: bool) -> None:
        """Record a failed attempt; ``final`` when no retry follows (dead-lettered)."""
        ...


class Notifies(Protocol):
    async def notify(self, user_id: uuid.UUID, event: dict[str, Any]) -> None: ...


class TaskContext(Protocol):
    """What a worker gives each task handler (``iap.services.Services`` is one)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]: ...
    @property
    def storage(self) -> BlobStorage: ...
    @property
    def cache(self) -> Cache: ...
    @property
    def queue(self) -> TaskQueue: ...
    @property
    def notifier(self) -> Notifies: ...
    @property
    def analysis_pool(self) -> PassPool | None:
        """Child processes for analysis passes (the embedded worker's); None: in threads."""
        ...


@dataclass(frozen=True)
class Recovery:
    """How the reconciler finds a task's messages that a broker may have lost (a broker
    restart, or an in-process broker that died with its process)."""

    # (session, settings, everything) -> ids to send again; ``everything``: all unfinished
    # ones, for a broker that starts empty.
    lost: Callable[[AsyncSession, Settings, bool], Awaitable[list[uuid.UUID]]]
    # Called with the ids the broker took, to note that they were sent.
    resent: Callable[[AsyncSession, list[uuid.UUID]], Awaitable[None]] | None = None


@dataclass(frozen=True)
class Task:
    """A background task, declared beside its domain; see ``iap.tasks`` for the list."""

    # The actor's name. Messages waiting in a broker carry it: never rename a task.
    name: str
    # Suffix of the task's queue: "" is ``IAP_QUEUE_NAME`` itself, "x" is "<IAP_QUEUE_NAME>-x".
    # A task with a queue of its own never waits behind another task's backlog.
    queue: str
    limits: Callable[[Settings], TaskLimits]
    handler: Callable[[TaskContext, Runner], TaskHandler]
    recovery: Recovery | None = None

    def queue_name(self, settings: Settings) -> str:
        return f"{settings.queue_name}-{self.queue}" if self.queue else settings.queue_name


class TaskFailures(Middleware):
    """Hands each failed attempt to its task's handler, saying whether Dramatiq gave up on
    the message (``message.failed``, set by the Retries middleware, which runs before)."""

    def __init__(self, queue: TaskQueue) -> None:
        self.queue = queue

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        handler = self.queue.handler_of(message.actor_name)
        if exception is None or handler is None:
            return
        (argument,) = message.args
        error = "".join(traceback.format_exception_only(type(exception), exception)).strip()
        try:
            handler.failed(argument, error, bool(message.failed))
        except Exception:
            log.exception("could not record the failure of %s %s", message.actor_name, argument)


class TaskQueue:
    """One process's broker with an actor per task. Handlers are installed only where a
    worker runs (``serve``); elsewhere the queue only sends."""

    def __init__(self, settings: Settings, tasks: Iterable[Task]) -> None:
        self.settings = settings
        self.tasks = tuple(tasks)
        self.broker = _create_broker(settings.broker_url)
        # Dramatiq runs after-hooks in reverse order: placed before Retries, this hook runs
        # after it and sees whether Retries gave up on the message.
        self.broker.add_middleware(TaskFailures(self), before=Retries)
        # First of all: every other middleware's hooks then log with the message's request id.
        self.broker.add_middleware(MessageContext(), before=type(self.broker.middleware[0]))
        self.in_process = isinstance(self.broker, StubBroker)
        self._handlers: dict[str, TaskHandler] = {}
        self._actors = {task.name: self._declare(task) for task in self.tasks}

    def _declare(self, task: Task) -> dramatiq.Actor[[str], None]:
        limits = task.limits(self.settings)

        def perform(argument: str) -> None:
            handler = self._handlers.get(task.name)
            if handler is None:
                raise RuntimeError("this process runs no worker; start one with `iap worker`")
            handler.run(argument)

        declare = dramatiq.actor(
            broker=self.broker,
            actor_name=task.name,
            queue_name=task.queue_name(self.settings),
            max_retries=limits.max_retries,
            min_backoff=limits.min_backoff_ms,
            max_backoff=limits.max_backoff_ms,
            time_limit=limits.time_limit_ms,
        )
        return declare(perform)

    def serve(self, context: TaskContext, run: Runner) -> None:
        """Make this process run every task's messages (before its worker starts)."""
        self._handlers = {task.name: task.handler(context, run) for task in self.tasks}

    def handler_of(self, actor_name: str) -> TaskHandler | None:
        return self._handlers.get(actor_name)

    async def enqueue(
        self, task: Task, ids: list[uuid.UUID], *, delay_ms: int | None = None
    ) -> list[uuid.UUID]:
        """Send one message per id (blocking I/O, in a thread), delivered after ``delay_ms``
        if given; return the ids the broker took. An outage is logged, not raised: the rows
        stay in the database, where the reconciler finds them later."""
        actor = self._actors[task.name]
        # The request id travels as a message option: the argument stays the id alone.
        options = message_options()
        sent: list[uuid.UUID] = []
        for item in ids:
            try:
                await to_thread.run_sync(
                    partial(actor.send_with_options, args=(str(item),), delay=delay_ms, **options)
                )
            except Exception as exc:
                log.warning(
                    "broker refused %s %s (%s); the reconciler will resend it", task.name, item, exc
                )
                break
            sent.append(item)
        return sent

    def longest_time_limit_ms(self) -> int:
        return max(task.limits(self.settings).time_limit_ms for task in self.tasks)

    def worker(self, threads: int) -> dramatiq.Worker:
        # Dramatiq's own CLI announces the process boot; without it the TimeLimit middleware
        # never starts its timer and no attempt is ever stopped at its time limit.
        self.broker.emit_after("process_boot")
        return dramatiq.Worker(self.broker, worker_threads=threads)

    def check(self) -> None:
        """Raise if the broker cannot be reached (for readiness)."""
        if isinstance(self.broker, RabbitmqBroker):
            self.broker.connection  # noqa: B018 - opens (or reuses) this thread's connection
        elif isinstance(self.broker, RedisBroker):
            self.broker.client.ping()

    def close(self) -> None:
        self.broker.close()


def _create_broker(url: str | None) -> dramatiq.Broker:
    if url is None:
        return StubBroker()
    if url.startswith(("amqp://", "amqps://")):
        # Publisher confirms: send() returns only once RabbitMQ has the message.
        return RabbitmqBroker(url=url, confirm_delivery=True)
    return RedisBroker(url=url)  # type: ignore[no-untyped-call]
