"""The composition root: everything a process needs, built once from the settings.

The API (``iap.app``), the worker (``iap.worker``) and the CLI build a ``Services`` here and
close it when they stop. Only schema migrations (``iap migrate`` and Alembic's env) open a
database engine of their own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from anyio import CapacityLimiter, to_thread
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from iap import migrations
from iap.analysis.analysers import ANALYSERS
from iap.analysis.pass_pool import PassPool
from iap.cache import Cache, MemoryCache, RedisBreaker, RedisCache, create_redis
from iap.config import ConfigError, Settings
from iap.db import create_engine, create_sessionmaker
from iap.events.bus import EventBus, MemoryBus, RedisBus
from iap.events.service import Notifier
from iap.queue import TaskQueue
from iap.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from iap.storage import BlobStorage, StorageUnavailable, create_storage
from iap.tasks import TASKS

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything a request or a task may need (see ``build_services``)."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    storage: BlobStorage
    cache: Cache
    limiter: RateLimiter
    decode_slots: CapacityLimiter
    queue: TaskQueue
    events: EventBus
    notifier: Notifier
    # Where the in-process worker runs its analysis passes; None: in its own threads.
    analysis_pool: PassPool | None = None


async def build_services(settings: Settings) -> Services:
    """Connect everything; raise ``ConfigError`` with one clear line when something cannot work."""
    unknown = settings.disabled_analyser_names - {a.name for a in ANALYSERS}
    if unknown:
        raise ConfigError(
            f"IAP_DISABLED_ANALYSERS names unknown analysers: {', '.join(sorted(unknown))} "
            f"(known: {', '.join(a.name for a in ANALYSERS)})"
        )
    engine = create_engine(settings.resolved_database_url)
    try:
        await _prepare_schema(settings, engine)
        storage = create_storage(settings)
        try:
            await storage.check()
        except StorageUnavailable as exc:
            raise ConfigError(f"storage {settings.resolved_storage_url}: {exc.detail}") from None
    except BaseException:
        await engine.dispose()
        raise
    cache: Cache
    limiter: RateLimiter
    events: EventBus
    if settings.redis_url:
        redis = create_redis(settings.redis_url)
        breaker = RedisBreaker()
        cache = RedisCache(redis, settings.redis_prefix, breaker)
        limiter = RedisRateLimiter(redis, settings.redis_prefix, breaker)
        events = RedisBus(redis, settings.redis_prefix)
        try:
            await cache.check()
        except Exception as exc:  # the cache is optional: start, and say so
            log.warning(
                "redis at %s is unreachable (%s); running without cache until it is back",
                settings.redis_url,
                exc,
            )
    else:
        cache, limiter, events = MemoryCache(), MemoryRateLimiter(), MemoryBus()
    sessions = create_sessionmaker(engine)
    queue = TaskQueue(settings, TASKS)
    return Services(
        settings=settings,
        engine=engine,
        sessions=sessions,
        storage=storage,
        cache=cache,
        limiter=limiter,
        decode_slots=CapacityLimiter(settings.decode_concurrency),
        queue=queue,
        events=events,
        notifier=Notifier(sessions, events, queue),
    )


async def _prepare_schema(settings: Settings, engine: AsyncEngine) -> None:
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    where = f"database {engine.url.render_as_string()}"
    try:
        if settings.should_auto_migrate:
            await migrations.upgrade(engine)
            return
        current = await migrations.current_revision(engine)
    except (OSError, sa_exc.DBAPIError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise ConfigError(f"{where}: cannot be used ({reason})") from None
    head = migrations.head_revision()
    if current != head:
        raise ConfigError(
            f"{where}: the schema is at revision {current or 'none'} but this iap needs {head}; "
            "run `iap migrate` first"
        )


async def close_services(services: Services) -> None:
    await to_thread.run_sync(services.queue.close)
    await services.events.close()
    await services.cache.close()
    await services.storage.close()
    await services.engine.dispose()
