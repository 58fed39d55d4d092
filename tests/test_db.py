"""The database engine: a server that cannot be reached is an ``OperationalError`` (which the
API answers with 503 and Retry-After), never a bare ``OSError`` (a 500)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from iap.db import create_engine
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
