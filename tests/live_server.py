"""A real iap server (uvicorn on a loopback port, in a thread), on both deployments.

Clients that speak HTTP over a socket (the CLI, the Python client, Server-Sent Events, the
schema fuzzer) are tested against a server that listens on one, not an in-process transport.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from iap.app import create_app
from iap.config import Settings
from tests.conftest import settings_for
from tests.factories import PASSWORD


@dataclass(frozen=True)
class LiveServer:
    url: str
    settings: Settings


@dataclass(frozen=True)
class RemoteAccount:
    username: str
    password: str
    access_token: str


@contextmanager
def serve(settings: Settings, what: str = "iap") -> Iterator[LiveServer]:
    """``create_app(settings)`` served by uvicorn on 127.0.0.1 in a thread, stopped at the end."""
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
    )
    # Bind the socket here and hand it over: no window in which another process takes the port.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(timeout=10)
            sock.close()
            pytest.fail(f"the {what} server did not start")
        time.sleep(0.05)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", settings)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        assert not thread.is_alive(), f"the live {what} server did not stop"


@pytest.fixture(scope="session")
def live_server(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A server for the backend under test, shared by the session's tests."""
    settings = settings_for(backend, request, tmp_path_factory.mktemp(f"live-{backend}"))
    with serve(settings, f"iap ({backend})") as server:
        yield server


def remote_account(server: LiveServer) -> RemoteAccount:
    """A fresh account on the live server, signed up and logged in over HTTP."""
    username = f"user_{secrets.token_hex(5)}"
    with httpx.Client(base_url=server.url, timeout=30) as http:
        signup = http.post(
            "/signup",
            json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
        )
        assert signup.status_code == 201, signup.text
        tokens = http.post("/login", data={"username": username, "password": PASSWORD})
        assert tokens.status_code == 200, tokens.text
    return RemoteAccount(username, PASSWORD, tokens.json()["access_token"])
