"""SIGTERM is a request to leave, not to drop work: ``iap serve`` stops accepting connections
but answers the requests in flight (for at most IAP_SHUTDOWN_TIMEOUT_SECONDS) and lets its
analysis threads finish their jobs; ``iap worker`` finishes the jobs in hand and gives the rest
back to the broker."""

from __future__ import annotations

import json
import secrets
import signal
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from iap.app import create_app
from iap.config import Settings
from tests.analysis.test_worker_processes import noise_png
from tests.conftest import settings_for
from tests.factories import image_bytes, make_account, uploaded, wait_for_analysis
from tests.live_server import LiveServer, remote_account
from tests.ops.conftest import Launch, Running

# Once its shutdown is complete, `iap serve` (uvicorn) raises the signal it caught again, so
# that its supervisor sees how it ended.
STOPPED_BY_SIGTERM = -signal.SIGTERM


def multipart(filename: str, data: bytes) -> tuple[bytes, str]:
    """A one-file upload body, byte for byte, and its content type."""
    boundary = secrets.token_hex(16)
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    body = head.encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def start_upload(server: Running, token: str, body: bytes, content_type: str) -> socket.socket:
    """Send an upload's headers only, asking to continue; return once the app has begun to
    read the body (the server's ``100 Continue`` says so): the request is in flight."""
    sock = socket.create_connection(("127.0.0.1", server.port or 0), timeout=60)
    sock.sendall(
        (
            "POST /image/upload HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\n"
            f"Authorization: Bearer {token}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Expect: 100-continue\r\n\r\n"
        ).encode()
    )
    interim = b""
    while b"\r\n\r\n" not in interim:
        chunk = sock.recv(1024)
        assert chunk, "the server closed the connection instead of asking for the body"
        interim += chunk
    assert interim.startswith(b"HTTP/1.1 100 "), interim
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of the answer (the server closes the connection after it)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def wait_until_refused(server: Running) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", server.port or 0), timeout=2).close()
        except ConnectionRefusedError:
            return
        assert time.monotonic() < deadline, "the server still accepts connections after SIGTERM"
        time.sleep(0.05)


def embedded(request: pytest.FixtureRequest, tmp_path: Path, **overrides: object) -> Settings:
    return settings_for("embedded", request, tmp_path, **overrides)


def test_serve_answers_the_upload_in_flight_after_sigterm(
    request: pytest.FixtureRequest, tmp_path: Path, launch: Launch
) -> None:
    settings = embedded(request, tmp_path, shutdown_timeout_seconds=120)
    server = launch(settings, "serve", port=True)
    server.wait_until_serving()
    token = remote_account(LiveServer(server.url, settings)).access_token
    body, content_type = multipart("late.png", image_bytes("PNG"))
    sock = start_upload(server, token, body, content_type)

    server.proc.send_signal(signal.SIGTERM)
    wait_until_refused(server)  # no new connections...
    assert server.proc.poll() is None  # ...but the process waits for the request in flight
    sock.sendall(body)
    status, image = read_response(sock)
    sock.close()

    assert status == 201, image
    assert image["original_filename"] == "late.png"
    assert server.proc.wait(timeout=120) == STOPPED_BY_SIGTERM
    restarted = launch(settings, "serve", port=True)
    restarted.wait_until_serving()
    stored = httpx.get(
        f"{restarted.url}/image/{image['id']}", headers={"Authorization": f"Bearer {token}"}
    )
    assert stored.status_code == 200
    assert stored.json()["sha256"] == image["sha256"]


def test_serve_stops_waiting_for_requests_after_the_shutdown_timeout(
    request: pytest.FixtureRequest, tmp_path: Path, launch: Launch
) -> None:
    settings = embedded(request, tmp_path, shutdown_timeout_seconds=1)
    server = launch(settings, "serve", port=True)
    server.wait_until_serving()
    token = remote_account(LiveServer(server.url, settings)).access_token
    body, content_type = multipart("never.png", image_bytes("PNG"))
    sock = start_upload(server, token, body, content_type)  # and its body never comes

    # Without the bound the server would wait for this request for ever.
    assert server.stop(timeout=90) == STOPPED_BY_SIGTERM
    answer = b""
    while chunk := sock.recv(1024):
        answer += chunk
    sock.close()
    assert not answer.startswith(b"HTTP/1.1 2"), answer  # cut off, not answered


def test_serve_lets_its_analysis_threads_finish_the_job_in_hand(
    request: pytest.FixtureRequest, tmp_path: Path, launch: Launch
) -> None:
    settings = embedded(request, tmp_path)
    server = launch(settings, "serve", port=True)
    server.wait_until_serving()
    token = remote_account(LiveServer(server.url, settings)).access_token
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        files = {"file": ("noise.png", noise_png(2400), "image/png")}
        image_id = http.post("/image/upload", files=files).json()["id"]
        wait_for_status(http, image_id, "running")

    assert server.stop() == STOPPED_BY_SIGTERM

    # Had the job been cut short, the restarted server would find it running and run it again
    # (a second attempt); finished before the exit, it is simply there.
    restarted = launch(settings, "serve", port=True)
    restarted.wait_until_serving()
    analysis = httpx.get(f"{restarted.url}/image/{image_id}", headers=headers).json()["analysis"]
    assert analysis["status"] == "succeeded", analysis
    assert analysis["attempts"] == 1


def wait_for_status(http: httpx.Client, image_id: str, want: str) -> None:
    deadline = time.monotonic() + 60
    while (status := http.get(f"/image/{image_id}").json()["analysis"]["status"]) != want:
        assert time.monotonic() < deadline, f"analysis still {status}"
        time.sleep(0.02)


def test_worker_finishes_its_job_on_sigterm_and_gives_back_the_rest(
    rabbit_settings: Settings, launch: Launch
) -> None:
    with TestClient(create_app(rabbit_settings)) as api:
        owner = make_account(api)
        images = [
            uploaded(api, owner, noise_png(2400), filename=f"noise{i}.png")["id"] for i in range(3)
        ]
        worker = launch(rabbit_settings, "worker")
        deadline = time.monotonic() + 60
        while True:  # until the worker is in the middle of a job
            states = {i: analysis(api, owner.headers, i)["status"] for i in images}
            busy = [i for i, status in states.items() if status == "running"]
            if busy:
                break
            assert time.monotonic() < deadline, states
            time.sleep(0.02)

        assert worker.stop() == 0

        finished = analysis(api, owner.headers, busy[0])
        assert finished["status"] == "succeeded", finished  # done before the worker left
        left = {i: analysis(api, owner.headers, i)["status"] for i in images}
        assert "running" not in left.values(), left  # nothing was abandoned half-way
        launch(rabbit_settings, "worker")
        finals = [wait_for_analysis(api, owner, i, {"succeeded", "failed"}) for i in images]
        assert [f["analysis"]["status"] for f in finals] == ["succeeded"] * 3
        # Every job ran once: none was interrupted and run again.
        assert [f["analysis"]["attempts"] for f in finals] == [1, 1, 1]


def analysis(api: TestClient, headers: dict[str, str], image_id: str) -> dict[str, Any]:
    return dict(api.get(f"/image/{image_id}", headers=headers).json()["analysis"])
