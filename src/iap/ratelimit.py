"""Sliding-window rate limits: in-process by default, shared through Redis when configured.

A limit of ``N/period`` means at most N accepted requests in *any* span of ``period`` seconds,
so no burst of 2N straddling a window boundary. Each key keeps the times of its accepted requests
(at most N of them); refused requests are not recorded, so a client that keeps hammering is
let in again as soon as its oldest accepted request leaves the window.

Limits fail open: if Redis is down, requests are served rather than refused.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from iap.cache import RedisBreaker
from iap.config import Rate
from iap.errors import RateLimited

Clock = Callable[[], float]


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, period: int) -> float | None:
        """Count one request; return the seconds to wait if over the limit, else None."""
        ...


class MemoryRateLimiter:
    MAX_KEYS = 100_000

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._log: dict[str, deque[float]] = {}

    async def hit(self, key: str, limit: int, period: int) -> float | None:
        now = self._clock()
        times = self._log.setdefault(key, deque())
        while times and times[0] <= now - period:
            times.popleft()
        if len(times) >= limit:
            return times[0] + period - now
        times.append(now)
        if len(self._log) > self.MAX_KEYS:
            self._forget_idle(now, period)
        return None

    def _forget_idle(self, now: float, period: int) -> None:
        self._log = {k: v for k, v in self._log.items() if v and v[-1] > now - period}


# KEYS[1] = sorted set of accepted request times; ARGV = now, period, limit, unique member.
# Returns nil when accepted, else the seconds until the oldest entry leaves the window.
_SLIDING_WINDOW = """
local now = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tostring(tonumber(oldest[2]) + period - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(period * 1000))
return false
"""


class RedisRateLimiter:
    def __init__(
        self, redis: Redis, prefix: str, breaker: RedisBreaker, clock: Clock = time.time
    ) -> None:
        self.redis = redis
        self.prefix = prefix + "rate:"
        self.breaker = breaker
        self._clock = clock
        self._script = redis.register_script(_SLIDING_WINDOW)

    async def hit(self, key: str, limit: int, period: int) -> float | None:
        if self.breaker.is_open:
            return None
        now = self._clock()
        member = f"{now:.6f}:{secrets.token_hex(4)}"
        try:
            wait = await self._script(keys=[self.prefix + key], args=[now, period, limit, member])
        except (RedisError, OSError) as exc:
            self.breaker.trip(exc, "rate limit")
            return None
        return None if wait is None else float(wait)


async def enforce(limiter: RateLimiter, key: str, rate: Rate, what: str) -> None:
    """Count a request under ``key``; raise ``RateLimited`` (429 with Retry-After) when ``key``
    is over ``rate``."""
    wait = await limiter.hit(key, rate.requests, rate.seconds)
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise RateLimited(
            f"Too many {what}; retry in {seconds} s.", headers={"Retry-After": str(seconds)}
        )
