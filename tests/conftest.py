"""Test fixtures: every API test runs on both deployments.

- ``embedded``: SQLite + local directory + in-process cache (what ``make run`` starts).
- ``scaled``: PostgreSQL + Redis + S3 (moto's S3 server over HTTP, started here).

The scaled services come from ``IAP_TEST_POSTGRES_URL`` and ``IAP_TEST_REDIS_URL``. Without
them the scaled tests are skipped, unless ``IAP_TEST_REQUIRE_SERVICES=1`` (as in CI), where a
missing service is a failure: an integration suite that silently skips proves nothing.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import boto3
import pika
import pytest
from fastapi.testclient import TestClient

from iap.app import create_app
from iap.config import Settings
from tests.factories import Account, make_account

BACKENDS = ["embedded", "scaled"]
S3_CREDENTIALS = {"s3_access_key_id": "testing", "s3_secret_access_key": "testing"}
# Generous limits for the suite; the rate-limit tests build apps with tight ones.
TEST_LIMITS = {
    "login_rate_limit": "100000/60",
    "signup_rate_limit": "100000/60",
    "upload_rate_limit": "100000/60",
    # OCR costs about a second an image and every upload is analysed: the suite at large runs
    # without it; the analysis tests turn it on where they prove it.
    "disabled_analysers": "text",
    # A child process for analysis costs each app a second or so to start and warm up, and
    # the suite builds hundreds of apps: the suite at large runs passes in the worker's threads
    # (as `iap worker` does); tests/analysis/test_pass_processes.py covers the child processes.
    "analysis_processes": 0,
    # Faces are grouped as soon as their analysis is recorded: the tests wait for it.
    "face_grouping_delay_ms": 0,
    # The webhook receivers in the tests listen on loopback.
    "webhook_allow_private": True,
    "webhook_min_backoff_ms": 100,
    "webhook_max_backoff_ms": 500,
}


def missing_service(message: str) -> NoReturn:
    """Skip the test for want of a service, or fail it under ``IAP_TEST_REQUIRE_SERVICES=1``
    (as in CI, where a skipped integration test would hide a broken set-up)."""
    if os.environ.get("IAP_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _require(name: str) -> str:
    value = os.environ.get(name)
    if value:
        return value
    missing_service(f"{name} is not set; the scaled-deployment tests need it")


def _ephemeral_ports() -> range:
    """The range the kernel takes outgoing connections' local ports from."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)  # Linux's default


def delete_queues(amqp_url: str, *queues: str) -> None:
    """Delete RabbitMQ queues a test made, each with Dramatiq's delay (``.DQ``) and dead-letter
    (``.XQ``) queues. A deployment's queues are ``queue_name`` and ``queue_name-webhooks``."""
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        channel = connection.channel()
        for queue in queues:
            for suffix in ("", ".DQ", ".XQ"):
                channel.queue_delete(queue + suffix)


def _free_port() -> int:
    """A free loopback port for a server a test starts later, outside the ephemeral range: a
    port the kernel hands out (bind to 0) can be taken, before the server binds it, as the
    local end of any outgoing connection (to PostgreSQL, RabbitMQ, ...) made meanwhile."""
    ephemeral = _ephemeral_ports()
    candidates = [p for p in range(10_000, 32_768) if p not in ephemeral]
    for port in random.sample(candidates, 50):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port between 10000 and 32767")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server, in its own process, spoken to over HTTP like any S3."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("moto S3 server did not start")
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


def make_bucket(endpoint: str) -> str:
    name = f"iap-test-{secrets.token_hex(4)}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    import asyncpg

    base = _require("IAP_TEST_POSTGRES_URL")
    name = f"iap_test_{secrets.token_hex(4)}"
    admin_dsn = base.replace("postgresql+asyncpg://", "postgresql://")

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    parts = urlsplit(admin_dsn)
    yield urlunsplit(parts._replace(path=f"/{name}", scheme="postgresql+asyncpg"))
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def fresh_postgres(postgres_url: str) -> Iterator[str]:
    """An empty PostgreSQL database (plain ``postgresql://`` URL, as providers hand them out)."""
    import asyncpg

    server_dsn = postgres_url.replace("postgresql+asyncpg://", "postgresql://")
    name = f"iap_fresh_{secrets.token_hex(4)}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(server_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    yield urlunsplit(urlsplit(server_dsn)._replace(path=f"/{name}"))
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def redis_url() -> str:
    return _require("IAP_TEST_REDIS_URL")


@pytest.fixture(scope="session")
def amqp_url() -> str:
    return _require("IAP_TEST_AMQP_URL")


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment variables under which a subprocess (``iap worker``, the CLI) sees exactly
    what ``settings`` describes."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"IAP_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    env["IAP_DATABASE_URL"] = settings.resolved_database_url
    env["IAP_STORAGE_URL"] = settings.resolved_storage_url
    return env


def settings_for(
    backend: str, request: pytest.FixtureRequest, tmp: Path, **overrides: object
) -> Settings:
    """Settings for one backend; ``overrides`` adjust limits for a particular test."""
    values: dict[str, object] = {"data_dir": tmp, **TEST_LIMITS}
    if backend == "scaled":
        endpoint = request.getfixturevalue("s3_endpoint")
        values |= {
            "database_url": request.getfixturevalue("migrated_postgres"),
            "redis_url": request.getfixturevalue("redis_url"),
            "redis_prefix": f"iap-test-{secrets.token_hex(4)}:",
            "storage_url": f"s3://{make_bucket(endpoint)}/originals-root",
            "s3_endpoint_url": endpoint,
            "secret_key": secrets.token_urlsafe(48),
            **S3_CREDENTIALS,
        }
    values |= overrides
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def migrated_postgres(postgres_url: str) -> str:
    """The scaled deployment does not migrate itself: apply migrations like a release step."""
    from iap import migrations
    from iap.db import create_engine

    async def run() -> None:
        engine = create_engine(postgres_url)
        await migrations.upgrade(engine)
        await engine.dispose()

    asyncio.run(run())
    return postgres_url


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def settings(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return settings_for(backend, request, tmp_path_factory.mktemp(f"iap-{backend}"))


@pytest.fixture(scope="session")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


ClientFactory = Callable[..., TestClient]


@pytest.fixture
def client_with(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[ClientFactory]:
    """``client_with(**overrides)``: a client of an app on this backend with adjusted settings
    (tight limits, short retries...), shut down at the end of the test."""
    with ExitStack() as stack:

        def make(**overrides: object) -> TestClient:
            settings = settings_for(backend, request, tmp_path, **overrides)
            return stack.enter_context(TestClient(create_app(settings)))

        yield make


@pytest.fixture
def alice(client: TestClient) -> Account:
    return make_account(client)


@pytest.fixture
def bob(client: TestClient) -> Account:
    return make_account(client)


from tests.live_server import live_server  # noqa: E402, F401 - a fixture for every test
