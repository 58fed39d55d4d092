"""A job that keeps failing is retried with backoff, then dead: marked failed with its error,
visible to admins, and retryable once the cause is fixed."""

from __future__ import annotations

import io
import secrets
from typing import Any

import pytest
from fastapi.testclient import TestClient

from iap.auth.models import Role
from iap.auth.service import create_user
from tests.conftest import ClientFactory
from tests.factories import PASSWORD, Account, image_bytes, login, make_account, uploaded
from tests.factories import wait_for_analysis as wait
from tests.images.test_upload import assert_error


@pytest.fixture
def fast_retry_client(client_with: ClientFactory) -> TestClient:
    return client_with(
        analysis_max_retries=2, analysis_min_backoff_ms=50, analysis_max_backoff_ms=200
    )


def make_admin(client: TestClient) -> dict[str, str]:
    services = client.app.state.services  # type: ignore[attr-defined]
    name = f"admin_{secrets.token_hex(4)}"

    async def create() -> None:
        async with services.sessions() as session:
            await create_user(
                session,
                username=name,
                email=f"{name}@example.com",
                password=PASSWORD,
                role=Role.ADMIN,
            )

    client.portal.call(create)  # type: ignore[union-attr]
    return {"Authorization": f"Bearer {login(client, name, PASSWORD)['access_token']}"}


def failed_entry(client: TestClient, admin: dict[str, str], image_id: str) -> dict[str, Any] | None:
    listing = client.get("/admin/jobs/failed?limit=100", headers=admin).json()
    return next((e for e in listing["data"] if e["image_id"] == image_id), None)


def replace_original(client: TestClient, image_id: str, data: bytes) -> None:
    storage = client.app.state.services.storage  # type: ignore[attr-defined]
    client.portal.call(storage.put, f"originals/{image_id}", io.BytesIO(data), "image/png")  # type: ignore[union-attr]


def test_poisoned_image_is_retried_then_dead_and_can_be_retried(
    fast_retry_client: TestClient,
) -> None:
    client = fast_retry_client
    owner: Account = make_account(client)
    original = image_bytes("PNG", size=(200, 100))
    image = uploaded(client, owner, original, filename="poison.png")
    wait(client, owner, image["id"], {"succeeded"})
    replace_original(client, image["id"], b"\x89PNG\r\n\x1a\n this is no longer an image")

    assert client.post(f"/image/{image['id']}/analyze", headers=owner.headers).status_code == 202
    dead = wait(client, owner, image["id"], {"failed"})["analysis"]
    assert dead["attempts"] == 3  # the first try and two retries
    assert "the stored original is not an image" in dead["error"]
    assert dead["finished_at"] is not None
    failed_list = client.get("/image/all?status=failed", headers=owner.headers).json()
    assert [img["id"] for img in failed_list["data"]] == [image["id"]]

    admin = make_admin(client)
    entry = failed_entry(client, admin, image["id"])
    assert entry is not None
    assert entry["job"]["status"] == "failed"
    assert entry["original_filename"] == "poison.png"
    assert_error(client.get("/admin/jobs/failed", headers=owner.headers), 403, "admin_required")

    replace_original(client, image["id"], original)  # the cause is fixed
    job_id = entry["job"]["job_id"]
    retried = client.post(f"/admin/jobs/{job_id}/retry", headers=admin)
    assert retried.status_code == 200, retried.text
    assert retried.json() == {"retried": [job_id]}
    healed = wait(client, owner, image["id"], {"succeeded", "failed"})["analysis"]
    assert healed["status"] == "succeeded"
    assert healed["error"] is None
    assert failed_entry(client, admin, image["id"]) is None
    assert_error(client.post(f"/admin/jobs/{job_id}/retry", headers=admin), 409, "job_not_failed")


def test_retry_all_failed_jobs(fast_retry_client: TestClient) -> None:
    client = fast_retry_client
    owner = make_account(client)
    originals = {}
    jobs = []
    for _ in range(2):
        data = image_bytes("PNG", size=(64, 64))
        image = uploaded(client, owner, data)
        wait(client, owner, image["id"], {"succeeded"})
        originals[image["id"]] = data
        replace_original(client, image["id"], b"broken")
        client.post(f"/image/{image['id']}/analyze", headers=owner.headers)
    for image_id in originals:
        jobs.append(wait(client, owner, image_id, {"failed"}))
    admin = make_admin(client)
    for image_id, data in originals.items():
        replace_original(client, image_id, data)
    retried = client.post("/admin/jobs/failed/retry", headers=admin).json()["retried"]
    ours = {failed["analysis"]["job_id"] for failed in jobs}
    assert ours <= set(retried)
    for image_id in originals:
        assert (
            wait(client, owner, image_id, {"succeeded", "failed"})["analysis"]["status"]
            == "succeeded"
        )


def test_unknown_job_retry_is_404(fast_retry_client: TestClient) -> None:
    admin = make_admin(fast_retry_client)
    response = fast_retry_client.post(
        "/admin/jobs/00000000-0000-4000-8000-000000000000/retry", headers=admin
    )
    assert_error(response, 404, "job_not_found")
