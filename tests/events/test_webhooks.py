"""Webhooks: signed deliveries of the owner's events to a real HTTP receiver, retried with
backoff, logged, filtered by event type, and never sent where they may not go."""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import ClientFactory
from tests.factories import Account, make_account, uploaded, wait_for_analysis
from tests.images.test_upload import assert_error


class Receiver:
    """An HTTP server on loopback that records POSTs and answers with scripted statuses."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.received: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()
        self.statuses = list(statuses or [])
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.put(({k.lower(): v for k, v in self.headers.items()}, body))
                code = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def next(self, timeout: float = 60) -> tuple[dict[str, str], dict[str, Any]]:
        headers, body = self.received.get(timeout=timeout)
        return headers, json.loads(body)

    def events_until(self, kind: str, image_id: str) -> list[tuple[dict[str, str], bytes]]:
        seen = []
        while True:
            headers, body = self.received.get(timeout=60)
            seen.append((headers, body))
            event = json.loads(body)
            if event["type"] == kind and event["image_id"] == image_id:
                return seen

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def register(client: TestClient, account: Account, url: str, **extra: Any) -> dict[str, Any]:
    response = client.post("/webhooks", headers=account.headers, json={"url": url, **extra})
    assert response.status_code == 201, response.text
    return dict(response.json())


def deliveries(client: TestClient, account: Account, hook_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/webhooks/{hook_id}/deliveries?limit=100", headers=account.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def wait_deliveries(
    client: TestClient, account: Account, hook_id: str, done: int, timeout: float = 60
) -> list[dict[str, Any]]:
    import time

    deadline = time.monotonic() + timeout
    while True:
        rows = deliveries(client, account, hook_id)
        if sum(row["status"] != "pending" for row in rows) >= done:
            return rows
        assert time.monotonic() < deadline, rows
        time.sleep(0.1)


def test_deliveries_are_signed_and_cover_the_lifecycle(
    client: TestClient, alice: Account, receiver: Receiver
) -> None:
    hook = register(client, alice, receiver.url)
    assert len(hook["secret"]) >= 32
    listed = client.get("/webhooks", headers=alice.headers).json()
    assert [h["id"] for h in listed] == [hook["id"]]
    assert "secret" not in listed[0]

    image = uploaded(client, alice)
    received = receiver.events_until("analysis.succeeded", image["id"])
    # Deliveries run concurrently, so they may arrive out of order (each carries its time).
    kinds = {json.loads(body)["type"] for _, body in received}
    if kinds != {"analysis.queued", "analysis.started", "analysis.succeeded"}:
        received += [receiver.received.get(timeout=60) for _ in range(3 - len(received))]
        kinds = {json.loads(body)["type"] for _, body in received}
    assert kinds == {"analysis.queued", "analysis.started", "analysis.succeeded"}
    for headers, body in received:
        expected = hmac.new(
            hook["secret"].encode(),
            headers["x-iap-timestamp"].encode() + b"." + body,
            hashlib.sha256,
        ).hexdigest()
        assert hmac.compare_digest(headers["x-iap-signature"], f"sha256={expected}")
        assert headers["x-iap-event"] == json.loads(body)["type"]
        assert headers["content-type"] == "application/json"
    log = wait_deliveries(client, alice, hook["id"], 3)
    assert {row["status"] for row in log} == {"delivered"}
    assert {row["response_status"] for row in log} == {200}
    assert all(row["attempts"] == 1 for row in log)


def test_event_filter(client: TestClient, alice: Account, receiver: Receiver) -> None:
    register(client, alice, receiver.url, events=["analysis.succeeded"])
    image = uploaded(client, alice)
    headers, event = receiver.next()
    assert event["type"] == "analysis.succeeded"
    assert event["image_id"] == image["id"]
    assert headers["x-iap-event"] == "analysis.succeeded"


def test_failed_deliveries_are_retried_until_accepted(client: TestClient, alice: Account) -> None:
    flaky = Receiver(statuses=[500, 503])
    try:
        hook = register(client, alice, flaky.url, events=["analysis.succeeded"])
        uploaded(client, alice)
        (row,) = wait_deliveries(client, alice, hook["id"], 1)
    finally:
        flaky.close()
    assert row["status"] == "delivered"
    assert row["attempts"] == 3
    assert row["response_status"] == 200


@pytest.fixture
def short_retry_client(client_with: ClientFactory) -> TestClient:
    return client_with(webhook_max_retries=1)


def test_delivery_fails_after_the_last_retry(short_retry_client: TestClient) -> None:
    client = short_retry_client
    owner = make_account(client)
    down = Receiver(statuses=[500] * 10)
    try:
        hook = register(client, owner, down.url, events=["analysis.succeeded"])
        uploaded(client, owner)
        (row,) = wait_deliveries(client, owner, hook["id"], 1)
    finally:
        down.close()
    assert row["status"] == "failed"
    assert row["attempts"] == 2
    assert "HTTP 500" in row["error"]


def test_other_users_events_and_webhooks_stay_apart(
    client: TestClient, alice: Account, bob: Account, receiver: Receiver
) -> None:
    hook = register(client, alice, receiver.url, events=["analysis.succeeded"])
    bobs = uploaded(client, bob)
    wait_for_analysis(client, bob, bobs["id"], {"succeeded"})
    mine = uploaded(client, alice)
    _, event = receiver.next()
    assert event["image_id"] == mine["id"]  # bob's earlier success was not sent to alice
    assert_error(
        client.get(f"/webhooks/{hook['id']}/deliveries", headers=bob.headers),
        404,
        "webhook_not_found",
    )
    assert_error(
        client.delete(f"/webhooks/{hook['id']}", headers=bob.headers), 404, "webhook_not_found"
    )
    assert client.get("/webhooks", headers=bob.headers).json() == []
    assert client.delete(f"/webhooks/{hook['id']}", headers=alice.headers).status_code == 204
    assert client.get("/webhooks", headers=alice.headers).json() == []


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://example.com/x"},
        {"url": "not a url"},
        {"url": "https://x.test", "events": ["x"]},
    ],
)
def test_invalid_webhooks_are_422(client: TestClient, alice: Account, body: dict[str, Any]) -> None:
    response = client.post("/webhooks", headers=alice.headers, json=body)
    assert response.status_code == 422


@pytest.fixture
def guarded_client(client_with: ClientFactory) -> TestClient:
    return client_with(webhook_allow_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x",
        "http://10.0.0.5/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest/meta-data",
    ],
)
def test_internal_addresses_are_refused(guarded_client: TestClient, url: str) -> None:
    owner = make_account(guarded_client)
    response = guarded_client.post("/webhooks", headers=owner.headers, json={"url": url})
    assert_error(response, 422, "webhook_url_refused")


def test_names_that_resolve_inside_are_refused_at_delivery(guarded_client: TestClient) -> None:
    client = guarded_client
    owner = make_account(client)
    hook = register(client, owner, "http://localhost:9/hook", events=["analysis.succeeded"])
    uploaded(client, owner)
    (row,) = wait_deliveries(client, owner, hook["id"], 1)
    assert row["status"] == "failed"
    assert "internal address" in row["error"]
    assert row["response_status"] is None
