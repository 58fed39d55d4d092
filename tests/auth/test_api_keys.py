"""API keys: shown once, stored hashed, accepted as ``X-API-Key`` or as a bearer token, and
dead the moment they are deleted. Nobody can list or delete another user's keys."""

from __future__ import annotations

import re
import secrets
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.auth.helpers import (
    assert_error,
    assert_unauthenticated,
    assert_validation_error,
    bearer,
    me,
)
from tests.factories import Account, uploaded

KEY_FORMAT = re.compile(r"^iap_(?P<prefix>[0-9a-f]{12})_[A-Za-z0-9_-]+$")
KEY_FIELDS = {"id", "name", "prefix", "created_at", "last_used_at"}


def create_key(client: TestClient, account: Account, name: str = "backup script") -> Any:
    return client.post("/me/api-keys", headers=account.headers, json={"name": name})


def new_key(client: TestClient, account: Account, name: str = "backup script") -> dict[str, Any]:
    response = create_key(client, account, name)
    assert response.status_code == 201, response.text
    return dict(response.json())


def list_keys(client: TestClient, account: Account) -> list[dict[str, Any]]:
    response = client.get("/me/api-keys", headers=account.headers)
    assert response.status_code == 200, response.text
    return list(response.json())


def x_api_key(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def test_created_key_is_returned_once_with_its_metadata(client: TestClient, alice: Account) -> None:
    created = new_key(client, alice, "nightly sync")
    assert set(created) == KEY_FIELDS | {"key"}
    assert created["name"] == "nightly sync"
    assert created["last_used_at"] is None
    match = KEY_FORMAT.match(created["key"])
    assert match, created["key"]
    assert match["prefix"] == created["prefix"]
    assert len(created["key"]) > 40


def test_listing_shows_names_and_prefixes_never_the_key(client: TestClient, alice: Account) -> None:
    created = new_key(client, alice, "nightly sync")
    response = client.get("/me/api-keys", headers=alice.headers)
    assert response.status_code == 200
    [listed] = response.json()
    assert set(listed) == KEY_FIELDS
    assert listed["id"] == created["id"]
    assert listed["name"] == "nightly sync"
    assert listed["prefix"] == created["prefix"]
    secret_part = created["key"].rsplit("_", 1)[1]
    assert created["key"] not in response.text
    assert secret_part not in response.text


def test_listing_holds_every_key_in_creation_order(client: TestClient, alice: Account) -> None:
    ids = [new_key(client, alice, f"key {i}")["id"] for i in range(3)]
    assert [k["id"] for k in list_keys(client, alice)] == ids


def test_every_key_is_different(client: TestClient, alice: Account) -> None:
    keys = [new_key(client, alice)["key"] for _ in range(3)]
    assert len(set(keys)) == 3
    assert len({KEY_FORMAT.match(k)["prefix"] for k in keys}) == 3  # type: ignore[index]


def test_key_works_as_x_api_key_header(client: TestClient, alice: Account) -> None:
    key = new_key(client, alice)["key"]
    response = me(client, x_api_key(key))
    assert response.status_code == 200, response.text
    assert response.json()["id"] == alice.id


def test_key_works_as_a_bearer_token(client: TestClient, alice: Account) -> None:
    key = new_key(client, alice)["key"]
    response = me(client, bearer(key))
    assert response.status_code == 200, response.text
    assert response.json()["id"] == alice.id


def test_key_authenticates_image_routes(client: TestClient, alice: Account) -> None:
    image = uploaded(client, alice)
    key = new_key(client, alice)["key"]
    response = client.get(f"/image/{image['id']}", headers=x_api_key(key))
    assert response.status_code == 200
    assert response.json()["id"] == image["id"]


def test_using_a_key_records_when_it_was_last_used(client: TestClient, alice: Account) -> None:
    created = new_key(client, alice)
    assert me(client, x_api_key(created["key"])).status_code == 200
    [listed] = list_keys(client, alice)
    assert listed["last_used_at"] is not None


def test_each_users_keys_are_their_own(client: TestClient, alice: Account, bob: Account) -> None:
    alices = new_key(client, alice)
    bobs = new_key(client, bob)
    assert [k["id"] for k in list_keys(client, alice)] == [alices["id"]]
    assert [k["id"] for k in list_keys(client, bob)] == [bobs["id"]]
    assert me(client, x_api_key(bobs["key"])).json()["id"] == bob.id


@pytest.mark.parametrize(
    "key",
    [
        "iap_",
        "iap_short",
        "iap_0123456789ab",
        "iap_0123456789ab_",
        "iap_0123_secret",
        "not-an-iap-key",
        "x" * 300,
    ],
)
def test_malformed_key_is_401(client: TestClient, key: str) -> None:
    assert_unauthenticated(me(client, x_api_key(key)))


def test_malformed_key_as_bearer_is_401(client: TestClient) -> None:
    assert_unauthenticated(me(client, bearer("iap_short")))


def test_well_formed_unknown_key_is_401(client: TestClient) -> None:
    key = f"iap_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
    assert_unauthenticated(me(client, x_api_key(key)))
    assert_unauthenticated(me(client, bearer(key)))


def test_known_prefix_with_a_wrong_secret_is_401(client: TestClient, alice: Account) -> None:
    created = new_key(client, alice)
    forged = f"iap_{created['prefix']}_{secrets.token_urlsafe(32)}"
    assert_unauthenticated(me(client, x_api_key(forged)))
    assert_unauthenticated(me(client, bearer(forged)))


def test_truncated_or_extended_key_is_401(client: TestClient, alice: Account) -> None:
    key = new_key(client, alice)["key"]
    assert_unauthenticated(me(client, x_api_key(key[:-1])))
    assert_unauthenticated(me(client, x_api_key(key + "A")))


def test_deleted_key_is_401(client: TestClient, alice: Account) -> None:
    created = new_key(client, alice)
    response = client.delete(f"/me/api-keys/{created['id']}", headers=alice.headers)
    assert response.status_code == 204
    assert response.content == b""
    assert_unauthenticated(me(client, x_api_key(created["key"])))
    assert_unauthenticated(me(client, bearer(created["key"])))
    assert list_keys(client, alice) == []


def test_deleting_one_key_leaves_the_others_working(client: TestClient, alice: Account) -> None:
    doomed, kept = new_key(client, alice, "doomed"), new_key(client, alice, "kept")
    assert client.delete(f"/me/api-keys/{doomed['id']}", headers=alice.headers).status_code == 204
    assert me(client, x_api_key(kept["key"])).status_code == 200
    assert [k["id"] for k in list_keys(client, alice)] == [kept["id"]]


def test_deleting_another_users_key_is_404_and_the_key_keeps_working(
    client: TestClient, alice: Account, bob: Account
) -> None:
    bobs = new_key(client, bob)
    response = client.delete(f"/me/api-keys/{bobs['id']}", headers=alice.headers)
    assert_error(response, 404, "not_found")
    assert me(client, x_api_key(bobs["key"])).json()["id"] == bob.id
    assert [k["id"] for k in list_keys(client, bob)] == [bobs["id"]]


def test_deleting_an_unknown_key_is_404(client: TestClient, alice: Account) -> None:
    response = client.delete(f"/me/api-keys/{uuid.uuid4()}", headers=alice.headers)
    assert_error(response, 404, "not_found")


def test_deleting_a_key_twice_is_404_the_second_time(client: TestClient, alice: Account) -> None:
    created = new_key(client, alice)
    assert client.delete(f"/me/api-keys/{created['id']}", headers=alice.headers).status_code == 204
    response = client.delete(f"/me/api-keys/{created['id']}", headers=alice.headers)
    assert_error(response, 404, "not_found")


def test_malformed_key_id_is_422(client: TestClient, alice: Account) -> None:
    assert_validation_error(client.delete("/me/api-keys/not-a-uuid", headers=alice.headers))


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 101},
        {"name": "nul\x00name"},
        {"name": "two\nlines"},
        {"name": None},
        {"name": "k", "key": "iap_mine"},
    ],
    ids=["missing", "empty", "blank", "too-long", "nul", "newline", "null", "extra-field"],
)
def test_invalid_key_request_is_422_and_creates_nothing(
    client: TestClient, alice: Account, body: dict[str, Any]
) -> None:
    assert_validation_error(client.post("/me/api-keys", headers=alice.headers, json=body))
    assert list_keys(client, alice) == []


def test_key_name_is_trimmed(client: TestClient, alice: Account) -> None:
    assert new_key(client, alice, "  padded  ")["name"] == "padded"


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/me/api-keys"), ("GET", "/me/api-keys"), ("DELETE", f"/me/api-keys/{uuid.uuid4()}")],
)
def test_api_key_routes_need_authentication(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, json={"name": "k"} if method == "POST" else None)
    assert_unauthenticated(response, "not_authenticated")


def test_a_key_can_be_used_to_manage_keys(client: TestClient, alice: Account) -> None:
    key = new_key(client, alice)["key"]
    response = client.post("/me/api-keys", headers=x_api_key(key), json={"name": "second"})
    assert response.status_code == 201
    assert len(list_keys(client, alice)) == 2


def test_invalid_x_api_key_is_not_rescued_by_a_valid_bearer_token(
    client: TestClient, alice: Account
) -> None:
    # Whichever credential is presented must be valid; a bad one is never ignored silently.
    headers = {**alice.headers, "X-API-Key": "iap_0123456789ab_wrong"}
    assert_unauthenticated(me(client, headers))
