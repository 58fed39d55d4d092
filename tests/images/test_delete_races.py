"""Deleting an image while a worker records its results, on PostgreSQL (row locks): the two must
take their locks in the same order, or PostgreSQL kills one of them as a deadlock (a 500 for the
owner, or a failed analysis attempt).

The worker's side is played by hand, step by step: it inserts a result (which holds the image
row: the result points at it), waits until the delete is blocked, then updates the job row.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from iap.app import create_app
from iap.db import create_engine
from tests.conftest import settings_for
from tests.factories import make_account, uploaded, wait_for_analysis

WAIT_SECONDS = 30


@pytest.fixture
def postgres_client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    settings = settings_for("scaled", request, tmp_path)
    with TestClient(create_app(settings)) as client:
        yield client


async def _sessions_waiting_for_a_lock(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            found = await connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
            return int(found or 0)
    finally:
        await engine.dispose()


def test_deleting_an_image_while_its_results_are_recorded_does_not_deadlock(
    postgres_client: TestClient,
) -> None:
    client = postgres_client
    url = client.app.state.services.settings.resolved_database_url  # type: ignore[attr-defined]
    owner = make_account(client)
    image = uploaded(client, owner)
    job_id = wait_for_analysis(client, owner, image["id"], {"succeeded"})["analysis"]["job_id"]

    holding, delete_blocked = threading.Event(), threading.Event()

    async def worker_records_results() -> None:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection, connection.begin():
                await connection.execute(
                    text(
                        "INSERT INTO analysis_results "
                        "(id, image_id, analyser, version, status, duration_ms, created_at) "
                        "VALUES (:id, :image, 'race', 1, 'succeeded', 1.0, now())"
                    ),
                    {"id": uuid.uuid4(), "image": uuid.UUID(image["id"])},
                )
                holding.set()
                if not delete_blocked.wait(WAIT_SECONDS):
                    raise AssertionError("the delete never waited for the worker")
                await connection.execute(
                    text("UPDATE analysis_jobs SET attempts = attempts + 1 WHERE id = :id"),
                    {"id": uuid.UUID(job_id)},
                )
        finally:
            await engine.dispose()

    with ThreadPoolExecutor(2) as pool:
        worker = pool.submit(asyncio.run, worker_records_results())
        assert holding.wait(WAIT_SECONDS), "the worker's transaction did not start"
        deletion = pool.submit(client.delete, f"/image/{image['id']}", headers=owner.headers)
        deadline = time.monotonic() + WAIT_SECONDS
        while asyncio.run(_sessions_waiting_for_a_lock(url)) == 0:
            assert not deletion.done(), deletion.result().text
            assert time.monotonic() < deadline, "the delete did not wait for the worker's lock"
            time.sleep(0.05)
        delete_blocked.set()
        worker.result(timeout=WAIT_SECONDS)  # a deadlock would be raised here...
        response = deletion.result(timeout=WAIT_SECONDS)  # ...or turn up here as a 500
    assert response.status_code == 204, response.text
    assert client.get(f"/image/{image['id']}", headers=owner.headers).status_code == 404
