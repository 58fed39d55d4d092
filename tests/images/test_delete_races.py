"""Deleting an image while a worker records its results, on PostgreSQL (row locks): the two must
take their locks in the same order, or PostgreSQL kills one of them as a deadlock (a 500 for the
owner, or a failed analysis attempt).

The worker's side is played by hand, step by step: it inserts a result (which holds the image
row: the result points at it), waits until the delete is blocked, then updates the job row.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from iap.analysis import service
from iap.analysis.analysers import by_name
from iap.analysis.models import AnalysisJob, JobStatus
from iap.analysis.pipeline import run_pass
from iap.app import create_app
from iap.db import create_engine, utcnow
from iap.images.models import Image
from iap.images.service import original_key
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


def test_a_delete_while_a_run_records_its_results_wins_without_a_deadlock(
    postgres_client: TestClient,
) -> None:
    """The run itself (``record_success``), not a hand-played one: it takes the image before
    the job, as the delete does. Taking the job first, it held the job while its results
    waited for the image the delete held, and the delete's cascade waited for the job."""
    client = postgres_client
    services = client.app.state.services  # type: ignore[attr-defined]
    url = services.settings.resolved_database_url
    owner = make_account(client)
    image = uploaded(client, owner)
    wait_for_analysis(client, owner, image["id"], {"succeeded"})
    image_id = uuid.UUID(image["id"])

    async def scenario() -> service.RunEnd:
        async with services.sessions() as session:
            job = await session.scalar(select(AnalysisJob).where(AnalysisJob.image_id == image_id))
            row = await session.get(Image, image_id)
            assert job is not None
            assert row is not None
            run_id = uuid.uuid4()  # this run holds the job, as its claim made it
            job.status, job.run_id, job.heartbeat_at = JobStatus.RUNNING, run_id, utcnow()
            await session.commit()
            ticket = service.Ticket(job.id, image_id, row.user_id, row.storage_key, None, 1, run_id)
        data = await services.storage.read_all(ticket.storage_key)
        _, outcomes = run_pass(io.BytesIO(data), by_name(["properties"]))

        async def record() -> service.RunEnd:
            async with services.sessions() as session:
                return await service.record_success(
                    session, services.storage, services.cache, ticket, outcomes
                )

        engine = create_engine(url)
        try:
            async with engine.connect() as deleting:
                # The delete's first step (lock_images), then the run records.
                await deleting.execute(
                    text("SELECT id FROM images WHERE id = :id FOR UPDATE"), {"id": image_id}
                )
                recording = asyncio.create_task(record())
                deadline = time.monotonic() + WAIT_SECONDS
                while await _sessions_waiting_for_a_lock(url) == 0:
                    assert not recording.done(), "the run did not wait for the image"
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
                # The delete's cascade takes the job row: a deadlock if the run holds it.
                await deleting.execute(text("DELETE FROM images WHERE id = :id"), {"id": image_id})
                await deleting.commit()
            return await asyncio.wait_for(recording, WAIT_SECONDS)
        finally:
            await engine.dispose()

    end = client.portal.call(scenario)  # type: ignore[union-attr]
    assert end is service.RunEnd.GONE  # and the run removed the files of the deleted image
    portal = client.portal
    assert portal is not None
    assert not portal.call(services.storage.exists, original_key(image_id))
