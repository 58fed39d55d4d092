"""``sweep_orphan_blobs``: originals nobody references go; images' originals and young blobs stay.

The sweep runs on the app's own services (its engine and store), inside the app's event loop
through the TestClient's portal, so the database rows it consults are the ones the API wrote.
"""

from __future__ import annotations

import io
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from fastapi.testclient import TestClient

from iap.images.service import original_key, sweep_orphan_blobs
from iap.services import Services
from iap.storage import LocalStorage
from tests.factories import Account, image_bytes, uploaded

T = TypeVar("T")

GRACE = timedelta(hours=1)
LONG_AGO = 3 * 3600  # seconds: well past GRACE


def run(client: TestClient, fn: Callable[[], Awaitable[T]]) -> T:
    """Run ``fn`` in the app's event loop (where its engine and store live)."""
    assert client.portal is not None, "the TestClient must be started (used as a context manager)"
    return client.portal.call(fn)


def services_of(client: TestClient) -> Services:
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    return services


def put_blob(client: TestClient, key: str, data: bytes = b"left behind") -> None:
    storage = services_of(client).storage
    run(client, lambda: storage.put(key, io.BytesIO(data), "application/octet-stream"))


def blob_exists(client: TestClient, key: str) -> bool:
    storage = services_of(client).storage
    return run(client, lambda: storage.exists(key))


def age_blob(client: TestClient, key: str) -> timedelta:
    """Make ``key`` look old where the store allows it; returns the grace period that makes it
    count as old (S3 cannot back-date an object, so there the grace is zero)."""
    storage = services_of(client).storage
    if isinstance(storage, LocalStorage):
        past = time.time() - LONG_AGO
        os.utime(storage.root / key, (past, past))
        return GRACE
    return timedelta(0)


def sweep(client: TestClient, older_than: timedelta) -> int:
    services = services_of(client)

    async def go() -> int:
        async with services.sessions() as session:
            return await sweep_orphan_blobs(session, services.storage, older_than=older_than)

    return run(client, go)


def test_old_blob_without_an_image_is_removed(client: TestClient) -> None:
    key = original_key(uuid.uuid4())
    put_blob(client, key)
    grace = age_blob(client, key)
    assert sweep(client, grace) >= 1
    assert not blob_exists(client, key)


def test_blob_of_an_uploaded_image_is_kept(client: TestClient, alice: Account) -> None:
    data = image_bytes("PNG")
    image = uploaded(client, alice, data, filename="keep.png")
    key = original_key(uuid.UUID(image["id"]))
    assert blob_exists(client, key)
    grace = age_blob(client, key)
    sweep(client, grace)
    assert blob_exists(client, key)
    response = client.get(f"/image/download/{image['id']}", headers=alice.headers)
    assert response.status_code == 200
    assert response.content == data


def test_young_orphan_is_kept_during_the_grace_period(client: TestClient) -> None:
    key = original_key(uuid.uuid4())
    put_blob(client, key)
    try:
        sweep(client, timedelta(days=1))
        assert blob_exists(client, key)
    finally:
        run(client, lambda: services_of(client).storage.delete(key))


def test_blobs_outside_originals_are_not_swept(client: TestClient) -> None:
    key = f"elsewhere/{uuid.uuid4()}"
    put_blob(client, key)
    try:
        sweep(client, age_blob(client, key))
        assert blob_exists(client, key)
    finally:
        run(client, lambda: services_of(client).storage.delete(key))


def test_many_orphans_are_swept_across_batches(client: TestClient, alice: Account) -> None:
    kept = uploaded(client, alice, image_bytes("PNG"))
    kept_key = original_key(uuid.UUID(kept["id"]))
    orphans = [original_key(uuid.uuid4()) for _ in range(7)]
    for key in orphans:
        put_blob(client, key)
    grace = max(age_blob(client, key) for key in [*orphans, kept_key])
    services = services_of(client)

    async def go() -> int:
        async with services.sessions() as session:
            return await sweep_orphan_blobs(session, services.storage, older_than=grace, batch=3)

    assert run(client, go) >= len(orphans)
    assert not any(blob_exists(client, key) for key in orphans)
    assert blob_exists(client, kept_key)


def test_image_blob_is_kept_even_with_no_grace_period(client: TestClient, alice: Account) -> None:
    # A grace of zero makes every blob old; only the image row can save this one.
    image = uploaded(client, alice)
    sweep(client, timedelta(0))
    assert blob_exists(client, original_key(uuid.UUID(image["id"])))
