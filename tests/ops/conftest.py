"""Real processes for the ops tests: ``iap serve`` and ``iap worker`` started as a deployment
starts them, configured through ``IAP_*`` variables, their output captured to a file."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from iap.config import Settings
from tests.conftest import _free_port as free_port
from tests.conftest import delete_queues, settings_env, settings_for


@dataclass
class Running:
    """One ``iap`` command running in its own process."""

    proc: subprocess.Popen[bytes]
    log: Path
    port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def json_lines(self) -> list[dict[str, Any]]:
        """Every line of the output, each of which must be one JSON object."""
        return [json.loads(line) for line in self.output().splitlines() if line.strip()]

    def stop(self, timeout: float = 120) -> int:
        """SIGTERM, then wait for the process to exit; its exit status."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def wait_until_serving(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"iap did not start serving:\n{self.output()}")
            time.sleep(0.1)


Launch = Callable[..., Running]


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    """``launch(settings, "serve", ..., port=True, **env)``: run ``iap`` with exactly these
    settings (plus ``IAP_*`` extras); ``port=True`` gives ``iap serve`` a free port, ``python``
    another interpreter (another environment). Whatever is still running at the end of the
    test is stopped."""
    started: list[Running] = []

    def start(
        settings: Settings,
        *args: str,
        port: bool = False,
        python: str = sys.executable,
        **extra: str,
    ) -> Running:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IAP_")}
        env |= settings_env(settings)
        env |= extra
        chosen = free_port() if port else None
        if chosen is not None:
            env["IAP_PORT"] = str(chosen)
        log = tmp_path / f"{args[0]}-{len(started)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [python, "-m", "iap", *args], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        running = Running(proc, log, chosen)
        started.append(running)
        return running

    yield start
    stop_all(started, timeout=60)


def stop_all(started: list[Running], timeout: float) -> None:
    """Stop what still runs as a deployment would (SIGTERM, all at once), and kill what has
    not exited within ``timeout`` seconds."""
    for running in started:
        if running.proc.poll() is None:
            running.proc.send_signal(signal.SIGTERM)
    for running in started:
        try:
            running.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            running.proc.kill()
            running.proc.wait()


@pytest.fixture
def rabbit_settings(
    request: pytest.FixtureRequest, tmp_path: Path, amqp_url: str
) -> Iterator[Settings]:
    """The scaled deployment with RabbitMQ, on a queue of its own (deleted afterwards)."""
    settings = settings_for(
        "scaled",
        request,
        tmp_path,
        broker_url=amqp_url,
        queue_name=f"iap-test-{secrets.token_hex(4)}",
        worker_threads=1,
    )
    yield settings
    delete_queues(amqp_url, settings.queue_name, f"{settings.queue_name}-webhooks")
