"""Access tokens: only an unexpired HS256 access token signed with iap's key, for a user who
still exists, opens ``GET /me``. Everything else is a 401 with the error body."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from fastapi.testclient import TestClient

from iap.config import Settings
from tests.auth.helpers import (
    assert_unauthenticated,
    b64url,
    bearer,
    forge,
    me,
    payload_of,
    unsigned_token,
)
from tests.factories import Account

OTHER_KEY = "an-entirely-different-signing-key-of-enough-length"


def test_me_returns_the_caller_without_password_fields(client: TestClient, alice: Account) -> None:
    response = me(client, alice.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == alice.id
    assert body["username"] == alice.username
    assert body["email"] == alice.email
    assert not any("password" in field or "hash" in field for field in body)


def test_token_forged_with_the_real_key_is_accepted(
    client: TestClient, alice: Account, settings: Settings
) -> None:
    # Proves the forging helper builds what iap builds, so the rejections below mean something.
    login_id = payload_of(alice.refresh_token)["fam"]
    response = me(client, bearer(forge(settings, alice.id, fam=login_id)))
    assert response.status_code == 200, response.text
    assert response.json()["id"] == alice.id


def test_token_signed_with_another_key_is_401(
    client: TestClient, alice: Account, settings: Settings
) -> None:
    assert_unauthenticated(me(client, bearer(forge(settings, alice.id, key=OTHER_KEY))))


def test_hand_made_alg_none_token_is_401(
    client: TestClient, alice: Account, settings: Settings
) -> None:
    assert_unauthenticated(me(client, bearer(unsigned_token(settings, alice.id))))


def test_pyjwt_alg_none_token_is_401(
    client: TestClient, alice: Account, settings: Settings
) -> None:
    token = forge(settings, alice.id, algorithm="none")
    assert jwt.get_unverified_header(token)["alg"] == "none"
    assert token.endswith(".")
    assert_unauthenticated(me(client, bearer(token)))


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_token_with_another_hmac_algorithm_is_401_even_with_the_real_key(
    client: TestClient, alice: Account, settings: Settings, algorithm: str
) -> None:
    assert_unauthenticated(me(client, bearer(forge(settings, alice.id, algorithm=algorithm))))


def test_real_token_with_its_signature_removed_is_401(client: TestClient, alice: Account) -> None:
    header, payload, _ = alice.access_token.split(".")
    assert_unauthenticated(me(client, bearer(f"{header}.{payload}.")))


def test_real_token_with_header_switched_to_alg_none_is_401(
    client: TestClient, alice: Account
) -> None:
    _, payload, _ = alice.access_token.split(".")
    header = b64url({"alg": "none", "typ": "JWT"})
    assert_unauthenticated(me(client, bearer(f"{header}.{payload}.")))


def test_real_signature_over_a_changed_payload_is_401(
    client: TestClient, alice: Account, bob: Account
) -> None:
    header, _, signature = alice.access_token.split(".")
    claims = payload_of(alice.access_token) | {"sub": bob.id}
    assert_unauthenticated(me(client, bearer(f"{header}.{b64url(claims)}.{signature}")))


def test_expired_token_is_401_invalid_token(
    client: TestClient, alice: Account, settings: Settings
) -> None:
    now = datetime.now(UTC)
    token = forge(
        settings, alice.id, iat=now - timedelta(minutes=20), exp=now - timedelta(minutes=5)
    )
    body = assert_unauthenticated(me(client, bearer(token)))
    assert "expired" in body["detail"]


def test_token_expired_a_second_ago_is_401(
    client: TestClient, alice: Account, settings: Settings
) -> None:
    now = datetime.now(UTC)
    token = forge(
        settings, alice.id, iat=now - timedelta(minutes=15), exp=now - timedelta(seconds=1)
    )
    assert_unauthenticated(me(client, bearer(token)))


def test_token_from_another_issuer_is_401(
    client: TestClient, alice: Account, settings: Settings
) -> None:
    token = forge(settings, alice.id, iss=f"{settings.jwt_issuer}-elsewhere")
    assert_unauthenticated(me(client, bearer(token)))


@pytest.mark.parametrize("claim", ["sub", "typ", "jti", "iss", "iat", "exp"])
def test_token_missing_a_required_claim_is_401(
    client: TestClient, alice: Account, settings: Settings, claim: str
) -> None:
    token = forge(settings, alice.id, **{claim: None})
    assert claim not in payload_of(token)
    assert_unauthenticated(me(client, bearer(token)))


@pytest.mark.parametrize("sub", ["alice", "", "12345", "not-a-uuid"])
def test_token_whose_subject_is_not_a_user_id_is_401(
    client: TestClient, settings: Settings, sub: str
) -> None:
    assert_unauthenticated(me(client, bearer(forge(settings, sub))))


def test_token_for_a_user_that_never_existed_is_401(client: TestClient, settings: Settings) -> None:
    assert_unauthenticated(me(client, bearer(forge(settings, str(uuid.uuid4())))))


def test_refresh_token_used_as_an_access_token_is_401(client: TestClient, alice: Account) -> None:
    assert_unauthenticated(me(client, bearer(alice.refresh_token)))


def test_forged_token_of_an_unknown_type_is_401(
    client: TestClient, alice: Account, settings: Settings
) -> None:
    token = forge(settings, alice.id, typ="admin")
    assert_unauthenticated(me(client, bearer(token)))


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9", "...", "Bearer", "x" * 5000],
    ids=["word", "three-parts", "header-only", "dots", "scheme-word", "long"],
)
def test_garbage_bearer_token_is_401_invalid_token(client: TestClient, token: str) -> None:
    assert_unauthenticated(me(client, bearer(token)))


def test_validly_signed_token_with_a_non_json_payload_is_401(
    client: TestClient, settings: Settings
) -> None:
    token = jwt.api_jws.PyJWS().encode(b"not json", settings.signing_key, algorithm="HS256")
    assert_unauthenticated(me(client, bearer(token)))


def test_validly_signed_token_with_a_json_list_payload_is_401(
    client: TestClient, settings: Settings
) -> None:
    token = jwt.api_jws.PyJWS().encode(json.dumps(["sub"]).encode(), settings.signing_key)
    assert_unauthenticated(me(client, bearer(token)))


def test_missing_authorization_is_401_not_authenticated(client: TestClient) -> None:
    assert_unauthenticated(client.get("/me"), "not_authenticated")


@pytest.mark.parametrize(
    "value", ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc"], ids=repr
)
def test_authorization_without_a_bearer_token_is_401_not_authenticated(
    client: TestClient, value: str
) -> None:
    response = client.get("/me", headers={"Authorization": value})
    assert_unauthenticated(response, "not_authenticated")


def test_bearer_scheme_is_case_insensitive(client: TestClient, alice: Account) -> None:
    response = client.get("/me", headers={"Authorization": f"bearer {alice.access_token}"})
    assert response.status_code == 200


def test_token_of_a_deleted_user_is_401(client: TestClient, alice: Account) -> None:
    assert client.delete("/me", headers=alice.headers).status_code == 204
    assert_unauthenticated(me(client, alice.headers))


def test_another_users_token_sees_only_its_own_account(
    client: TestClient, alice: Account, bob: Account
) -> None:
    assert me(client, alice.headers).json()["id"] == alice.id
    assert me(client, bob.headers).json()["id"] == bob.id
