"""Administration of users: only admins list accounts and disable them; a disabled account is
locked out everywhere at once (tokens, login, refresh, API keys) until it is re-enabled."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from iap.config import Settings
from tests.admin.conftest import run_create_user
from tests.auth.helpers import (
    assert_error,
    assert_unauthenticated,
    assert_validation_error,
    bearer,
    forge,
    me,
    refresh,
    try_login,
)
from tests.factories import PASSWORD, Account, login

USER_FIELDS = {"id", "username", "email", "role", "is_active", "created_at"}


def set_active(client: TestClient, admin: Account, user_id: str, active: bool) -> Any:
    return client.patch(
        f"/admin/users/{user_id}", headers=admin.headers, json={"is_active": active}
    )


def all_users(client: TestClient, admin: Account) -> dict[str, dict[str, Any]]:
    """Every account, by id, read page by page (the suite's database holds many)."""
    users: dict[str, dict[str, Any]] = {}
    page = 1
    while True:
        response = client.get(f"/admin/users?skip={page}&limit=100", headers=admin.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        if not body["data"]:
            assert len(users) >= body["total"] - 5  # others may sign up meanwhile
            return users
        users |= {user["id"]: user for user in body["data"]}
        page += 1


def new_api_key(client: TestClient, account: Account) -> str:
    response = client.post("/me/api-keys", headers=account.headers, json={"name": "script"})
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


# --- the CLI makes admins ---------------------------------------------------------------------


def test_cli_creates_an_admin_who_is_an_admin_over_the_api(
    client: TestClient, admin: Account
) -> None:
    body = me(client, admin.headers).json()
    assert body["role"] == "admin"
    assert body["is_active"] is True


def test_cli_creates_a_plain_user_without_the_admin_flag(
    client: TestClient, settings: Settings
) -> None:
    name = f"cli_{secrets.token_hex(5)}"
    result = run_create_user(
        settings, name, "--email", f"{name}@example.com", "--password", PASSWORD
    )
    assert result.exit_code == 0, result.output
    tokens = login(client, name, PASSWORD)
    assert me(client, bearer(tokens["access_token"])).json()["role"] == "user"
    response = client.get("/admin/users", headers=bearer(tokens["access_token"]))
    assert_error(response, 403, "admin_required")


def test_cli_refuses_a_taken_username(
    client: TestClient, settings: Settings, alice: Account
) -> None:
    result = run_create_user(
        settings, alice.username, "--email", "other@example.com", "--password", PASSWORD, "--admin"
    )
    assert result.exit_code == 1
    assert "already registered" in result.output
    assert me(client, alice.headers).json()["role"] == "user"


def test_cli_refuses_a_short_password(settings: Settings) -> None:
    name = f"cli_{secrets.token_hex(5)}"
    result = run_create_user(
        settings, name, "--email", f"{name}@example.com", "--password", "short"
    )
    assert result.exit_code == 2
    assert "password" in result.output


# --- who may administer -----------------------------------------------------------------------


def test_non_admin_listing_users_is_403_admin_required(client: TestClient, alice: Account) -> None:
    assert_error(client.get("/admin/users", headers=alice.headers), 403, "admin_required")


def test_non_admin_disabling_a_user_is_403_and_changes_nothing(
    client: TestClient, alice: Account, bob: Account
) -> None:
    assert_error(set_active(client, alice, bob.id, False), 403, "admin_required")
    assert me(client, bob.headers).status_code == 200


def test_non_admin_with_an_api_key_is_still_not_an_admin(
    client: TestClient, alice: Account
) -> None:
    key = new_api_key(client, alice)
    assert_error(client.get("/admin/users", headers={"X-API-Key": key}), 403, "admin_required")


def test_admin_routes_need_authentication(client: TestClient, bob: Account) -> None:
    assert_unauthenticated(client.get("/admin/users"), "not_authenticated")
    response = client.patch(f"/admin/users/{bob.id}", json={"is_active": False})
    assert_unauthenticated(response, "not_authenticated")
    assert me(client, bob.headers).status_code == 200


def test_forged_admin_token_with_a_wrong_key_is_401(
    client: TestClient, admin: Account, settings: Settings
) -> None:
    token = forge(settings, admin.id, key="an-entirely-different-signing-key-of-enough-length")
    assert_unauthenticated(client.get("/admin/users", headers=bearer(token)))


def test_admin_api_key_can_administer(client: TestClient, admin: Account, bob: Account) -> None:
    key = new_api_key(client, admin)
    response = client.get("/admin/users?limit=1", headers={"X-API-Key": key})
    assert response.status_code == 200, response.text


# --- listing ----------------------------------------------------------------------------------


def test_admin_lists_users_without_password_fields(
    client: TestClient, admin: Account, alice: Account, bob: Account
) -> None:
    response = client.get("/admin/users?limit=100", headers=admin.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"total", "skip", "limit", "data"}
    assert (body["skip"], body["limit"]) == (1, 100)
    assert body["total"] >= 3
    for user in body["data"]:
        assert set(user) == USER_FIELDS
    users = all_users(client, admin)
    assert users[alice.id]["username"] == alice.username
    assert users[bob.id]["email"] == bob.email
    assert users[admin.id]["role"] == "admin"
    assert users[alice.id]["role"] == "user"


def test_user_list_is_paginated_oldest_first_without_overlap(
    client: TestClient, admin: Account, alice: Account, bob: Account
) -> None:
    total = client.get("/admin/users?limit=1", headers=admin.headers).json()["total"]
    # The three newest accounts are the last three pages of size 1, in creation order.
    ids = [
        client.get(f"/admin/users?skip={page}&limit=1", headers=admin.headers).json()["data"][0][
            "id"
        ]
        for page in (total - 2, total - 1, total)
    ]
    assert ids == [admin.id, alice.id, bob.id]
    beyond = client.get(f"/admin/users?skip={total + 1}&limit=1", headers=admin.headers).json()
    assert beyond["data"] == []
    assert beyond["total"] == total


def test_user_search_matches_username_or_email_in_any_case(
    client: TestClient, admin: Account, alice: Account, bob: Account
) -> None:
    by_name = client.get(
        "/admin/users", params={"q": alice.username.upper()}, headers=admin.headers
    ).json()
    assert [u["id"] for u in by_name["data"]] == [alice.id]
    assert by_name["total"] == 1
    by_email = client.get("/admin/users", params={"q": bob.email}, headers=admin.headers).json()
    assert [u["id"] for u in by_email["data"]] == [bob.id]
    # LIKE wildcards are plain characters here: '%' matches only a literal '%'.
    nothing = client.get("/admin/users", params={"q": "%"}, headers=admin.headers).json()
    assert nothing == {"total": 0, "skip": 1, "limit": 50, "data": []}
    assert_validation_error(client.get("/admin/users?q=a%00b", headers=admin.headers))


@pytest.mark.parametrize(
    "query", ["skip=0", "skip=-1", "limit=0", "limit=101", "skip=x", "limit=1.5"]
)
def test_invalid_paging_is_422(client: TestClient, admin: Account, query: str) -> None:
    assert_validation_error(client.get(f"/admin/users?{query}", headers=admin.headers))


# --- disabling --------------------------------------------------------------------------------


def test_admin_disables_a_user(client: TestClient, admin: Account, bob: Account) -> None:
    response = set_active(client, admin, bob.id, False)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == USER_FIELDS
    assert body["id"] == bob.id
    assert body["is_active"] is False
    assert all_users(client, admin)[bob.id]["is_active"] is False


def test_disabled_users_access_token_is_403_account_disabled(
    client: TestClient, admin: Account, bob: Account
) -> None:
    assert set_active(client, admin, bob.id, False).status_code == 200
    assert_error(me(client, bob.headers), 403, "account_disabled")
    assert_error(client.get("/image/all", headers=bob.headers), 403, "account_disabled")


def test_disabled_user_cannot_log_in(client: TestClient, admin: Account, bob: Account) -> None:
    assert set_active(client, admin, bob.id, False).status_code == 200
    assert_error(try_login(client, bob.username, bob.password), 403, "account_disabled")


def test_disabled_user_with_a_wrong_password_learns_nothing_about_the_account(
    client: TestClient, admin: Account, bob: Account
) -> None:
    assert set_active(client, admin, bob.id, False).status_code == 200
    response = try_login(client, bob.username, "not the password")
    assert_unauthenticated(response, "invalid_credentials")


def test_disabled_users_refresh_token_fails(
    client: TestClient, admin: Account, bob: Account
) -> None:
    assert set_active(client, admin, bob.id, False).status_code == 200
    # Disabling revoked every refresh token the account had.
    assert_unauthenticated(refresh(client, bob.refresh_token))


def test_disabled_users_api_key_fails(client: TestClient, admin: Account, bob: Account) -> None:
    key = new_api_key(client, bob)
    assert set_active(client, admin, bob.id, False).status_code == 200
    assert_error(me(client, {"X-API-Key": key}), 403, "account_disabled")
    assert_error(me(client, bearer(key)), 403, "account_disabled")


def test_disabling_one_user_leaves_the_others_alone(
    client: TestClient, admin: Account, alice: Account, bob: Account
) -> None:
    assert set_active(client, admin, bob.id, False).status_code == 200
    assert me(client, alice.headers).status_code == 200
    assert refresh(client, alice.refresh_token).status_code == 200


def test_re_enabled_user_can_log_in_and_use_keys_again(
    client: TestClient, admin: Account, bob: Account
) -> None:
    key = new_api_key(client, bob)
    assert set_active(client, admin, bob.id, False).status_code == 200
    response = set_active(client, admin, bob.id, True)
    assert response.status_code == 200, response.text
    assert response.json()["is_active"] is True
    tokens = login(client, bob.username, bob.password)
    assert me(client, bearer(tokens["access_token"])).json()["id"] == bob.id
    assert me(client, {"X-API-Key": key}).status_code == 200
    assert refresh(client, tokens["refresh_token"]).status_code == 200


def test_disabling_ends_existing_logins_for_good(
    client: TestClient, admin: Account, bob: Account
) -> None:
    assert set_active(client, admin, bob.id, False).status_code == 200
    assert set_active(client, admin, bob.id, True).status_code == 200
    # The refresh token from before the lock-out was revoked, not merely paused.
    assert_unauthenticated(refresh(client, bob.refresh_token))


def test_enabling_an_active_user_is_harmless(
    client: TestClient, admin: Account, bob: Account
) -> None:
    response = set_active(client, admin, bob.id, True)
    assert response.status_code == 200
    assert response.json()["is_active"] is True
    assert refresh(client, bob.refresh_token).status_code == 200


def test_admin_cannot_disable_themselves(client: TestClient, admin: Account) -> None:
    assert_error(set_active(client, admin, admin.id, False), 400, "cannot_disable_self")
    assert me(client, admin.headers).json()["is_active"] is True
    assert refresh(client, admin.refresh_token).status_code == 200


def test_admin_may_re_enable_themselves_as_a_no_op(client: TestClient, admin: Account) -> None:
    response = set_active(client, admin, admin.id, True)
    assert response.status_code == 200
    assert response.json()["is_active"] is True


def test_admin_can_disable_another_admin(
    client: TestClient, admin: Account, settings: Settings
) -> None:
    name = f"admin_{secrets.token_hex(5)}"
    result = run_create_user(
        settings, name, "--email", f"{name}@example.com", "--password", PASSWORD, "--admin"
    )
    assert result.exit_code == 0, result.output
    other = login(client, name, PASSWORD)
    other_id = me(client, bearer(other["access_token"])).json()["id"]
    assert set_active(client, admin, other_id, False).status_code == 200
    assert_error(
        client.get("/admin/users", headers=bearer(other["access_token"])), 403, "account_disabled"
    )


def test_unknown_user_id_is_404(client: TestClient, admin: Account) -> None:
    assert_error(set_active(client, admin, str(uuid.uuid4()), False), 404, "not_found")


def test_deleted_user_id_is_404(client: TestClient, admin: Account, alice: Account) -> None:
    assert client.delete("/me", headers=alice.headers).status_code == 204
    assert_error(set_active(client, admin, alice.id, False), 404, "not_found")


def test_malformed_user_id_is_422(client: TestClient, admin: Account) -> None:
    assert_validation_error(set_active(client, admin, "not-a-uuid", False))


@pytest.mark.parametrize(
    "body",
    [{}, {"is_active": "maybe"}, {"is_active": None}, {"is_active": True, "role": "admin"}],
    ids=["missing", "not-bool", "null", "extra-role"],
)
def test_invalid_status_body_is_422_and_changes_nothing(
    client: TestClient, admin: Account, bob: Account, body: dict[str, Any]
) -> None:
    response = client.patch(f"/admin/users/{bob.id}", headers=admin.headers, json=body)
    assert_validation_error(response)
    user = all_users(client, admin)[bob.id]
    assert (user["role"], user["is_active"]) == ("user", True)
