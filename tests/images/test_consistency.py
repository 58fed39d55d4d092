"""An upload is all or nothing: no row without its blob, no blob left behind by a failure."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from iap.storage import StorageUnavailable
from tests.factories import Account, upload, uploaded
from tests.images.test_upload import assert_error


def stored_keys(client: TestClient) -> set[str]:
    storage = client.app.state.services.storage  # type: ignore[attr-defined]

    async def keys() -> set[str]:
        return {blob.key async for blob in storage.list("originals/")}

    return client.portal.call(keys)  # type: ignore[union-attr]


def test_database_failure_after_storing_leaves_no_blob(
    client: TestClient, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = stored_keys(client)

    async def failing_commit(self: AsyncSession) -> None:
        raise OperationalError(
            "INSERT INTO images", {}, ConnectionError("server closed the connection")
        )

    monkeypatch.setattr(AsyncSession, "commit", failing_commit)
    response = upload(client, alice)
    monkeypatch.undo()
    body = assert_error(response, 503, "database_unavailable")
    assert "retry" in body["detail"]
    assert response.headers["retry-after"] == "5"
    assert stored_keys(client) == before
    assert client.get("/image/all", headers=alice.headers).json()["total"] == 0


def test_storage_failure_leaves_no_row(
    client: TestClient, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = client.app.state.services.storage  # type: ignore[attr-defined]

    async def failing_put(*args: Any, **kwargs: Any) -> None:
        raise StorageUnavailable("The image store cannot be reached: connection refused")

    monkeypatch.setattr(storage, "put", failing_put)
    response = upload(client, alice)
    monkeypatch.undo()
    assert_error(response, 503, "storage_unavailable")
    assert client.get("/image/all", headers=alice.headers).json()["total"] == 0
    assert uploaded(client, alice)["id"]  # and the next upload works


def test_every_row_has_its_blob_after_mixed_uploads(client: TestClient, alice: Account) -> None:
    good = [uploaded(client, alice)["id"] for _ in range(3)]
    assert upload(client, alice, b"not an image").status_code == 415
    keys = stored_keys(client)
    assert {f"originals/{image_id}" for image_id in good} <= keys
