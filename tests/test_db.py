"""The database engine: a server that cannot be reached is an ``OperationalError`` (which the
API answers with 503 and Retry-After), never a bare ``OSError`` (a 500); a connection the
server cut mid-query is a 503 too."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError

from iap.app import create_app
from iap.config import Settings
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
