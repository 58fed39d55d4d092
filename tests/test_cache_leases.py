"""The caches, in memory and in Redis: a fill that raced an invalidation does not put back the
value the invalidation removed (the reader read the database before the writer's change)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

from iap.cache import Cache, MemoryCache, RedisBreaker, RedisCache, create_redis

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    if request.param == "memory":
        yield MemoryCache()
        return
    redis = create_redis(request.getfixturevalue("redis_url"))
    prefix = f"test-{secrets.token_hex(4)}:"
    yield RedisCache(redis, prefix, RedisBreaker())
    keys = [key async for key in redis.scan_iter(f"{prefix}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def test_a_fill_with_a_fresh_lease_is_stored(cache: Cache) -> None:
    lease = await cache.lease("k")
    await cache.fill("k", "v1", 60, lease)
    assert await cache.get("k") == "v1"


async def test_a_fill_that_raced_an_invalidation_is_dropped(cache: Cache) -> None:
    lease = await cache.lease("k")  # a reader misses, takes its lease, reads the old row...
    await cache.delete("k")  # ...a writer commits a change and invalidates...
    await cache.fill("k", "old", 60, lease)  # ...and the reader's fill must not land
    assert await cache.get("k") is None
    fresh = await cache.lease("k")  # the next reader fills normally
    await cache.fill("k", "new", 60, fresh)
    assert await cache.get("k") == "new"


async def test_invalidating_one_key_leaves_other_leases_valid(cache: Cache) -> None:
    lease_a, lease_b = await cache.lease("a"), await cache.lease("b")
    await cache.delete("a")
    await cache.fill("b", "vb", 60, lease_b)
    await cache.fill("a", "va", 60, lease_a)
    assert await cache.get("b") == "vb"
    assert await cache.get("a") is None
