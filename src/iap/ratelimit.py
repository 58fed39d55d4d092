"""Fixed-window rate limits: in-process by default, shared through Redis when configured.

Limits fail open: if Redis is down, requests are served rather than refused.
"""

from __future__ import annotations

import math
import time
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from iap.cache import RedisBreaker
from iap.errors import RateLimited


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, period: int) -> float | None:
        """Count one request; return the seconds to wait if over the limit, else None."""
        ...


class MemoryRateLimiter:
    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, int]] = {}

    async def hit(self, key: str, limit: int, period: int) -> float | None:
        now = time.time()
        window = int(now // period)
        start, count = self._windows.get(key, (window, 0))
        count = count + 1 if start == window else 1
        self._windows[key] = (window, count)
        if len(self._windows) > 100_000:
            self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
        if count > limit:
            return (window + 1) * period - now
        return None


class RedisRateLimiter:
    def __init__(self, redis: Redis, prefix: str, breaker: RedisBreaker) -> None:
        self.redis = redis
        self.prefix = prefix + "rate:"
        self.breaker = breaker

    async def hit(self, key: str, limit: int, period: int) -> float | None:
        if self.breaker.is_open:
            return None
        now = time.time()
        window = int(now // period)
        name = f"{self.prefix}{key}:{window}"
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                pipe.expire(name, period + 1)
                count, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            self.breaker.trip(exc, "rate limit")
            return None
        if int(count) > limit:
            return (window + 1) * period - now
        return None


async def enforce(limiter: RateLimiter, key: str, rate: tuple[int, int], what: str) -> None:
    """Raise ``RateLimited`` (429 with Retry-After) when ``key`` is over ``rate``."""
    limit, period = rate
    wait = await limiter.hit(key, limit, period)
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise RateLimited(
            f"Too many {what}; retry in {seconds} s.", headers={"Retry-After": str(seconds)}
        )
