"""Database engine, sessions and the declarative base shared by every domain's tables."""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import DateTime, MetaData, TypeDecorator, event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import ConnectionPoolEntry

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every database (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def create_engine(url: str) -> AsyncEngine:
    """An engine for ``url``; on SQLite, foreign keys on and WAL for concurrent readers."""
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        kwargs = {"connect_args": {"timeout": 30}}
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        WriteTurns().install(engine)
    else:
        event.listen(engine.sync_engine, "do_connect", _connect_or_operational_error)
    return engine


def _connect_or_operational_error(
    dialect: Dialect, _record: ConnectionPoolEntry, cargs: tuple[Any, ...], cparams: dict[str, Any]
) -> Any:
    """Connect; a server that refuses or drops the connection is the driver's ``OperationalError``.
    asyncpg raises a plain ``OSError`` (``ConnectionRefusedError`` while PostgreSQL is down),
    which SQLAlchemy passes on unwrapped, and the API answered 500; wrapped, it is what it means,
    the database is unavailable (503 with Retry-After, see ``iap.errors``)."""
    try:
        return dialect.connect(*cargs, **cparams)
    except OSError as exc:
        raise dialect.loaded_dbapi.OperationalError(str(exc) or type(exc).__name__, exc) from exc


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class WriteTurns:
    """SQLite writers of this process take turns, in the order they ask, instead of polling.

    SQLite lets one connection write at a time. A connection that finds the database locked
    sleeps and tries again, ever longer (1, 2, 5 ... 100 ms), until its busy timeout: under a
    steady stream of short writes from the API and the embedded worker, the unlucky one kept
    losing and an upload waited over a second. Here a connection waits on an asyncio lock
    from its first INSERT, UPDATE or DELETE (where the driver opens the write transaction) to
    its return to the pool (after its commit or rollback), so the next writer starts as soon
    as the last one ends. Other processes on the same file (the CLI, a second server) are
    still kept apart by SQLite's own lock and busy timeout. A task that already holds the turn
    through another connection does not wait for itself, and a wait longer than
    ``MAX_WAIT_SECONDS`` goes on without the turn (SQLite's lock still guards the file)."""

    MAX_WAIT_SECONDS = 30.0

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Turn] = (
            weakref.WeakKeyDictionary()
        )

    def install(self, engine: AsyncEngine) -> None:
        event.listen(engine.sync_engine, "before_cursor_execute", self._before_execute)
        for name in ("checkin", "invalidate"):
            event.listen(engine.sync_engine.pool, name, self._release)

    def _turn(self) -> _Turn:
        loop = asyncio.get_running_loop()
        turn = self._locks.get(loop)
        if turn is None:
            turn = self._locks[loop] = _Turn()
        return turn

    def _before_execute(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        info = conn.info
        if "iap_turn" in info or not statement.lstrip()[:7].upper().startswith(_WRITES):
            return
        turn = self._turn()
        if turn.owner is not None and turn.owner is asyncio.current_task():
            return
        dbapi_connection = conn.connection.dbapi_connection
        if dbapi_connection.run_async(lambda _raw: turn.take(self.MAX_WAIT_SECONDS)):
            info["iap_turn"] = turn

    def _release(self, _dbapi_connection: Any, record: Any, *_args: Any) -> None:
        turn = record.info.pop("iap_turn", None) if record is not None else None
        if turn is not None:
            turn.give_back()


class _Turn:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.owner: asyncio.Task[Any] | None = None

    async def take(self, most_seconds: float) -> bool:
        try:
            async with asyncio.timeout(most_seconds):
                await self.lock.acquire()
        except TimeoutError:
            log.warning(
                "waited %.0f s for this process's turn to write to SQLite; writing without it",
                most_seconds,
            )
            return False
        self.owner = asyncio.current_task()
        return True

    def give_back(self) -> None:
        self.owner = None
        self.lock.release()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with factory() as session:
        yield session
