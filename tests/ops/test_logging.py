"""Logs: one line per request with its method, route template, status, duration, user and
request id; the request id comes from ``X-Request-ID`` (when safe) or is made up, is echoed in
the response, and follows an upload's job into the worker that analyses it — in another
thread of ``iap serve``, or in an ``iap worker`` process on the other side of RabbitMQ."""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from iap.app import create_app
from iap.config import Settings
from tests.conftest import settings_env, settings_for
from tests.factories import Account, image_bytes, make_account, upload, wait_for_analysis
from tests.live_server import LiveServer, remote_account
from tests.ops.conftest import Launch

GENERATED = re.compile(r"[0-9a-f]{32}")


def test_a_safe_request_id_is_echoed(client: TestClient) -> None:
    for sent in ("req-42", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "trace:a/b+c=d.e_f"):
        response = client.get("/", headers={"X-Request-ID": sent})
        assert response.headers["X-Request-ID"] == sent


def test_a_missing_or_unsafe_request_id_is_replaced(client: TestClient) -> None:
    made_up = client.get("/").headers["X-Request-ID"]
    assert GENERATED.fullmatch(made_up)
    assert client.get("/").headers["X-Request-ID"] != made_up  # one per request
    for unsafe in ("has spaces", 'quote"d', "x" * 129, "semi;colon", "<script>"):
        echoed = client.get("/", headers={"X-Request-ID": unsafe}).headers["X-Request-ID"]
        assert GENERATED.fullmatch(echoed), (unsafe, echoed)


def test_error_answers_carry_the_request_id_too(client: TestClient, alice: Account) -> None:
    response = client.get("/image/not-a-uuid", headers={**alice.headers, "X-Request-ID": "e-1"})
    assert response.status_code == 422
    assert response.headers["X-Request-ID"] == "e-1"


def request_lines(lines: list[dict[str, Any]], request_id: str) -> list[dict[str, Any]]:
    return [
        line
        for line in lines
        if line["logger"] == "iap.access" and line.get("request_id") == request_id
    ]


def test_serve_logs_json_lines_and_its_analysis_threads_keep_the_request_id(
    request: pytest.FixtureRequest, tmp_path: Path, launch: Launch
) -> None:
    settings = settings_for("embedded", request, tmp_path, log_format="json")
    server = launch(settings, "serve", port=True)
    server.wait_until_serving()
    account = remote_account(LiveServer(server.url, settings))
    rid = f"upload-{secrets.token_hex(6)}"
    headers = {"Authorization": f"Bearer {account.access_token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        me = http.get("/me").json()
        files = {"file": ("harbour.png", image_bytes("PNG"), "image/png")}
        uploaded = http.post("/image/upload", files=files, headers={"X-Request-ID": rid})
        assert uploaded.status_code == 201
        assert uploaded.headers["X-Request-ID"] == rid
        image_id = uploaded.json()["id"]
        deadline = time.monotonic() + 90
        while (image := http.get(f"/image/{image_id}").json())["analysis"]["status"] != "succeeded":
            assert time.monotonic() < deadline, image["analysis"]
            time.sleep(0.1)
        http.get(f"/image/{image_id}", headers={"X-Request-ID": "read-1"})
    server.stop()

    lines = server.json_lines()  # every line of output is one JSON object
    (line,) = request_lines(lines, rid)
    assert line["method"] == "POST"
    assert line["route"] == "/image/upload"
    assert line["status"] == 201
    assert line["duration_ms"] >= 0
    assert line["user_id"] == me["id"]
    assert line["level"] == "info"
    assert "timestamp" in line
    (read,) = request_lines(lines, "read-1")
    assert read["route"] == "/image/{image_id}"  # the template; the path has the id
    assert read["path"] == f"/image/{image_id}"
    job_id = image["analysis"]["job_id"]
    worker_lines = [
        line
        for line in lines
        if line["logger"].startswith("iap.analysis") and job_id in line["event"]
    ]
    assert worker_lines, "the analysis thread logged nothing about the job"
    assert {line.get("request_id") for line in worker_lines} == {rid}


def jpeg_with_broken_exif() -> bytes:
    """A JPEG whose EXIF names a tag longer than the file: Pillow warns as it reads it."""
    entry = struct.pack("<HHII", 0x010F, 2, 100, 1000)  # Make: 100 bytes at offset 1000
    tiff = b"II*\x00" + struct.pack("<IH", 8, 1) + entry + struct.pack("<I", 0)
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(out, "JPEG", exif=b"Exif\x00\x00" + tiff)
    return out.getvalue()


def test_library_warnings_are_log_records_too(
    request: pytest.FixtureRequest, tmp_path: Path, launch: Launch
) -> None:
    """A warning (here Pillow's, about a broken EXIF block) is one record in the log's format,
    not a raw line that breaks a JSON log."""
    settings = settings_for("embedded", request, tmp_path, log_format="json")
    server = launch(settings, "serve", port=True)
    server.wait_until_serving()
    account = remote_account(LiveServer(server.url, settings))
    headers = {"Authorization": f"Bearer {account.access_token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        files = {"file": ("broken-exif.jpg", jpeg_with_broken_exif(), "image/jpeg")}
        image = http.post("/image/upload", files=files).json()
        deadline = time.monotonic() + 90
        while http.get(f"/image/{image['id']}").json()["analysis"]["status"] != "succeeded":
            assert time.monotonic() < deadline
            time.sleep(0.1)
    server.stop()

    lines = server.json_lines()  # every line of output is one JSON object
    warned = [line for line in lines if line["logger"] == "py.warnings"]
    assert warned, "the warning was not logged"
    assert all(line["level"] == "warning" for line in warned)
    assert any("Skipping tag 271" in line["event"] for line in warned)
    assert all("\n" not in line["event"] for line in warned)


def test_worker_process_logs_carry_the_uploads_request_id(
    rabbit_settings: Settings, launch: Launch
) -> None:
    worker = launch(rabbit_settings, "worker", IAP_LOG_FORMAT="json")
    with TestClient(create_app(rabbit_settings)) as api:
        owner = make_account(api)
        rid = f"batch-7:{secrets.token_hex(4)}"
        response = api.post(
            "/image/upload",
            headers={**owner.headers, "X-Request-ID": rid},
            files={"file": ("pier.jpg", image_bytes(), "image/jpeg")},
        )
        assert response.status_code == 201
        image = wait_for_analysis(api, owner, response.json()["id"], {"succeeded", "failed"})
        assert image["analysis"]["status"] == "succeeded"
        other = upload(api, owner)  # no request id of its own: the API makes one up
        wait_for_analysis(api, owner, other.json()["id"], {"succeeded"})
    assert worker.stop() == 0

    lines = worker.json_lines()
    job_id = image["analysis"]["job_id"]
    about_job = [line for line in lines if job_id in line["event"]]
    assert any("done" in line["event"] for line in about_job), about_job
    assert {line.get("request_id") for line in about_job} == {rid}
    assert all(line["actor"] == "analyse_image" for line in about_job)
    other_job = other.json()["analysis"]["job_id"]
    other_ids = {line.get("request_id") for line in lines if other_job in line["event"]}
    assert other_ids == {other.headers["X-Request-ID"]}


def test_console_format_is_the_default_and_carries_the_request_id(
    request: pytest.FixtureRequest, tmp_path: Path, launch: Launch
) -> None:
    settings = settings_for("embedded", request, tmp_path)
    server = launch(settings, "serve", port=True)
    server.wait_until_serving()
    assert httpx.get(f"{server.url}/", headers={"X-Request-ID": "console-1"}).status_code == 200
    server.stop()

    (line,) = [line for line in server.output().splitlines() if "request_id=console-1" in line]
    for field in ("method=GET", "route=/ ", "status=200", "duration_ms="):
        assert field in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_an_unknown_log_format_stops_start_up_with_one_line(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IAP_")}
    env |= settings_env(settings_for("embedded", request, tmp_path)) | {"IAP_LOG_FORMAT": "xml"}
    result = subprocess.run(
        [sys.executable, "-m", "iap", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "IAP_LOG_FORMAT" in result.stderr
    assert "Traceback" not in result.stderr
