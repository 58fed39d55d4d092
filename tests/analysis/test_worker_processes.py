"""The scaled topology: the API enqueues on RabbitMQ, separate `iap worker` processes consume.
A worker killed with SIGKILL mid-job loses no job (RabbitMQ redelivers the unacknowledged
message), and a message the broker lost is re-sent by the reconciler from the database."""

from __future__ import annotations

import io
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pika
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from iap.analysis.service import retry_failed
from iap.analysis.tasks import dispatch
from iap.app import create_app
from iap.config import Settings
from tests.conftest import delete_queues, settings_env, settings_for
from tests.factories import Account, make_account, uploaded, wait_for_analysis

StartWorker = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def rabbit_settings(request: pytest.FixtureRequest, tmp_path: Path, amqp_url: str) -> Settings:
    return settings_for(
        "scaled",
        request,
        tmp_path,
        broker_url=amqp_url,
        queue_name=f"iap-test-{secrets.token_hex(4)}",
        analysis_min_backoff_ms=100,
        analysis_max_backoff_ms=500,
        reconcile_interval_seconds=1,
        reconcile_after_seconds=3,
        worker_threads=1,
    )


@pytest.fixture
def api(rabbit_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(rabbit_settings)) as client:
        assert not client.app.state.services.queue.in_process  # type: ignore[attr-defined]
        yield client


@contextmanager
def worker_processes(settings: Settings, logs: Path) -> Iterator[StartWorker]:
    """``start()`` runs one more ``iap worker`` (one thread) on ``settings``, logging to
    ``logs/worker-N.log``; ``start(*args, **variables)`` adds arguments and environment
    variables. All are stopped at the end (SIGTERM, then SIGKILL)."""
    started: list[subprocess.Popen[bytes]] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IAP_", "GLIBC_"))}
    env |= settings_env(settings)

    def start(*args: str, **variables: str) -> subprocess.Popen[bytes]:
        log = (logs / f"worker-{len(started)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "iap", "worker", "--threads", "1", *args],
            env=env | variables,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture
def start_worker(rabbit_settings: Settings, tmp_path: Path) -> Iterator[StartWorker]:
    with worker_processes(rabbit_settings, tmp_path) as start:
        yield start
    _delete_queues(rabbit_settings)


def _delete_queues(settings: Settings, *, webhooks: bool = True) -> None:
    assert settings.broker_url
    names = [settings.queue_name] + ([f"{settings.queue_name}-webhooks"] if webhooks else [])
    delete_queues(settings.broker_url, *names)


def noise_png(side: int) -> bytes:
    """Incompressible pixels: slow enough to decode and analyse to be caught mid-job."""
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(
        out, "PNG", compress_level=1
    )
    return out.getvalue()


def test_worker_process_analyses_uploads(api: TestClient, start_worker: StartWorker) -> None:
    owner = make_account(api)
    images = [uploaded(api, owner) for _ in range(3)]
    start_worker()
    for image in images:
        done = wait_for_analysis(api, owner, image["id"], {"succeeded", "failed"})
        assert done["analysis"]["status"] == "succeeded", done["analysis"]
    results = api.get(f"/image/{images[0]['id']}/analysis", headers=owner.headers).json()
    assert results["results"]["properties"]["status"] == "succeeded"
    assert api.get(f"/image/{images[0]['id']}/thumbnail", headers=owner.headers).status_code == 200


def test_sigkilled_worker_loses_no_job(api: TestClient, start_worker: StartWorker) -> None:
    owner: Account = make_account(api)
    images = [uploaded(api, owner, noise_png(2400), filename=f"noise{i}.png") for i in range(3)]
    first = start_worker()
    deadline = time.monotonic() + 60
    while True:  # wait until the worker is in the middle of a job
        states = [
            api.get(f"/image/{img['id']}", headers=owner.headers).json()["analysis"]["status"]
            for img in images
        ]
        if "running" in states:
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    start_worker()
    finals = [wait_for_analysis(api, owner, img["id"], {"succeeded", "failed"}) for img in images]
    assert [f["analysis"]["status"] for f in finals] == ["succeeded"] * 3
    assert max(f["analysis"]["attempts"] for f in finals) >= 2  # the killed attempt counted


def test_reconciler_resends_a_message_the_broker_lost(
    api: TestClient, start_worker: StartWorker, rabbit_settings: Settings
) -> None:
    owner = make_account(api)
    image = uploaded(api, owner)
    _delete_queues(rabbit_settings, webhooks=False)  # the broker forgets the message
    time.sleep(rabbit_settings.reconcile_after_seconds)
    start_worker()
    done = wait_for_analysis(api, owner, image["id"], {"succeeded", "failed"}, timeout=60)
    assert done["analysis"]["status"] == "succeeded"


def test_worker_refuses_to_start_without_a_broker(rabbit_settings: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IAP_")}
    env |= settings_env(rabbit_settings)
    del env["IAP_BROKER_URL"]
    result = subprocess.run(
        [sys.executable, "-m", "iap", "worker"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "IAP_BROKER_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_poisoned_job_is_dead_lettered_on_rabbitmq_and_retryable(
    request: pytest.FixtureRequest, tmp_path: Path, amqp_url: str
) -> None:
    settings = settings_for(
        "scaled",
        request,
        tmp_path,
        broker_url=amqp_url,
        queue_name=f"iap-test-{secrets.token_hex(4)}",
        worker_threads=1,
        analysis_max_retries=1,
        analysis_min_backoff_ms=100,
        analysis_max_backoff_ms=200,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("IAP_")}
    env |= settings_env(settings)
    worker = subprocess.Popen(
        [sys.executable, "-m", "iap", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with TestClient(create_app(settings)) as api:
            owner = make_account(api)
            original = noise_png(64)
            image = uploaded(api, owner, original)
            wait_for_analysis(api, owner, image["id"], {"succeeded"})
            storage = api.app.state.services.storage  # type: ignore[attr-defined]
            key = f"originals/{image['id']}"
            api.portal.call(storage.put, key, io.BytesIO(b"rotten bytes"), "image/png")  # type: ignore[union-attr]
            assert (
                api.post(f"/image/{image['id']}/analyze", headers=owner.headers).status_code == 202
            )
            dead = wait_for_analysis(api, owner, image["id"], {"failed"})["analysis"]
            assert dead["attempts"] == 2
            assert "not an image" in dead["error"]
            with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
                declared = connection.channel().queue_declare(
                    f"{settings.queue_name}.XQ", passive=True
                )
            assert declared.method.message_count >= 1  # RabbitMQ's dead-letter queue holds it

            api.portal.call(storage.put, key, io.BytesIO(original), "image/png")  # type: ignore[union-attr]
            services = api.app.state.services  # type: ignore[attr-defined]

            async def retry() -> None:
                async with services.sessions() as session:
                    queued = await retry_failed(
                        session, services.cache, [uuid.UUID(dead["job_id"])]
                    )
                    await dispatch(session, services.queue, services.notifier, queued)

            api.portal.call(retry)  # type: ignore[union-attr]
            healed = wait_for_analysis(api, owner, image["id"], {"succeeded", "failed"})
            assert healed["analysis"]["status"] == "succeeded"
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        _delete_queues(settings)


def ready_messages(settings: Settings, queue: str) -> int:
    """Messages waiting in ``queue``: what KEDA's RabbitMQ scaler reads to size the workers."""
    assert settings.broker_url
    with pika.BlockingConnection(pika.URLParameters(settings.broker_url)) as connection:
        declared = connection.channel().queue_declare(queue, passive=True)
        return int(declared.method.message_count)


def test_scale_from_zero_a_burst_waits_then_a_stopped_worker_gives_its_messages_back(
    request: pytest.FixtureRequest, tmp_path: Path, amqp_url: str
) -> None:
    """As an autoscaler runs them: no worker while idle; a burst of uploads waits in the queue;
    the first worker is stopped (scaled in) mid-burst and returns what it had not started; the
    next one finishes the rest. Every job runs exactly once. The reconciler is left at its
    default pace, so every message counted below is one the broker kept, not one resent."""
    settings = settings_for(
        "scaled",
        request,
        tmp_path,
        broker_url=amqp_url,
        queue_name=f"iap-test-{secrets.token_hex(4)}",
        worker_threads=1,
    )
    burst = 8
    try:
        with (
            worker_processes(settings, tmp_path) as start_worker,
            TestClient(create_app(settings)) as api,
        ):
            owner = make_account(api)
            images = [
                uploaded(api, owner, noise_png(900), filename=f"burst-{n}.png")
                for n in range(burst)
            ]

            def statuses() -> list[str]:
                return [
                    api.get(f"/image/{image['id']}", headers=owner.headers).json()["analysis"][
                        "status"
                    ]
                    for image in images
                ]

            assert ready_messages(settings, settings.queue_name) == burst  # nothing consumes
            assert statuses() == ["queued"] * burst

            first = start_worker()
            deadline = time.monotonic() + 90
            while True:  # until one job is done and the next one is in hand
                now = statuses()
                if "succeeded" in now and "running" in now:
                    break
                assert first.poll() is None, (tmp_path / "worker-0.log").read_text()
                assert time.monotonic() < deadline, now
                time.sleep(0.05)
            in_hand = now.index("running")
            first.send_signal(signal.SIGTERM)  # scaled in, mid-burst and mid-job
            assert first.wait(timeout=60) == 0
            after = statuses()
            assert after[in_hand] == "succeeded", after  # it finished the job in hand
            done = after.count("succeeded")
            assert 2 <= done < burst, after
            assert sorted(set(after)) == ["queued", "succeeded"], after  # none stuck or failed
            deadline = time.monotonic() + 10
            while ready_messages(settings, settings.queue_name) != burst - done:
                assert time.monotonic() < deadline, "the stopped worker kept messages"
                time.sleep(0.2)

            start_worker()  # scaled out again: the queue is not empty
            finals = [
                wait_for_analysis(api, owner, image["id"], {"succeeded", "failed"})["analysis"]
                for image in images
            ]
            assert [final["status"] for final in finals] == ["succeeded"] * burst
            assert [final["attempts"] for final in finals] == [1] * burst
            assert ready_messages(settings, settings.queue_name) == 0
    finally:
        _delete_queues(settings)
