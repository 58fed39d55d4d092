"""The caller's own account: reading it, changing email and password, deleting it with
everything it owns."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.auth.helpers import (
    assert_error,
    assert_unauthenticated,
    assert_validation_error,
    bearer,
    me,
    refresh,
    try_login,
)
from tests.factories import Account, login, metadata, uploaded

NEW_PASSWORD = "a brand new passphrase"


def patch_me(client: TestClient, account: Account, **body: Any) -> Any:
    return client.patch("/me", headers=account.headers, json=body)


def blob_exists(client: TestClient, image_id: str) -> bool:
    storage = client.app.state.services.storage  # type: ignore[attr-defined]
    return bool(client.portal.call(storage.exists, f"originals/{image_id}"))  # type: ignore[union-attr]


# --- GET /me --------------------------------------------------------------------------------


def test_me_describes_the_caller(client: TestClient, alice: Account) -> None:
    body = me(client, alice.headers).json()
    assert body["id"] == alice.id
    assert body["username"] == alice.username
    assert body["email"] == alice.email
    assert body["role"] == "user"
    assert body["is_active"] is True


def test_me_without_credentials_is_401(client: TestClient) -> None:
    assert_unauthenticated(client.get("/me"), "not_authenticated")


# --- PATCH /me: email -------------------------------------------------------------------------


def test_email_can_be_changed(client: TestClient, alice: Account) -> None:
    new_email = f"new.{alice.username}@example.org"
    response = patch_me(client, alice, email=new_email)
    assert response.status_code == 200, response.text
    assert response.json()["email"] == new_email
    assert me(client, alice.headers).json()["email"] == new_email


def test_changed_email_is_stored_in_lower_case(client: TestClient, alice: Account) -> None:
    response = patch_me(client, alice, email=f"MiXeD.{alice.username}@Example.ORG")
    assert response.status_code == 200, response.text
    assert response.json()["email"] == f"mixed.{alice.username}@example.org"


def test_email_change_leaves_the_login_and_tokens_alone(client: TestClient, alice: Account) -> None:
    assert patch_me(client, alice, email=f"moved.{alice.username}@example.org").status_code == 200
    assert try_login(client, alice.username, alice.password).status_code == 200
    assert refresh(client, alice.refresh_token).status_code == 200


def test_setting_your_own_email_again_is_a_no_op(client: TestClient, alice: Account) -> None:
    response = patch_me(client, alice, email=alice.email.upper())
    assert response.status_code == 200, response.text
    assert response.json()["email"] == alice.email


@pytest.mark.parametrize("case", [str.lower, str.upper])
def test_email_of_another_account_is_400_email_taken(
    client: TestClient, alice: Account, bob: Account, case: Any
) -> None:
    assert_error(patch_me(client, alice, email=case(bob.email)), 400, "email_taken")
    assert me(client, alice.headers).json()["email"] == alice.email
    assert me(client, bob.headers).json()["email"] == bob.email


def test_freed_email_can_be_taken_by_another_account(
    client: TestClient, alice: Account, bob: Account
) -> None:
    old = alice.email
    assert (
        patch_me(client, alice, email=f"elsewhere.{alice.username}@example.org").status_code == 200
    )
    assert patch_me(client, bob, email=old).status_code == 200


def test_invalid_email_is_422(client: TestClient, alice: Account) -> None:
    assert_validation_error(patch_me(client, alice, email="not-an-email"))
    assert me(client, alice.headers).json()["email"] == alice.email


def test_empty_patch_changes_nothing(client: TestClient, alice: Account) -> None:
    before = me(client, alice.headers).json()
    response = patch_me(client, alice)
    assert response.status_code == 200
    assert response.json() == before


@pytest.mark.parametrize(
    "field",
    [
        {"role": "admin"},
        {"is_active": False},
        {"username": "renamed_user"},
        {"id": "6d0c6e0e-0000-4000-8000-00000000beef"},
        {"password_hash": "x"},
    ],
    ids=lambda field: next(iter(field)),
)
def test_fields_you_may_not_change_are_422(
    client: TestClient, alice: Account, field: dict[str, Any]
) -> None:
    before = me(client, alice.headers).json()
    assert_validation_error(patch_me(client, alice, **field))
    assert me(client, alice.headers).json() == before


# --- PATCH /me: password ----------------------------------------------------------------------


def test_password_change_without_current_password_is_400_wrong_password(
    client: TestClient, alice: Account
) -> None:
    assert_error(patch_me(client, alice, password=NEW_PASSWORD), 400, "wrong_password")
    assert try_login(client, alice.username, alice.password).status_code == 200
    assert try_login(client, alice.username, NEW_PASSWORD).status_code == 401


def test_password_change_with_a_wrong_current_password_is_400_wrong_password(
    client: TestClient, alice: Account
) -> None:
    response = patch_me(client, alice, password=NEW_PASSWORD, current_password="not it at all")
    assert_error(response, 400, "wrong_password")
    assert try_login(client, alice.username, alice.password).status_code == 200
    assert try_login(client, alice.username, NEW_PASSWORD).status_code == 401
    assert refresh(client, alice.refresh_token).status_code == 200


def test_rejected_password_change_does_not_apply_the_email_change_either(
    client: TestClient, alice: Account
) -> None:
    response = patch_me(
        client,
        alice,
        email=f"sneaky.{alice.username}@example.org",
        password=NEW_PASSWORD,
        current_password="not it at all",
    )
    assert_error(response, 400, "wrong_password")
    assert me(client, alice.headers).json()["email"] == alice.email


def test_password_change_with_the_current_password_replaces_it(
    client: TestClient, alice: Account
) -> None:
    response = patch_me(client, alice, password=NEW_PASSWORD, current_password=alice.password)
    assert response.status_code == 200, response.text
    assert not any("password" in field for field in response.json())
    assert_unauthenticated(try_login(client, alice.username, alice.password), "invalid_credentials")
    assert try_login(client, alice.username, NEW_PASSWORD).status_code == 200


def test_password_change_revokes_every_existing_refresh_token(
    client: TestClient, alice: Account
) -> None:
    second_login = login(client, alice.username, alice.password)
    response = patch_me(client, alice, password=NEW_PASSWORD, current_password=alice.password)
    assert response.status_code == 200
    assert_unauthenticated(refresh(client, alice.refresh_token))
    assert_unauthenticated(refresh(client, second_login["refresh_token"]))
    fresh = login(client, alice.username, NEW_PASSWORD)
    assert refresh(client, fresh["refresh_token"]).status_code == 200


def test_password_change_ends_every_access_token_of_the_user_at_once(
    client: TestClient, alice: Account
) -> None:
    second_login = login(client, alice.username, alice.password)
    assert (
        patch_me(client, alice, password=NEW_PASSWORD, current_password=alice.password).status_code
        == 200
    )
    assert_unauthenticated(me(client, alice.headers))
    assert_unauthenticated(me(client, bearer(second_login["access_token"])))
    fresh = login(client, alice.username, NEW_PASSWORD)
    assert me(client, bearer(fresh["access_token"])).status_code == 200


def test_password_change_does_not_touch_other_users(
    client: TestClient, alice: Account, bob: Account
) -> None:
    assert (
        patch_me(client, alice, password=NEW_PASSWORD, current_password=alice.password).status_code
        == 200
    )
    assert refresh(client, bob.refresh_token).status_code == 200
    assert me(client, bob.headers).status_code == 200
    assert try_login(client, bob.username, bob.password).status_code == 200


def test_short_new_password_is_422_and_keeps_the_old_one(
    client: TestClient, alice: Account
) -> None:
    assert_validation_error(
        patch_me(client, alice, password="short", current_password=alice.password)
    )
    assert try_login(client, alice.username, alice.password).status_code == 200


def test_current_password_alone_changes_nothing(client: TestClient, alice: Account) -> None:
    response = patch_me(client, alice, current_password="anything at all")
    assert response.status_code == 200
    assert try_login(client, alice.username, alice.password).status_code == 200


def test_patch_me_needs_authentication(client: TestClient) -> None:
    response = client.patch("/me", json={"email": "who@example.com"})
    assert_unauthenticated(response, "not_authenticated")


# --- DELETE /me -------------------------------------------------------------------------------


def test_delete_me_is_204_and_the_token_stops_working(client: TestClient, alice: Account) -> None:
    response = client.delete("/me", headers=alice.headers)
    assert response.status_code == 204
    assert response.content == b""
    assert_unauthenticated(me(client, alice.headers))


def test_deleted_account_can_no_longer_log_in_or_refresh(
    client: TestClient, alice: Account
) -> None:
    assert client.delete("/me", headers=alice.headers).status_code == 204
    assert_unauthenticated(try_login(client, alice.username, alice.password), "invalid_credentials")
    assert_unauthenticated(refresh(client, alice.refresh_token))


def test_deleted_accounts_api_key_stops_working(client: TestClient, alice: Account) -> None:
    key = client.post("/me/api-keys", headers=alice.headers, json={"name": "k"}).json()["key"]
    assert me(client, {"X-API-Key": key}).status_code == 200
    assert client.delete("/me", headers=alice.headers).status_code == 204
    assert_unauthenticated(me(client, {"X-API-Key": key}))
    assert_unauthenticated(me(client, bearer(key)))


def test_delete_me_removes_every_image_row_and_blob(
    client: TestClient, alice: Account, bob: Account
) -> None:
    images = [uploaded(client, alice, filename=f"{i}.jpg")["id"] for i in range(2)]
    assert all(blob_exists(client, image_id) for image_id in images)
    assert client.delete("/me", headers=alice.headers).status_code == 204
    for image_id in images:
        assert not blob_exists(client, image_id)
        # The row is gone too: for anyone else it is unknown (404), not someone's (403).
        assert_error(client.get(f"/image/{image_id}", headers=bob.headers), 404, "image_not_found")


def test_delete_me_leaves_other_users_and_their_images_alone(
    client: TestClient, alice: Account, bob: Account
) -> None:
    uploaded(client, alice)
    bobs = uploaded(client, bob, filename="bob.jpg")
    assert client.delete("/me", headers=alice.headers).status_code == 204
    assert me(client, bob.headers).json()["id"] == bob.id
    current = client.get(f"/image/{bobs['id']}", headers=bob.headers).json()
    assert metadata(current) == metadata(bobs)
    assert client.get(f"/image/download/{bobs['id']}", headers=bob.headers).status_code in {
        200,
        307,
    }
    assert blob_exists(client, bobs["id"])
    assert client.get("/image/all", headers=bob.headers).json()["total"] == 1
    assert refresh(client, bob.refresh_token).status_code == 200


def test_username_and_email_are_free_again_after_deletion(
    client: TestClient, alice: Account
) -> None:
    assert client.delete("/me", headers=alice.headers).status_code == 204
    response = client.post(
        "/signup",
        json={"username": alice.username, "email": alice.email, "password": NEW_PASSWORD},
    )
    assert response.status_code == 201, response.text
    assert response.json()["id"] != alice.id
    assert try_login(client, alice.username, NEW_PASSWORD).status_code == 200
    assert_unauthenticated(me(client, alice.headers))  # the old account's token stays dead


def test_delete_me_twice_is_401_the_second_time(client: TestClient, alice: Account) -> None:
    assert client.delete("/me", headers=alice.headers).status_code == 204
    assert_unauthenticated(client.delete("/me", headers=alice.headers))


def test_delete_me_needs_authentication(client: TestClient) -> None:
    assert_unauthenticated(client.delete("/me"), "not_authenticated")
