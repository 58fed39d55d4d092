"""The embedded worker's passes run in child processes (``IAP_ANALYSIS_PROCESSES``): uploads
are analysed there, a delete still stops a pass, a child that dies or hangs mid-pass costs one
attempt and is replaced, and no child outlives the app, even one killed outright.

The rest of the suite runs passes in threads (``analysis_processes=0`` in the test settings,
for start-up time); these tests cover the child processes, on the embedded deployment.

To catch a pass in the middle, a gate holds the parent at the child's n-th "go on?" question
(asked before the decode, after it, and after each analyser): the child then waits, mid-pass,
for the answer, with the original decoded, for as long as the test needs.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from iap.analysis.analysers import text
from iap.analysis.pass_pool import PassPool
from iap.analysis.pipeline import Outcome
from iap.images.service import derivatives_prefix
from iap.services import Services
from iap.storage import LocalStorage
from tests.conftest import ClientFactory, settings_env, settings_for
from tests.conftest import _free_port as free_port
from tests.factories import Account, image_bytes, make_account, uploaded, wait_for_analysis

BASELINE = {"properties", "exif", "colours", "quality", "hashes", "derivatives"}


@pytest.fixture
def backend() -> str:
    """Child processes serve the in-process worker: the embedded deployment's."""
    return "embedded"


def services_of(client: TestClient) -> Services:
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    return services


def pool_of(client: TestClient) -> PassPool:
    pool = services_of(client).analysis_pool
    assert pool is not None, "the app runs no analysis processes"
    return pool


def ready_pids(pool: PassPool, timeout: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout
    while not (pids := pool.pids()):
        assert time.monotonic() < deadline, "no analysis process became ready"
        time.sleep(0.05)
    return pids


def gone(pid: int) -> bool:
    """The process has ended (a zombie nobody reaped yet counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in {"Z", "X"}


def wait_gone(pid: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not gone(pid):
        assert time.monotonic() < deadline, f"process {pid} is still running"
        time.sleep(0.05)


class Gate:
    """Holds each pass at the ``step``-th time its child asks whether to go on, until
    ``release()``; ``reached()`` waits for the next pass to be held."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, step: int) -> None:
        self.step = step
        self._held: queue.Queue[None] = queue.Queue()
        self._opened: queue.Queue[None] = queue.Queue()
        # How many times each finished pass asked to go on.
        self.asked: list[int] = []
        run_pass = PassPool.run_pass
        gate = self

        def held_run_pass(
            pool: PassPool,
            data: bytes,
            analysers: Sequence[str],
            lost: Callable[[], bool] | None = None,
        ) -> tuple[float, list[Outcome]]:
            asked = 0

            def gated_lost() -> bool:
                nonlocal asked
                asked += 1
                if asked == gate.step:
                    gate._held.put(None)
                    gate._opened.get(timeout=120)
                return lost is not None and lost()

            try:
                return run_pass(pool, data, analysers, gated_lost)
            finally:
                gate.asked.append(asked)

        monkeypatch.setattr(PassPool, "run_pass", held_run_pass)

    def reached(self, timeout: float = 60) -> None:
        self._held.get(timeout=timeout)

    def release(self) -> None:
        self._opened.put(None)


def status_of(client: TestClient, owner: Account, image_id: str) -> dict[str, Any]:
    return dict(client.get(f"/image/{image_id}", headers=owner.headers).json()["analysis"])


def test_an_upload_is_analysed_in_a_child_process_with_every_result(
    client_with: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def not_here(*_: object, **__: object) -> Any:
        raise AssertionError("a pass ran in the API process")

    # Anything the pass did in this process would fail loudly: the pass in a thread, and
    # loading the OCR models.
    monkeypatch.setattr("iap.analysis.tasks.run_pass", not_here)
    monkeypatch.setattr(text, "_load_engine", not_here)
    client = client_with(analysis_processes=1, disabled_analysers="")
    owner = make_account(client)
    image = uploaded(client, owner, image_bytes("JPEG", size=(640, 480)))
    done = wait_for_analysis(client, owner, image["id"], {"succeeded", "failed"})
    assert done["analysis"]["status"] == "succeeded", done["analysis"]
    assert done["analysis"]["attempts"] == 1
    results = client.get(f"/image/{image['id']}/analysis", headers=owner.headers).json()["results"]
    for name in BASELINE | {"text"}:
        assert results[name]["status"] == "succeeded", (name, results[name])
    assert results["properties"]["result"]["width"] == 640
    response = client.get(f"/image/{image['id']}/thumbnail?size=256", headers=owner.headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/webp"
    (pid,) = pool_of(client).pids()
    parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert parent == os.getpid()


def outcome_count(client: TestClient, outcome: str) -> float:
    """``iap_analysis_job_outcomes_total{outcome=...}`` (process-wide: compare before/after)."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f'iap_analysis_job_outcomes_total{{outcome="{outcome}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_delete_mid_pass_stops_it_and_leaves_nothing(
    client_with: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(monkeypatch, step=3)  # after the decode and the first analyser
    client = client_with(analysis_processes=1)
    events: list[dict[str, Any]] = []
    notifier = services_of(client).notifier
    notify = notifier.notify

    async def recorded(user_id: uuid.UUID, event: dict[str, Any]) -> None:
        events.append(event)
        await notify(user_id, event)

    monkeypatch.setattr(notifier, "notify", recorded)
    owner = make_account(client)
    abandoned = outcome_count(client, "abandoned")
    image = uploaded(client, owner, image_bytes("PNG", size=(1200, 800)))
    gate.reached()
    (pid,) = pool_of(client).pids()
    assert client.delete(f"/image/{image['id']}", headers=owner.headers).status_code == 204
    gate.release()
    deadline = time.monotonic() + 60
    while outcome_count(client, "abandoned") == abandoned:
        assert time.monotonic() < deadline, "the pass did not stop"
        time.sleep(0.05)
    assert gate.asked == [3]  # told to stop, the child went no further
    kinds = [e["type"] for e in events if e.get("image_id") == image["id"]]
    assert kinds == ["analysis.queued", "analysis.started"]
    storage = services_of(client).storage
    assert isinstance(storage, LocalStorage)
    assert not (storage.root / derivatives_prefix(uuid.UUID(image["id"]))).exists()
    # The child stopped its pass cleanly: it serves the next upload.
    gate.release()  # that pass is not held
    after = uploaded(client, owner)
    assert wait_for_analysis(client, owner, after["id"], {"succeeded"})
    assert pool_of(client).pids() == [pid]


def test_a_child_killed_mid_pass_costs_one_attempt_and_is_replaced(
    client_with: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(monkeypatch, step=2)  # right after the decode
    client = client_with(
        analysis_processes=1, analysis_min_backoff_ms=100, analysis_max_backoff_ms=200
    )
    owner = make_account(client)
    image = uploaded(client, owner)
    gate.reached()
    (killed,) = pool_of(client).pids()
    os.kill(killed, signal.SIGKILL)
    wait_gone(killed)
    gate.release()  # the parent's "go on" finds the child dead
    gate.reached()  # the retry, in a fresh child
    retrying = status_of(client, owner, image["id"])
    assert retrying["attempts"] == 2
    assert "the analysis process died (signal 9, SIGKILL)" in retrying["error"]
    (fresh,) = pool_of(client).pids()
    assert fresh != killed
    gate.release()
    done = wait_for_analysis(client, owner, image["id"], {"succeeded", "failed"})
    assert done["analysis"]["status"] == "succeeded", done["analysis"]
    assert done["analysis"]["attempts"] == 2


def test_a_child_stuck_past_the_time_limit_is_killed_and_replaced(
    client_with: ClientFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    gate = Gate(monkeypatch, step=2)
    client = client_with(
        analysis_processes=1,
        analysis_time_limit_seconds=1,
        # The retry comes once the replacement child is warm: its start is not the attempt's.
        analysis_min_backoff_ms=3000,
        analysis_max_backoff_ms=4000,
    )
    pool = pool_of(client)
    (stuck,) = ready_pids(pool)
    owner = make_account(client)
    caplog.set_level(logging.WARNING, logger="iap.analysis.pass_pool")
    image = uploaded(client, owner)
    gate.reached()
    os.kill(stuck, signal.SIGSTOP)  # stuck mid-pass, as in a native call that never returns
    gate.release()
    gate.release()  # the retry is not held
    done = wait_for_analysis(client, owner, image["id"], {"succeeded", "failed"})
    assert done["analysis"]["status"] == "succeeded", done["analysis"]
    assert done["analysis"]["attempts"] >= 2  # a retry on a busy machine may hit the limit too
    wait_gone(stuck)
    assert f"analysis process {stuck} killed mid-pass" in caplog.text
    assert pool.pids() not in ([], [stuck])


def test_shutting_the_app_down_stops_its_children(client_with: ClientFactory) -> None:
    client = client_with(analysis_processes=2)
    owner = make_account(client)
    images = [uploaded(client, owner) for _ in range(3)]
    for image in images:
        assert wait_for_analysis(client, owner, image["id"], {"succeeded"})
    pool = pool_of(client)
    deadline = time.monotonic() + 60
    while len(pids := pool.pids()) < 2:
        assert time.monotonic() < deadline, pids
        time.sleep(0.05)
    client.__exit__(None, None, None)
    for pid in pids:
        assert gone(pid), f"analysis process {pid} outlived the app"


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


@pytest.fixture
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`iap serve` (embedded, one analysis process) in a process of its own."""
    settings = settings_for("embedded", request, tmp_path, analysis_processes=1)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IAP_")}
    env |= settings_env(settings) | {"IAP_PORT": str(port)}
    with (tmp_path / "serve.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "iap", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"iap serve did not start:\n{(tmp_path / 'serve.log').read_text()}")
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_children_exit_when_the_api_process_is_killed(served: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not (children := children_of(served.pid)):
        assert time.monotonic() < deadline, "the server started no analysis process"
        time.sleep(0.05)
    served.send_signal(signal.SIGKILL)
    served.wait()
    for pid in children:
        wait_gone(pid)
