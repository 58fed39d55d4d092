"""``GET /metrics`` (Prometheus): open, free of user data, labelled by route template; it
measures uploads, the analysis done in the API process and the jobs waiting in the database.
``iap worker --metrics-port`` exposes worker processes, and several processes behind one port
answer as one. ``/readyz`` says which dependency is down."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from iap import migrations
from iap.app import create_app
from iap.config import Settings
from iap.db import create_engine
from tests.analysis.test_dead_letter import replace_original
from tests.conftest import ClientFactory, settings_for
from tests.factories import Account, image_bytes, make_account, uploaded, wait_for_analysis
from tests.ops.conftest import Launch, free_port
from tests.ops.test_shutdown import multipart

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
HTTP_COUNT = "iap_http_request_duration_seconds_count"
OUTCOMES = "iap_analysis_job_outcomes_total"
ANALYSER_COUNT = "iap_analyser_duration_seconds_count"


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests_to(samples: Samples, route: str, method: str, status_class: str) -> float:
    return value(samples, HTTP_COUNT, route=route, method=method, status_class=status_class)


def test_metrics_need_no_credentials_and_speak_prometheus(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {
        "iap_http_request_duration_seconds",
        "iap_analysis_queue_depth",
        "iap_analysis_job_outcomes",
        "iap_analyser_duration_seconds",
        "iap_upload_bytes",
    } <= names
    openmetrics = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.endswith("# EOF\n")


def test_requests_are_labelled_by_route_template_not_path(
    client: TestClient, alice: Account
) -> None:
    unknown_image = str(uuid.uuid4())
    nowhere = f"/no-such-page-{secrets.token_hex(6)}"
    before = scrape(client)
    assert client.get(f"/image/{unknown_image}", headers=alice.headers).status_code == 404
    assert client.get(nowhere).status_code == 404
    assert client.request("BREW", "/healthz").status_code == 405
    after_text = client.get("/metrics").text
    after = parse(after_text)

    for route, method, status_class in (
        ("/image/{image_id}", "GET", "4xx"),
        ("<unmatched>", "GET", "4xx"),
        ("/healthz", "other", "4xx"),  # a made-up method is not a label value of its own
    ):
        grew = requests_to(after, route, method, status_class) - requests_to(
            before, route, method, status_class
        )
        assert grew == 1, (route, method, status_class)
    assert unknown_image not in after_text
    assert nowhere not in after_text
    assert "BREW" not in after_text


def test_upload_bytes_are_counted(client: TestClient, alice: Account) -> None:
    body, content_type = multipart("counted.png", image_bytes("PNG", size=(300, 200)))
    before = value(scrape(client), "iap_upload_bytes_total", status_class="2xx")
    response = client.post(
        "/image/upload", content=body, headers={**alice.headers, "Content-Type": content_type}
    )
    assert response.status_code == 201, response.text
    after = value(scrape(client), "iap_upload_bytes_total", status_class="2xx")
    assert after - before == len(body)


def test_metrics_hold_no_user_data(client: TestClient) -> None:
    owner = make_account(client)
    marker = secrets.token_hex(8)
    image = uploaded(
        client,
        owner,
        filename=f"holiday-{marker}.jpg",
        tags=f"tag-{marker}",
        description=f"about {marker}",
    )
    client.get(f"/image/{image['id']}", headers=owner.headers)
    client.get(f"/image/all?q={marker}", headers=owner.headers)
    text = client.get("/metrics").text
    for private in (
        marker,
        owner.username,
        owner.email,
        owner.id,
        image["id"],
        image["sha256"],
    ):
        assert private not in text


def test_analysis_in_the_api_process_is_measured_there(client_with: ClientFactory) -> None:
    client = client_with(
        analysis_max_retries=1, analysis_min_backoff_ms=50, analysis_max_backoff_ms=100
    )
    owner = make_account(client)
    before = scrape(client)
    image = uploaded(client, owner, image_bytes("PNG", size=(400, 300)))
    wait_for_analysis(client, owner, image["id"], {"succeeded"})
    middle = scrape(client)
    assert value(middle, OUTCOMES, outcome="succeeded") > value(
        before, OUTCOMES, outcome="succeeded"
    )
    for analyser in ("properties", "colours", "hashes"):
        ran = value(middle, ANALYSER_COUNT, analyser=analyser, status="succeeded")
        assert ran > value(before, ANALYSER_COUNT, analyser=analyser, status="succeeded")
    decoded = "iap_analysis_decode_duration_seconds_count"
    assert value(middle, decoded) > value(before, decoded)

    replace_original(client, image["id"], b"\x89PNG\r\n\x1a\n no longer an image")
    assert client.post(f"/image/{image['id']}/analyze", headers=owner.headers).status_code == 202
    wait_for_analysis(client, owner, image["id"], {"failed"})
    after = scrape(client)
    for outcome in ("retrying", "failed"):  # the first attempt, then the last
        assert value(after, OUTCOMES, outcome=outcome) > value(middle, OUTCOMES, outcome=outcome)


def run_sql(database_url: str, sql: str) -> None:
    async def execute() -> None:
        dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(execute())


@pytest.fixture
def own_database(postgres_url: str) -> Iterator[str]:
    """A migrated PostgreSQL database of this test's own: job counts are exact in it."""
    name = f"iap_test_{secrets.token_hex(4)}"
    url = postgres_url.rsplit("/", 1)[0] + f"/{name}"

    async def migrate() -> None:
        engine = create_engine(url)
        await migrations.upgrade(engine)
        await engine.dispose()

    run_sql(postgres_url, f'CREATE DATABASE "{name}"')
    asyncio.run(migrate())
    yield url
    run_sql(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def queue_depth(samples: Samples) -> dict[str, float]:
    return {
        dict(labels)["status"]: number
        for (name, labels), number in samples.items()
        if name == "iap_analysis_queue_depth"
    }


def test_queue_depth_is_counted_in_the_database_and_skipped_when_it_is_gone(
    rabbit_settings: Settings, own_database: str, postgres_url: str
) -> None:
    settings = rabbit_settings.model_copy(update={"database_url": own_database})
    with TestClient(create_app(settings)) as api:  # no worker consumes: jobs stay queued
        assert queue_depth(scrape(api)) == {"queued": 0, "running": 0}
        owner = make_account(api)
        for _ in range(3):
            uploaded(api, owner)
        assert queue_depth(scrape(api)) == {"queued": 3, "running": 0}

        name = own_database.rsplit("/", 1)[1]
        run_sql(postgres_url, f'DROP DATABASE "{name}" WITH (FORCE)')
        response = api.get("/metrics")
        assert response.status_code == 200  # the rest of the metrics still get through
        blind = parse(response.text)
        assert queue_depth(blind) == {}
        assert requests_to(blind, "/metrics", "GET", "2xx") >= 2


def test_worker_processes_answer_together_on_their_metrics_port(
    rabbit_settings: Settings, own_database: str, launch: Launch
) -> None:
    settings = rabbit_settings.model_copy(update={"database_url": own_database})
    port = free_port()
    worker = launch(settings, "worker", "--processes", "2", "--metrics-port", str(port))
    with TestClient(create_app(settings)) as api:
        owner = make_account(api)
        images = [uploaded(api, owner)["id"] for _ in range(4)]
        for image_id in images:
            done = wait_for_analysis(api, owner, image_id, {"succeeded", "failed"})
            assert done["analysis"]["status"] == "succeeded"
    deadline = time.monotonic() + 30
    while True:  # the parent serves the metrics its two processes write
        try:
            samples = parse(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, worker.output()
            time.sleep(0.2)
    assert value(samples, OUTCOMES, outcome="succeeded") == 4
    assert value(samples, ANALYSER_COUNT, analyser="properties", status="succeeded") == 4
    assert value(samples, "iap_analysis_decode_duration_seconds_count") == 4
    assert worker.stop() == 0


def test_server_processes_answer_together_on_metrics(
    request: pytest.FixtureRequest, tmp_path: Path, launch: Launch
) -> None:
    settings = settings_for("embedded", request, tmp_path, log_format="json")
    server = launch(settings, "serve", "--workers", "2", port=True)
    server.wait_until_serving()
    sent = 0
    with httpx.Client(base_url=server.url, timeout=30) as http:
        serving: set[int] = set()
        while len(serving) < 2:  # until both processes have answered some of them
            assert sent < 2000, "one server process answered every request"
            asyncio.run(_burst(server.url, 20))
            sent += 20
            time.sleep(0.2)
            serving = {
                line["pid"]
                for line in server.json_lines()
                if line.get("logger") == "iap.access" and line.get("route") == "/"
            }
        for _ in range(6):  # whichever process answers, it speaks for both
            samples = parse(http.get("/metrics").text)
            assert requests_to(samples, "/", "GET", "2xx") == sent


async def _burst(url: str, count: int) -> None:
    """``count`` requests at once, each on its own connection, so that both processes get some."""

    async def one() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as own:
            assert (await own.get("/")).status_code == 200

    await asyncio.gather(*(one() for _ in range(count)))


def test_readyz_names_the_dependency_that_is_down(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    nobody = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"  # nothing listens there
    settings = settings_for("embedded", request, tmp_path, broker_url=nobody)
    with TestClient(create_app(settings)) as api:
        response = api.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "not_ready"
    assert body["status"] == "not_ready"
    assert body["checks"]["broker"].startswith("error")
    assert {k: v for k, v in body["checks"].items() if k != "broker"} == {
        "database": "ok",
        "storage": "ok",
        "cache": "ok",
    }
