"""`GET /events`: each user's analysis events, live, as Server-Sent Events, and only theirs."""

from __future__ import annotations

import json
import queue
import threading
from typing import Any

import httpx

from tests.analysis.face_photos import photo
from tests.factories import image_bytes
from tests.live_server import LiveServer, RemoteAccount, remote_account


class EventReader:
    """Reads one user's event stream in a background thread."""

    def __init__(self, server: LiveServer, account: RemoteAccount) -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.connected = threading.Event()
        self._stop = threading.Event()
        headers = {"Authorization": f"Bearer {account.access_token}"}
        self._thread = threading.Thread(target=self._read, args=(server.url, headers), daemon=True)
        self._thread.start()
        assert self.connected.wait(15), "the event stream did not open"

    def _read(self, url: str, headers: dict[str, str]) -> None:
        timeout = httpx.Timeout(5, read=None)
        with (
            httpx.Client(base_url=url, timeout=timeout) as http,
            http.stream("GET", "/events", headers=headers) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith(": connected"):
                    self.connected.set()
                elif line.startswith("data: "):
                    self.events.put(json.loads(line.removeprefix("data: ")))
                if self._stop.is_set():
                    return

    def until(self, kind: str, image_id: str, timeout: float = 60) -> list[dict[str, Any]]:
        """Events seen up to and including ``kind`` for ``image_id``."""
        seen: list[dict[str, Any]] = []
        while True:
            event = self.events.get(timeout=timeout)
            seen.append(event)
            if event["type"] == kind and event["image_id"] == image_id:
                return seen

    def close(self) -> None:
        self._stop.set()


def upload(server: LiveServer, account: RemoteAccount) -> dict[str, Any]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        response = http.post(
            "/image/upload",
            headers={"Authorization": f"Bearer {account.access_token}"},
            files={"file": ("e.jpg", image_bytes(), "image/jpeg")},
        )
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_owner_receives_the_analysis_lifecycle(live_server: LiveServer) -> None:
    owner = remote_account(live_server)
    reader = EventReader(live_server, owner)
    try:
        image = upload(live_server, owner)
        events = reader.until("analysis.succeeded", image["id"])
    finally:
        reader.close()
    mine = [e for e in events if e["image_id"] == image["id"]]
    assert [e["type"] for e in mine] == [
        "analysis.queued",
        "analysis.started",
        "analysis.succeeded",
    ]
    for event in mine:
        assert event["job_id"] == image["analysis"]["job_id"]
        assert event["at"]
    assert mine[1]["attempt"] == 1
    assert mine[2]["failed_analysers"] == []


def test_other_users_events_are_not_delivered(live_server: LiveServer) -> None:
    alice, bob = remote_account(live_server), remote_account(live_server)
    watcher = EventReader(live_server, bob)
    own_reader = EventReader(live_server, alice)
    try:
        image = upload(live_server, alice)
        own_reader.until("analysis.succeeded", image["id"])
        mine = upload(live_server, bob)  # something bob is entitled to, after alice's events
        seen = watcher.until("analysis.succeeded", mine["id"])
    finally:
        watcher.close()
        own_reader.close()
    assert all(event["image_id"] == mine["id"] for event in seen)


def test_events_need_authentication(live_server: LiveServer) -> None:
    response = httpx.get(f"{live_server.url}/events", timeout=10)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_grouped_faces_are_announced_with_their_images(live_server: LiveServer) -> None:
    owner = remote_account(live_server)
    reader = EventReader(live_server, owner)
    try:
        with httpx.Client(base_url=live_server.url, timeout=30) as http:
            response = http.post(
                "/image/upload",
                headers={"Authorization": f"Bearer {owner.access_token}"},
                files={"file": ("biden.jpg", photo("biden.jpg"), "image/jpeg")},
            )
        assert response.status_code == 201, response.text
        image_id = response.json()["id"]
        while True:
            event = reader.events.get(timeout=60)
            if event["type"] == "people.grouped":
                break
    finally:
        reader.close()
    assert event["image_ids"] == [image_id]
    assert (event["faces"], event["new_people"]) == (1, 1)
