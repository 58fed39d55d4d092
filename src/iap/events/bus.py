"""Per-user event fan-out: in-process by default, Redis pub/sub when IAP_REDIS_URL is set, so
that an event published by any worker reaches the user's stream on any API replica.

Delivery is best effort and live only (a client that is not connected misses events; the
database holds the state, so a reconnecting client re-reads it). A slow subscriber loses its
oldest events rather than holding up publishers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from iap.db import utcnow

log = logging.getLogger(__name__)

SUBSCRIBER_BUFFER = 256


def make_event(kind: str, **fields: Any) -> dict[str, Any]:
    """An event as sent to clients: ``type``, ``at`` and the fields (ids as strings)."""
    body: dict[str, Any] = {"type": kind, "at": utcnow().isoformat()}
    for key, value in fields.items():
        body[key] = str(value) if isinstance(value, (uuid.UUID, datetime)) else value
    return body


class EventBus(Protocol):
    async def publish(self, user_id: uuid.UUID, event: dict[str, Any]) -> None: ...

    def subscribe(self, user_id: uuid.UUID) -> Any:
        """Async context manager yielding an async iterator of the user's events."""
        ...

    async def close(self) -> None: ...


class MemoryBus:
    def __init__(self) -> None:
        self._subscribers: defaultdict[uuid.UUID, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(
            set
        )

    async def publish(self, user_id: uuid.UUID, event: dict[str, Any]) -> None:
        for queue in list(self._subscribers.get(user_id, ())):
            _offer(queue, event)

    @asynccontextmanager
    async def subscribe(self, user_id: uuid.UUID) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(SUBSCRIBER_BUFFER)
        self._subscribers[user_id].add(queue)
        try:
            yield _drain(queue)
        finally:
            self._subscribers[user_id].discard(queue)
            if not self._subscribers[user_id]:
                del self._subscribers[user_id]

    async def close(self) -> None:
        self._subscribers.clear()


class RedisBus:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix + "events:"

    async def publish(self, user_id: uuid.UUID, event: dict[str, Any]) -> None:
        try:
            await self.redis.publish(f"{self.prefix}{user_id}", json.dumps(event))
        except (RedisError, OSError) as exc:
            log.warning("event %s for user %s not published: %s", event.get("type"), user_id, exc)

    @asynccontextmanager
    async def subscribe(self, user_id: uuid.UUID) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(f"{self.prefix}{user_id}")
        try:
            yield self._listen(pubsub)
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    @staticmethod
    async def _listen(pubsub: Any) -> AsyncIterator[dict[str, Any]]:
        while True:
            message = await pubsub.get_message(timeout=1.0)
            if message is not None and message.get("type") == "message":
                yield json.loads(message["data"])

    async def close(self) -> None:
        return None  # the Redis client belongs to the cache


def _offer(queue: asyncio.Queue[dict[str, Any]], event: dict[str, Any]) -> None:
    if queue.full():
        queue.get_nowait()  # drop the oldest: a stalled reader must not stall publishers
    queue.put_nowait(event)


async def _drain(queue: asyncio.Queue[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    while True:
        yield await queue.get()
