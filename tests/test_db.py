"""The database engine: a server that cannot be reached is an ``OperationalError`` (which the
API answers with 503 and Retry-After), never a bare ``OSError`` (a 500); a connection the
server cut mid-query is a 503 too; SQLite writers of one process take turns."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, OperationalError

from iap.app import create_app
from iap.config import Settings
from iap.db import WriteTurns, create_engine
from tests.conftest import _free_port


def test_refused_postgresql_connection_is_an_operational_error() -> None:
    port = _free_port()  # nothing listens there: the connection is refused
    engine = create_engine(f"postgresql+asyncpg://iap@127.0.0.1:{port}/iap")

    async def query() -> None:
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    with pytest.raises(OperationalError) as raised:
        asyncio.run(query())
    assert isinstance(raised.value.orig.__cause__, ConnectionRefusedError)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("invalidated", "status", "code"),
    [(True, 503, "database_unavailable"), (False, 500, "internal_error")],
)
def test_a_connection_cut_mid_query_is_503_and_other_driver_errors_stay_500(
    tmp_path: Path, invalidated: bool, status: int, code: str
) -> None:
    """PostgreSQL stopping (or failing over) ends its connections mid-query: asyncpg's
    ConnectionDoesNotExistError reaches the API as a plain DBAPIError, flagged
    connection_invalidated, and was answered 500 (and the connection reset)."""
    app = create_app(Settings(data_dir=tmp_path))  # type: ignore[call-arg]

    async def cut() -> None:
        raise DBAPIError(
            "SELECT 1",
            {},
            ConnectionError("connection was closed in the middle of operation"),
            connection_invalidated=invalidated,
        )

    app.add_api_route("/cut", cut)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/cut")
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert ("retry-after" in response.headers) is invalidated


# SQLite writers take turns -------------------------------------------------------------------


def _sqlite_engine(path: Path, busy_ms: int) -> Any:
    """The app's SQLite engine, with SQLite's own busy timeout cut to ``busy_ms``: a writer
    that waits longer than that inside SQLite fails with "database is locked"."""
    engine = create_engine(f"sqlite+aiosqlite:///{path / 'turns.db'}")

    def short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.close()

    event.listen(engine.sync_engine, "connect", short_busy_timeout)
    return engine


async def _with_table(engine: Any) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE t (x INTEGER)"))


async def _rows(engine: Any) -> list[int]:
    async with engine.connect() as connection:
        return list((await connection.execute(text("SELECT x FROM t ORDER BY x"))).scalars())


async def _hold(engine: Any, written: asyncio.Event, seconds: float, fail: bool = False) -> None:
    """Write row 1, say so, and keep the write transaction open for ``seconds`` while other
    coroutines run; then commit, or roll back by raising if ``fail``."""
    async with engine.begin() as connection:
        await connection.execute(text("INSERT INTO t VALUES (1)"))
        written.set()
        await asyncio.sleep(seconds)
        if fail:
            raise RuntimeError("the request failed after its first write")


async def _write_after(engine: Any, written: asyncio.Event, x: int) -> None:
    await written.wait()
    async with engine.begin() as connection:
        await connection.execute(text("INSERT INTO t VALUES (:x)"), {"x": x})


def test_sqlite_writers_wait_their_turn_outside_sqlite(tmp_path: Path) -> None:
    """A writer held up for ten times SQLite's busy timeout still writes: it waited for its
    turn in the process, not in SQLite's sleep-and-retry loop. Without turns it fails."""
    engine = _sqlite_engine(tmp_path, busy_ms=50)

    async def scenario() -> list[int]:
        await _with_table(engine)
        written = asyncio.Event()
        await asyncio.gather(
            _hold(engine, written, 0.5), *(_write_after(engine, written, x) for x in range(2, 6))
        )
        rows = await _rows(engine)
        await engine.dispose()
        return rows

    assert asyncio.run(scenario()) == [1, 2, 3, 4, 5]


def test_a_turn_ends_with_a_rollback_and_a_cancelled_wait_takes_none(tmp_path: Path) -> None:
    engine = _sqlite_engine(tmp_path, busy_ms=50)

    async def scenario() -> list[int]:
        await _with_table(engine)
        written = asyncio.Event()
        failing = asyncio.create_task(_hold(engine, written, 0.3, fail=True))
        await written.wait()
        cancelled = asyncio.create_task(_write_after(engine, written, 2))
        waiting = asyncio.create_task(_write_after(engine, written, 3))
        await asyncio.sleep(0.1)
        cancelled.cancel()
        with pytest.raises(RuntimeError):
            await failing
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        await asyncio.wait_for(waiting, 5)
        async with engine.begin() as connection:  # and the turn is free again
            await connection.execute(text("INSERT INTO t VALUES (4)"))
        rows = await _rows(engine)
        await engine.dispose()
        return rows

    assert asyncio.run(scenario()) == [3, 4]


def test_a_task_holding_the_turn_does_not_wait_for_itself(tmp_path: Path) -> None:
    """A second connection of the same task writing while the first holds the write: SQLite
    says it is locked (as it always did), instead of the task waiting on its own turn."""
    engine = _sqlite_engine(tmp_path, busy_ms=50)

    async def scenario() -> None:
        await _with_table(engine)
        async with engine.begin() as first:
            await first.execute(text("INSERT INTO t VALUES (1)"))
            async with engine.begin() as second:
                await second.execute(text("INSERT INTO t VALUES (2)"))

    async def bounded() -> None:
        try:
            await asyncio.wait_for(scenario(), 10)
        finally:
            await engine.dispose()

    with pytest.raises(OperationalError, match="database is locked"):
        asyncio.run(bounded())


def test_a_turn_waited_for_too_long_goes_on_to_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(WriteTurns, "MAX_WAIT_SECONDS", 0.1)
    engine = _sqlite_engine(tmp_path, busy_ms=50)

    async def scenario() -> None:
        await _with_table(engine)
        written = asyncio.Event()
        holding = asyncio.create_task(_hold(engine, written, 1.0))
        try:
            await _write_after(engine, written, 2)
        finally:
            await holding
            await engine.dispose()

    with pytest.raises(OperationalError, match="database is locked"):
        asyncio.run(scenario())
    assert "turn to write to SQLite" in caplog.text
