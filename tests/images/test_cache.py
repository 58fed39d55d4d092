"""Image metadata is cached, invalidated on every change, and never needed: with Redis down the
API keeps serving from the database."""

from __future__ import annotations

import pytest
import redis
from fastapi.testclient import TestClient

from iap.cache import MemoryCache
from tests.conftest import ClientFactory
from tests.factories import (
    Account,
    make_account,
    metadata,
    upload,
    uploaded,
    wait_for_analysis,
)
from tests.images.test_upload import assert_error


def test_metadata_reads_are_cached_and_edits_invalidate(client: TestClient, alice: Account) -> None:
    image = uploaded(client, alice, tags="before")
    # The analysis changes the image's status, and each change empties the cache (a read racing
    # one does not fill it): let it finish, so that the cache holds what this test reads.
    wait_for_analysis(client, alice, image["id"], {"succeeded", "failed"})
    services = client.app.state.services  # type: ignore[attr-defined]
    assert client.get(f"/image/{image['id']}", headers=alice.headers).status_code == 200
    cached = client.portal.call(services.cache.get, f"image:{image['id']}")  # type: ignore[union-attr]
    assert cached is not None
    assert image["id"] in cached
    edited = client.put(f"/image/{image['id']}", headers=alice.headers, json={"tags": ["after"]})
    assert edited.status_code == 200
    assert client.portal.call(services.cache.get, f"image:{image['id']}") is None  # type: ignore[union-attr]
    assert client.get(f"/image/{image['id']}", headers=alice.headers).json()["tags"] == ["after"]
    assert client.delete(f"/image/{image['id']}", headers=alice.headers).status_code == 204
    assert_error(client.get(f"/image/{image['id']}", headers=alice.headers), 404, "image_not_found")


def test_cache_matches_the_deployment(backend: str, client: TestClient, alice: Account) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    if backend == "embedded":
        assert isinstance(services.cache, MemoryCache)
        return
    settings = services.settings
    image = uploaded(client, alice)
    client.get(f"/image/{image['id']}", headers=alice.headers)
    store = redis.Redis.from_url(settings.redis_url)
    key = f"{settings.redis_prefix}cache:image:{image['id']}"
    assert store.exists(key) == 1
    client.put(f"/image/{image['id']}", headers=alice.headers, json={"description": "x"})
    assert store.exists(key) == 0


@pytest.fixture
def redis_down_client(client_with: ClientFactory) -> TestClient:
    # Port 1 on loopback: nothing listens, connections are refused at once.
    return client_with(redis_url="redis://127.0.0.1:1/0")


def test_api_keeps_serving_when_redis_is_down(redis_down_client: TestClient) -> None:
    client = redis_down_client
    account = make_account(client)
    image = uploaded(client, account, tags="t")
    for _ in range(2):
        got = client.get(f"/image/{image['id']}", headers=account.headers)
        assert got.status_code == 200
        assert metadata(got.json()) == metadata(image)
    assert client.get("/image/all", headers=account.headers).json()["total"] == 1
    assert (
        client.put(f"/image/{image['id']}", headers=account.headers, json={"tags": []}).status_code
        == 200
    )
    assert client.get(f"/image/{image['id']}", headers=account.headers).json()["tags"] == []
    assert client.get(f"/image/download/{image['id']}", headers=account.headers).status_code == 200
    assert upload(client, account).status_code == 201
    assert client.delete(f"/image/{image['id']}", headers=account.headers).status_code == 204
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["cache"].startswith("error")
    assert ready.json()["code"] == "not_ready"
