"""Fixtures of the chaos tests: private servers (see ``harness``), ``iap`` processes on them,
and a report that reaches the terminal (and CI's log) with or without ``-s``."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

from iap.config import Settings
from tests.chaos.harness import (
    PrivatePostgres,
    PrivateRabbitMQ,
    PrivateRedis,
    PrivateServer,
    private_dir,
)
from tests.conftest import TEST_LIMITS, settings_env
from tests.conftest import _free_port as free_port
from tests.ops.conftest import Running, stop_all

REPORT = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[REPORT] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = terminalreporter.config.stash.get(REPORT, [])
    if lines:
        terminalreporter.section("chaos")
        for line in lines:
            terminalreporter.write_line(line)


Report = Callable[[str], None]


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Report:
    """``report(line)``: print the line (shown with ``-s`` or beside a failure) and again in
    the run's closing summary, which is never captured."""

    def write(line: str) -> None:
        print(line)
        request.config.stash[REPORT].append(line)

    return write


S = TypeVar("S", bound=PrivateServer)


@contextmanager
def started(kind: Callable[[Path], S], what: str) -> Iterator[S]:
    """A private server, running; killed and its data removed at the end, however it ends."""
    server = kind(private_dir(what))
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL with iap's schema migrated (as a release step would)."""
    from iap import migrations
    from iap.db import create_engine

    with started(PrivatePostgres, "postgres") as server:

        async def migrate() -> None:
            engine = create_engine(server.url)
            await migrations.upgrade(engine)
            await engine.dispose()

        asyncio.run(migrate())
        yield server


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    with started(PrivateRedis, "redis") as server:
        yield server


@pytest.fixture
def private_rabbitmq() -> Iterator[PrivateRabbitMQ]:
    with started(PrivateRabbitMQ, "rabbitmq") as server:
        yield server


def chaos_settings(tmp: Path, database_url: str, **overrides: object) -> Settings:
    """A scaled deployment on private servers: blobs on local disk (shared by every process
    of the test), so that the storage can be listed file by file."""
    values: dict[str, object] = {
        "data_dir": tmp,
        "database_url": database_url,
        "storage_url": (tmp / "blobs").as_uri(),
        "secret_key": secrets.token_urlsafe(48),
        "redis_prefix": f"iap-chaos-{secrets.token_hex(4)}:",
        **TEST_LIMITS,
    }
    return Settings(**(values | overrides))  # type: ignore[arg-type]


class Processes:
    """``iap`` commands run as a deployment runs them; each one's output in its own file.
    Whatever is still running at the end is stopped (SIGTERM, then SIGKILL)."""

    def __init__(self, settings: Settings, logs: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("IAP_")}
        self.env |= settings_env(settings)
        self.logs = logs
        self.started: list[Running] = []

    def start(self, *args: str, port: bool = False) -> Running:
        env = dict(self.env)
        chosen = free_port() if port else None
        if chosen is not None:
            env["IAP_PORT"] = str(chosen)
        log = self.logs / f"{args[0]}-{len(self.started)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "iap", *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        running = Running(proc, log, chosen)
        self.started.append(running)
        return running

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "iap", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def close(self) -> None:
        stop_all(self.started, timeout=30)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[[Settings], Processes]]:
    made: list[Processes] = []

    def make(settings: Settings) -> Processes:
        made.append(Processes(settings, tmp_path))
        return made[-1]

    yield make
    for each in made:
        each.close()
