"""Delivering webhooks: signed POSTs, retried with backoff by the queue, logged per attempt.

Every delivery carries ``X-IAP-Signature: sha256=<hex>``, the HMAC-SHA256 of
``"<X-IAP-Timestamp>.<body>"`` under the webhook's secret. A receiver recomputes it, compares in
constant time, and rejects old timestamps to stop replays (see ``docs/api.md``).

Destinations are checked at every attempt, after DNS resolution: loopback, private,
link-local and other internal addresses are refused unless IAP_WEBHOOK_ALLOW_PRIVATE is set,
so that a webhook cannot be used to reach the server's own network.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from iap.config import Settings
from iap.db import utcnow
from iap.events.models import Webhook, WebhookDelivery
from iap.queue import Recovery, Runner, Task, TaskContext, TaskLimits

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-IAP-Signature"
TIMESTAMP_HEADER = "X-IAP-Timestamp"


class DeliveryFailed(Exception):
    """This attempt failed; the queue retries it."""


class DestinationRefused(Exception):
    """The URL points somewhere webhooks may not go."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def check_destination(url: str, *, allow_private: bool, resolve: bool = True) -> None:
    """Raise ``DestinationRefused`` for a URL webhooks must not be sent to."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DestinationRefused("the URL must be http:// or https:// with a host")
    if allow_private:
        return
    host = parts.hostname
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        if not resolve:
            return
        try:
            infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
        except OSError as exc:
            raise DestinationRefused(f"the host {host!r} cannot be resolved ({exc})") from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        if not address.is_global:
            raise DestinationRefused(f"{host} is an internal address ({address})")


@dataclass(frozen=True)
class _Attempt:
    url: str
    secret: str
    event_type: str
    payload: dict[str, Any]


class WebhookDeliverer:
    """The ``deliver_webhook`` task's handler. Runs in worker threads; database work goes
    through ``run`` onto the worker's I/O loop."""

    def __init__(self, context: TaskContext, run: Runner) -> None:
        self.settings = context.settings
        self.sessions = context.sessions
        self._on_loop = run

    def run(self, delivery_id: str) -> None:
        settings = self.settings
        attempt: _Attempt | None = self._on_loop(self._start(uuid.UUID(delivery_id)))
        if attempt is None:
            return  # deleted webhook, or already delivered
        try:
            check_destination(attempt.url, allow_private=settings.webhook_allow_private)
        except DestinationRefused as exc:
            self._on_loop(self._finish(uuid.UUID(delivery_id), None, f"refused: {exc}", final=True))
            return
        body = json.dumps(attempt.payload, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "iap-webhooks",
            "X-IAP-Event": attempt.event_type,
            "X-IAP-Delivery": delivery_id,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(attempt.secret, timestamp, body),
        }
        try:
            response = httpx.post(
                attempt.url,
                content=body,
                headers=headers,
                timeout=settings.webhook_timeout_seconds,
                follow_redirects=False,
            )
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None
        if response.is_success:
            self._on_loop(
                self._finish(uuid.UUID(delivery_id), response.status_code, None, final=True)
            )
            return
        self._on_loop(self._finish(uuid.UUID(delivery_id), response.status_code, None, final=False))
        raise DeliveryFailed(f"the receiver answered HTTP {response.status_code}")

    def failed(self, delivery_id: str, error: str, final: bool) -> None:
        self._on_loop(self._finish(uuid.UUID(delivery_id), None, error, final=final, failed=True))

    async def _start(self, delivery_id: uuid.UUID) -> _Attempt | None:
        async with self.sessions() as session:
            delivery = await session.get(WebhookDelivery, delivery_id)
            if delivery is None or delivery.status != "pending":
                return None
            webhook = await session.get(Webhook, delivery.webhook_id)
            if webhook is None or not webhook.is_active:
                return None
            delivery.attempts += 1
            delivery.last_attempt_at = utcnow()
            await session.commit()
            return _Attempt(webhook.url, webhook.secret, delivery.event_type, delivery.payload)

    async def _finish(
        self,
        delivery_id: uuid.UUID,
        status_code: int | None,
        error: str | None,
        *,
        final: bool,
        failed: bool = False,
    ) -> None:
        values: dict[str, Any] = {}
        if status_code is not None:
            values["response_status"] = status_code
        if error is not None:
            values["error"] = error[:2000]
        if final and not failed and error is None:
            values |= {"status": "delivered", "delivered_at": utcnow(), "error": None}
        elif final:
            values["status"] = "failed"
        if not values:
            return
        async with self.sessions() as session:
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == "pending")
                .values(**values)
            )
            await session.commit()


async def stale_deliveries(
    session: AsyncSession, *, older_than: timedelta, limit: int = 500
) -> list[uuid.UUID]:
    """Pending deliveries with no attempt for ``older_than``: the broker may have lost them."""
    last_touched = func.coalesce(WebhookDelivery.last_attempt_at, WebhookDelivery.created_at)
    rows = await session.scalars(
        select(WebhookDelivery.id)
        .where(WebhookDelivery.status == "pending", last_touched < utcnow() - older_than)
        .order_by(WebhookDelivery.created_at)
        .limit(limit)
    )
    return list(rows)


async def _lost_deliveries(
    session: AsyncSession, settings: Settings, everything: bool
) -> list[uuid.UUID]:
    if everything:
        return await stale_deliveries(session, older_than=timedelta(0))
    # A delivery waits at most max_backoff between attempts; longer means it was lost.
    quiet = timedelta(
        milliseconds=settings.webhook_max_backoff_ms, seconds=settings.reconcile_after_seconds
    )
    return await stale_deliveries(session, older_than=quiet)


def _limits(settings: Settings) -> TaskLimits:
    return TaskLimits(
        max_retries=settings.webhook_max_retries,
        min_backoff_ms=settings.webhook_min_backoff_ms,
        max_backoff_ms=settings.webhook_max_backoff_ms,
        # The request's own timeout, and time to record the outcome.
        time_limit_ms=(settings.webhook_timeout_seconds + 30) * 1000,
    )


# Deliveries have a queue of their own: a slow receiver never holds up analysis.
DELIVER_WEBHOOK = Task(
    name="deliver_webhook",
    queue="webhooks",
    limits=_limits,
    handler=WebhookDeliverer,
    recovery=Recovery(lost=_lost_deliveries),
)
