"""A job runs at most once at a time, and stops when its image is deleted.

Re-analysis asked for while a run is in progress is queued after it (requests that arrive
meanwhile are coalesced into that one re-run), and the job row always tells the truth about
the run it describes."""

from __future__ import annotations

import asyncio
import io
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from PIL import Image

from iap.config import Settings
from iap.images.service import derivatives_prefix
from iap.storage import LocalStorage, create_storage
from tests.conftest import settings_for
from tests.events.test_sse import EventReader
from tests.live_server import LiveServer, RemoteAccount, remote_account, serve


@pytest.fixture
def server(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    # Several worker threads, so that runs could overlap if nothing stopped them.
    settings: Settings = settings_for(
        backend, request, tmp_path_factory.mktemp("one-run"), worker_threads=4
    )
    with serve(settings) as live:
        yield live


def noisy_jpeg() -> bytes:
    """A photo-sized image whose pass takes a noticeable time (about a second here)."""
    image = Image.effect_noise((2400, 1800), 64).convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def api(server: LiveServer, account: RemoteAccount) -> httpx.Client:
    return httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {account.access_token}"},
        timeout=60,
    )


def settled(http: httpx.Client, image_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.get(f"/image/{image_id}").json()["analysis"]
        if job["status"] in {"succeeded", "failed"}:
            return dict(job)
        time.sleep(0.1)
    raise AssertionError(f"analysis of {image_id} did not settle in {timeout}s")


def runs_in(events: list[dict[str, Any]], image_id: str) -> int:
    """How many runs the events show; fails if two of them overlapped."""
    running = runs = 0
    for event in events:
        if event["image_id"] != image_id:
            continue
        if event["type"] == "analysis.started":
            running += 1
            runs += 1
            assert running == 1, f"two runs of one job at once: {events}"
        elif event["type"] in {"analysis.succeeded", "analysis.failed", "analysis.retrying"}:
            running -= 1
    assert running == 0
    return runs


def collect(reader: EventReader, image_id: str, quiet_for: float = 3.0) -> list[dict[str, Any]]:
    """Every event until none has come for ``quiet_for`` seconds after the job settled."""
    seen: list[dict[str, Any]] = []
    while True:
        try:
            seen.append(reader.events.get(timeout=quiet_for))
        except Exception:
            return seen


def assert_truthful(job: dict[str, Any]) -> None:
    assert job["status"] == "succeeded", job
    assert job["attempts"] >= 1, job
    assert job["started_at"] is not None, job
    assert job["finished_at"] is not None, job
    started = datetime.fromisoformat(job["started_at"])
    assert started <= datetime.fromisoformat(job["finished_at"]), job
    assert started >= datetime.fromisoformat(job["queued_at"]), job


def upload_and_settle(http: httpx.Client) -> str:
    response = http.post("/image/upload", files={"file": ("n.jpg", noisy_jpeg(), "image/jpeg")})
    assert response.status_code == 201, response.text
    image_id = str(response.json()["id"])
    assert settled(http, image_id)["status"] == "succeeded"
    return image_id


def test_parallel_reanalysis_requests_never_run_the_job_twice_at_once(server: LiveServer) -> None:
    owner = remote_account(server)
    with api(server, owner) as http:
        image_id = upload_and_settle(http)
        reader = EventReader(server, owner)
        try:
            answers: list[int] = []
            start = threading.Barrier(8)

            def ask() -> None:
                with api(server, owner) as mine:
                    start.wait()
                    answers.append(mine.post(f"/image/{image_id}/analyze").status_code)

            threads = [threading.Thread(target=ask) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert answers == [202] * 8
            job = settled(http, image_id)
            events = collect(reader, image_id)
        finally:
            reader.close()
        job = settled(http, image_id)
    # Eight requests that all came before the first run could end: one run, and at most one
    # re-run queued after it for those that came while it ran.
    assert 1 <= runs_in(events, image_id) <= 2
    assert_truthful(job)


def test_reanalysis_asked_for_during_a_run_starts_after_it(server: LiveServer) -> None:
    owner = remote_account(server)
    with api(server, owner) as http:
        image_id = upload_and_settle(http)
        reader = EventReader(server, owner)
        try:
            assert http.post(f"/image/{image_id}/analyze").status_code == 202
            deadline = time.monotonic() + 60
            while http.get(f"/image/{image_id}").json()["analysis"]["status"] != "running":
                assert time.monotonic() < deadline, "the re-analysis never started"
                time.sleep(0.02)
            during = http.post(f"/image/{image_id}/analyze", json={"analysers": ["colours"]})
            assert during.status_code == 202, during.text
            # The answer describes the run in progress, and says that another follows it.
            assert during.json()["status"] == "running"
            assert during.json()["rerun_pending"] is True
            job = settled(http, image_id)
            events = collect(reader, image_id)
        finally:
            reader.close()
        job = settled(http, image_id)
    assert runs_in(events, image_id) == 2
    assert job["rerun_pending"] is False
    assert_truthful(job)


def outcome_count(http: httpx.Client, outcome: str) -> float:
    """``iap_analysis_job_outcomes_total{outcome=...}`` from /metrics (0 before the first)."""
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(f'iap_analysis_job_outcomes_total{{outcome="{outcome}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_deleting_an_image_during_its_analysis_stops_the_pass_and_leaves_no_files(
    server: LiveServer,
) -> None:
    owner = remote_account(server)
    storage = create_storage(server.settings)
    with api(server, owner) as http:
        abandoned = outcome_count(http, "abandoned")
        reader = EventReader(server, owner)
        try:
            response = http.post(
                "/image/upload", files={"file": ("n.jpg", noisy_jpeg(), "image/jpeg")}
            )
            assert response.status_code == 201, response.text
            image_id = str(response.json()["id"])
            reader.until("analysis.started", image_id)
            assert http.delete(f"/image/{image_id}").status_code == 204
            deadline = time.monotonic() + 60
            while outcome_count(http, "abandoned") == abandoned:
                assert time.monotonic() < deadline, "the pass did not stop"
                time.sleep(0.05)
            events = collect(reader, image_id)
        finally:
            reader.close()
    assert [e["type"] for e in events if e["image_id"] == image_id] == []

    async def leftovers() -> list[str]:
        return [blob.key async for blob in storage.list(derivatives_prefix(uuid.UUID(image_id)))]

    assert asyncio.run(leftovers()) == []
    if isinstance(storage, LocalStorage):
        assert not (storage.root / derivatives_prefix(uuid.UUID(image_id))).exists()
