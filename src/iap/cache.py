"""Cache for hot, small values (image metadata): in-process LRU by default, Redis when configured.

The cache is an optimisation, never a dependency: when Redis fails, calls degrade to misses and
the API keeps serving from the database. A short circuit breaker keeps a dead Redis from adding
its timeout to every request.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class Cache(Protocol):
    async def get(self, key: str) -> str | None: ...
    async def set(self, key: str, value: str, ttl_seconds: int) -> None: ...
    async def delete(self, *keys: str) -> None: ...
    async def check(self) -> None: ...
    async def close(self) -> None: ...


class MemoryCache:
    """A bounded LRU with per-entry expiry, for one process."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._data: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._max = max_entries

    async def get(self, key: str) -> str | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires < time.monotonic():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

    async def set(self, key: str, value: str, ttl_seconds: int) -> None:
        self._data[key] = (time.monotonic() + ttl_seconds, value)
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._data.pop(key, None)

    async def check(self) -> None:
        return None

    async def close(self) -> None:
        self._data.clear()


class RedisBreaker:
    """Skips Redis for ``cooldown`` seconds after a failure, logging once per outage."""

    def __init__(self, cooldown: float = 5.0) -> None:
        self.cooldown = cooldown
        self._open_until = 0.0

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self._open_until

    def trip(self, exc: Exception, what: str) -> None:
        if not self.is_open:
            log.warning(
                "redis unavailable during %s (%s); serving without it for %.0fs",
                what,
                exc,
                self.cooldown,
            )
        self._open_until = time.monotonic() + self.cooldown


def create_redis(url: str) -> Redis:
    # Short timeouts: a slow cache must cost milliseconds, not seconds.
    return Redis.from_url(
        url, socket_timeout=0.5, socket_connect_timeout=0.5, decode_responses=True
    )


class RedisCache:
    def __init__(self, redis: Redis, prefix: str, breaker: RedisBreaker) -> None:
        self.redis = redis
        self.prefix = prefix + "cache:"
        self.breaker = breaker

    async def get(self, key: str) -> str | None:
        if self.breaker.is_open:
            return None
        try:
            value = await self.redis.get(self.prefix + key)
            return None if value is None else str(value)
        except (RedisError, OSError) as exc:
            self.breaker.trip(exc, "cache get")
            return None

    async def set(self, key: str, value: str, ttl_seconds: int) -> None:
        if self.breaker.is_open:
            return
        try:
            await self.redis.set(self.prefix + key, value, ex=ttl_seconds)
        except (RedisError, OSError) as exc:
            self.breaker.trip(exc, "cache set")

    async def delete(self, *keys: str) -> None:
        # Deletes are attempted even with the breaker open: a stale entry left behind would
        # outlive the outage.
        if not keys:
            return
        try:
            await self.redis.delete(*(self.prefix + key for key in keys))
        except (RedisError, OSError) as exc:
            self.breaker.trip(exc, "cache delete")

    async def check(self) -> None:
        await self.redis.ping()

    async def close(self) -> None:
        await self.redis.aclose()
