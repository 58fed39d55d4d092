"""``GET /admin/stats``: figures for administrators only."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.auth.helpers import assert_error
from tests.factories import Account, image_bytes, uploaded


def test_stats_count_accounts_images_bytes_and_jobs(
    client: TestClient, admin: Account, alice: Account
) -> None:
    before = client.get("/admin/stats", headers=admin.headers).json()
    data = image_bytes(size=(40, 30))
    uploaded(client, alice, data)
    after = client.get("/admin/stats", headers=admin.headers)
    assert after.status_code == 200
    figures = after.json()
    # The scaled database is shared by the whole run, so compare with the figures just before.
    assert figures["images"] >= before["images"] + 1
    assert figures["stored_bytes"] >= before["stored_bytes"] + len(data)
    assert figures["users"] >= 2
    assert figures["admins"] >= 1
    assert figures["active_users"] <= figures["users"]
    assert set(figures["jobs"]) == {"queued", "running", "succeeded", "failed"}
    assert sum(figures["jobs"].values()) >= sum(before["jobs"].values()) + 1


def test_stats_are_for_admins_only(client: TestClient, alice: Account) -> None:
    assert_error(client.get("/admin/stats", headers=alice.headers), 403, "admin_required")
    assert_error(client.get("/admin/stats"), 401, "not_authenticated")
