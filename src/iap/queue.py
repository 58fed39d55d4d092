"""The analysis queue, on Dramatiq.

- Embedded (no ``IAP_BROKER_URL``): an in-memory broker and worker threads inside the API
  process. Messages die with the process; the reconciler re-enqueues their jobs at the next start.
- Scaled: RabbitMQ (``amqp://``) or Redis (``redis://``); ``iap worker`` processes consume.

A message carries only the job id. It is acknowledged after the work is done (a killed worker's
message is delivered again), retried with exponential backoff, bounded by a time limit per
attempt, and dead-lettered after the last retry — at which point the job row is marked failed.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

import dramatiq
from anyio import to_thread
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware, Retries

from iap.config import Settings
from iap.observability.context import MessageContext, message_options

log = logging.getLogger(__name__)

ACTOR_NAME = "analyse_image"
WEBHOOK_ACTOR = "deliver_webhook"

JobHandler = Callable[[str], None]
FailureHandler = Callable[[str, str, bool], None]


class JobFailures(Middleware):
    """Writes each failed attempt to the job row; the attempt after which Dramatiq gives up
    (``message.failed``) marks the job failed. Runs after the Retries middleware."""

    def __init__(self, queue: AnalysisQueue) -> None:
        self.queue = queue

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        handler = self.queue.failure_handlers.get(message.actor_name)
        if exception is None or handler is None:
            return
        (job_id,) = message.args
        error = "".join(traceback.format_exception_only(type(exception), exception)).strip()
        try:
            handler(job_id, error, bool(message.failed))
        except Exception:
            log.exception("could not record the failure of job %s", job_id)


class AnalysisQueue:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.broker = _create_broker(settings.broker_url)
        # Dramatiq runs after-hooks in reverse order: placed before Retries, this hook runs
        # after it and sees whether Retries gave up on the message.
        self.broker.add_middleware(JobFailures(self), before=Retries)
        # First of all: every other middleware's hooks then log with the message's request id.
        self.broker.add_middleware(MessageContext(), before=type(self.broker.middleware[0]))
        # Set, per actor, by the process that runs a worker (iap.analysis.worker.WorkerRuntime).
        self.handlers: dict[str, JobHandler] = {}
        self.failure_handlers: dict[str, FailureHandler] = {}
        self.in_process = isinstance(self.broker, StubBroker)
        declare = dramatiq.actor(
            broker=self.broker,
            actor_name=ACTOR_NAME,
            queue_name=settings.queue_name,
            max_retries=settings.analysis_max_retries,
            min_backoff=settings.analysis_min_backoff_ms,
            max_backoff=settings.analysis_max_backoff_ms,
            time_limit=settings.analysis_time_limit_seconds * 1000,
        )
        self.actor: dramatiq.Actor[[str], None] = declare(self._analyse_image)
        # Deliveries have a queue of their own: a slow receiver never holds up analysis.
        declare_webhook = dramatiq.actor(
            broker=self.broker,
            actor_name=WEBHOOK_ACTOR,
            queue_name=f"{settings.queue_name}-webhooks",
            max_retries=settings.webhook_max_retries,
            min_backoff=settings.webhook_min_backoff_ms,
            max_backoff=settings.webhook_max_backoff_ms,
            time_limit=(settings.webhook_timeout_seconds + 30) * 1000,
        )
        self.webhook_actor: dramatiq.Actor[[str], None] = declare_webhook(self._deliver_webhook)

    def _analyse_image(self, job_id: str) -> None:
        self._handle(ACTOR_NAME, job_id)

    def _deliver_webhook(self, delivery_id: str) -> None:
        self._handle(WEBHOOK_ACTOR, delivery_id)

    def _handle(self, actor_name: str, argument: str) -> None:
        handler = self.handlers.get(actor_name)
        if handler is None:
            raise RuntimeError("this process runs no worker; start one with `iap worker`")
        handler(argument)

    async def enqueue(
        self, job_ids: list[uuid.UUID], actor_name: str = ACTOR_NAME
    ) -> list[uuid.UUID]:
        """Send each job (blocking I/O, in a thread); return those the broker took. An outage
        is logged, not raised: the jobs stay queued in the database and the reconciler sends
        analysis jobs later."""
        actor = self.actor if actor_name == ACTOR_NAME else self.webhook_actor
        # The request id travels as a message option: the argument stays the job id alone.
        options = message_options()
        sent: list[uuid.UUID] = []
        for job_id in job_ids:
            try:
                await to_thread.run_sync(
                    partial(actor.send_with_options, args=(str(job_id),), **options)
                )
            except Exception as exc:
                log.warning(
                    "broker refused job %s (%s); the reconciler will resend it", job_id, exc
                )
                break
            sent.append(job_id)
        return sent

    def worker(self, threads: int) -> dramatiq.Worker:
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
