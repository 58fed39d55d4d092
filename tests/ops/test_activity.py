"""Requests in flight, as the embedded analysis sees them (``observability.activity``)."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from iap.observability import activity
from iap.observability.middleware import RequestObservability


async def seen(request: Request) -> JSONResponse:
    return JSONResponse({"serving": activity.serving()})


@pytest.fixture
def client() -> TestClient:
    app = Starlette(routes=[Route("/image/x", seen), Route("/events", seen)])
    return TestClient(RequestObservability(app))


def test_a_request_is_in_flight_while_it_is_served(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(activity, "QUIET_SECONDS", 0.0)
    assert client.get("/image/x").json() == {"serving": True}
    assert not activity.serving()  # ended, and no quiet time to wait out


def test_an_event_stream_is_not_work_in_flight(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(activity, "QUIET_SECONDS", 0.0)
    assert client.get("/events").json() == {"serving": False}


def test_a_request_that_just_ended_still_counts(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(activity, "QUIET_SECONDS", 60.0)
    client.get("/image/x")
    assert activity.serving()
