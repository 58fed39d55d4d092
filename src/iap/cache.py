"""Cache for hot, small values (image metadata): in-process LRU by default, Redis when configured.

The cache is an optimisation, never a dependency: when Redis fails, calls degrade to misses and
the API keeps serving from the database. A short circuit breaker keeps a dead Redis from adding
its timeout to every request.

Filling after a miss goes through a lease, so that a reader cannot put back what a writer has
just invalidated: the reader takes the key's version (``lease``) before it reads the database,
and ``fill`` stores its value only if no ``delete`` has bumped that version since. Without it, a
read that began before a change and ended after its invalidation would cache the old value for
a whole TTL.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


# How long a key's version outlives its last invalidation: longer than any read could take.
VERSION_TTL_SECONDS = 3600


class Cache(Protocol):
    async def get(self, key: str) -> str | None: ...
    async def lease(self, key: str) -> str:
        """The key's current version, to hand to ``fill`` after reading the source."""
        ...

    async def fill(self, key: str, value: str, ttl_seconds: int, lease: str) -> None:
        """Store ``value`` unless ``key`` was invalidated since ``lease`` was taken."""
        ...

    async def delete(self, *keys: str) -> None:
        """Drop the keys and bump their versions (outstanding leases become void)."""
        ...

    async def check(self) -> None: ...
    async def close(self) -> None: ...


class MemoryCache:
    """A bounded LRU with per-entry expiry, for one process."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._data: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._max = max_entries
        # Versions of recently invalidated keys only (a key never invalidated is at "0").
        self._versions: OrderedDict[str, int] = OrderedDict()

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

    async def lease(self, key: str) -> str:
        return str(self._versions.get(key, 0))

    async def fill(self, key: str, value: str, ttl_seconds: int, lease: str) -> None:
        if str(self._versions.get(key, 0)) != lease:
            return
        self._data[key] = (time.monotonic() + ttl_seconds, value)
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._data.pop(key, None)
            self._versions[key] = self._versions.get(key, 0) + 1
            self._versions.move_to_end(key)
        # Forgetting an old version is safe once no read can still hold a lease on it; the
        # bound is generous (a read lasts milliseconds, and this many invalidations take far
        # longer).
        while len(self._versions) > 10 * self._max:
            self._versions.popitem(last=False)

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


# KEYS: the entry, its version; ARGV: value, ttl, the lease. Set only if the version is unchanged.
_FILL = """
local current = redis.call('GET', KEYS[2]) or '0'
if current == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 0
"""


class RedisCache:
    def __init__(self, redis: Redis, prefix: str, breaker: RedisBreaker) -> None:
        self.redis = redis
        self.prefix = prefix + "cache:"
        self.breaker = breaker
        self._fill = redis.register_script(_FILL)

    async def get(self, key: str) -> str | None:
        if self.breaker.is_open:
            return None
        try:
            value = await self.redis.get(self.prefix + key)
            return None if value is None else str(value)
        except (RedisError, OSError) as exc:
            self.breaker.trip(exc, "cache get")
            return None

    async def lease(self, key: str) -> str:
        if self.breaker.is_open:
            return "unavailable"
        try:
            value = await self.redis.get(self._version_key(key))
        except (RedisError, OSError) as exc:
            self.breaker.trip(exc, "cache lease")
            return "unavailable"
        return "0" if value is None else str(value)

    async def fill(self, key: str, value: str, ttl_seconds: int, lease: str) -> None:
        if self.breaker.is_open or lease == "unavailable":
            return
        try:
            await self._fill(
                keys=[self.prefix + key, self._version_key(key)], args=[value, ttl_seconds, lease]
            )
        except (RedisError, OSError) as exc:
            self.breaker.trip(exc, "cache fill")

    async def delete(self, *keys: str) -> None:
        # Deletes are attempted even with the breaker open: a stale entry left behind would
        # outlive the outage.
        if not keys:
            return
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for key in keys:
                    pipe.incr(self._version_key(key))
                    pipe.expire(self._version_key(key), VERSION_TTL_SECONDS)
                pipe.delete(*(self.prefix + key for key in keys))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self.breaker.trip(exc, "cache delete")

    def _version_key(self, key: str) -> str:
        return f"{self.prefix}version:{key}"

    async def check(self) -> None:
        await self.redis.ping()

    async def close(self) -> None:
        await self.redis.aclose()
