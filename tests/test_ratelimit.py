"""The rate limiters, in memory and in Redis, under a controlled clock: a limit of N per period
holds over any span of that period, including one that straddles a round-number boundary."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

from iap.cache import RedisBreaker, create_redis
from iap.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(1_000_000_059.5)  # half a second before a minute boundary


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryRateLimiter(clock)
        return
    redis = create_redis(request.getfixturevalue("redis_url"))
    prefix = f"test-{secrets.token_hex(4)}:"
    yield RedisRateLimiter(redis, prefix, RedisBreaker(), clock)
    keys = [key async for key in redis.scan_iter(f"{prefix}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def test_a_burst_across_a_minute_boundary_is_still_limited(
    limiter: RateLimiter, clock: Clock
) -> None:
    for _ in range(3):
        assert await limiter.hit("k", 5, 60) is None
    clock.now += 1  # past the boundary: a fixed window would start counting afresh here
    for _ in range(2):
        assert await limiter.hit("k", 5, 60) is None
    wait = await limiter.hit("k", 5, 60)
    assert wait == pytest.approx(59)  # the first request leaves the window in 59 s


async def test_requests_are_let_in_again_as_old_ones_leave_the_window(
    limiter: RateLimiter, clock: Clock
) -> None:
    for step in range(3):
        assert await limiter.hit("k", 3, 10) is None
        clock.now += 2 if step < 2 else 0
    assert await limiter.hit("k", 3, 10) == pytest.approx(6)
    clock.now += 6  # the first request (10 s ago) has left; the others remain
    assert await limiter.hit("k", 3, 10) is None
    assert await limiter.hit("k", 3, 10) == pytest.approx(2)


async def test_refused_requests_do_not_extend_the_wait(limiter: RateLimiter, clock: Clock) -> None:
    assert await limiter.hit("k", 1, 30) is None
    for _ in range(10):
        clock.now += 1
        assert await limiter.hit("k", 1, 30) is not None
    clock.now += 20
    assert await limiter.hit("k", 1, 30) is None


async def test_keys_are_independent(limiter: RateLimiter) -> None:
    assert await limiter.hit("a", 1, 60) is None
    assert await limiter.hit("a", 1, 60) is not None
    assert await limiter.hit("b", 1, 60) is None
