"""The edges of a job's runs: what a request or a stray message finds between attempts."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from fastapi.testclient import TestClient
from sqlalchemy import select

from iap.analysis import service
from iap.analysis.models import AnalysisJob, JobStatus
from iap.analysis.tasks import ANALYSE_IMAGE
from iap.db import utcnow
from iap.services import Services
from tests.factories import Account, uploaded, wait_for_analysis

T = TypeVar("T")


def on_app(client: TestClient, fn: Callable[[], Awaitable[T]]) -> T:
    assert client.portal is not None
    return client.portal.call(fn)


def services_of(client: TestClient) -> Services:
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    return services


def set_job(client: TestClient, image_id: str, **values: Any) -> uuid.UUID:
    """Put the image's job in a given state, as the service's own steps would leave it."""
    services = services_of(client)

    async def change() -> uuid.UUID:
        async with services.sessions() as session:
            job = await session.scalar(
                select(AnalysisJob).where(AnalysisJob.image_id == uuid.UUID(image_id))
            )
            assert job is not None
            for name, value in values.items():
                setattr(job, name, value)
            await session.commit()
            return job.id

    return on_app(client, change)


def job_row(client: TestClient, job_id: uuid.UUID) -> AnalysisJob:
    services = services_of(client)

    async def read() -> AnalysisJob:
        async with services.sessions() as session:
            job = await session.get(AnalysisJob, job_id)
            assert job is not None
            return job

    return on_app(client, read)


def test_a_request_between_attempts_keeps_the_pending_analysers_and_the_promised_rerun(
    client: TestClient, alice: Account
) -> None:
    image = uploaded(client, alice)
    wait_for_analysis(client, alice, image["id"], {"succeeded"})
    # An attempt at hashes failed and waits for its retry; colours were asked for during it.
    job_id = set_job(
        client,
        image["id"],
        status=JobStatus.QUEUED,
        analysers=["hashes"],
        attempts=1,
        rerun_pending=True,
        rerun_analysers=["colours"],
        enqueued_at=utcnow(),
    )
    response = client.post(
        f"/image/{image['id']}/analyze", headers=alice.headers, json={"analysers": ["quality"]}
    )
    assert response.status_code == 202, response.text
    # The new request starts the job over, with everything asked of it so far.
    job = job_row(client, job_id)
    assert job.analysers is not None
    assert set(job.analysers) >= {"hashes", "colours", "quality"}
    done = wait_for_analysis(client, alice, image["id"], {"succeeded", "failed"})
    assert done["analysis"]["status"] == "succeeded"


def test_a_failure_reported_without_a_run_leaves_a_finished_job_alone(
    client: TestClient, alice: Account
) -> None:
    image = uploaded(client, alice)
    job_id = uuid.UUID(
        wait_for_analysis(client, alice, image["id"], {"succeeded"})["analysis"]["job_id"]
    )
    services = services_of(client)

    async def report() -> service.Failure | None:
        # A duplicate message whose claim failed (say, a database blip) reports that attempt.
        async with services.sessions() as session:
            return await service.record_failure(
                session,
                services.cache,
                job_id,
                "OperationalError: connection reset",
                final=True,
                run_id=None,
                lease=timedelta(seconds=30),
            )

    assert on_app(client, report) is None
    after = client.get(f"/image/{image['id']}", headers=alice.headers).json()["analysis"]
    assert after["status"] == "succeeded"
    assert after["error"] is None


def test_a_job_whose_worker_was_lost_on_every_attempt_ends_failed(
    client: TestClient, alice: Account
) -> None:
    image = uploaded(client, alice)
    wait_for_analysis(client, alice, image["id"], {"succeeded"})
    most = services_of(client).settings.analysis_max_retries + 1
    # Its workers died mid-pass (killed, out of memory) on every attempt allowed: the job is
    # still running, with a lease nobody renews.
    job_id = set_job(
        client,
        image["id"],
        status=JobStatus.RUNNING,
        run_id=uuid.uuid4(),
        attempts=most,
        heartbeat_at=utcnow() - timedelta(hours=1),
        started_at=utcnow() - timedelta(hours=1),
    )
    queue = services_of(client).queue
    assert on_app(client, lambda: queue.enqueue(ANALYSE_IMAGE, [job_id])) == [job_id]
    done = wait_for_analysis(client, alice, image["id"], {"failed"})
    assert "lost on" in done["analysis"]["error"]
    assert done["analysis"]["attempts"] == most + 1
