"""Login: the OAuth2 password form trades credentials for a bearer token pair, and a failure
says nothing about which half of the credentials was wrong."""

from __future__ import annotations

import uuid

import jwt
import pytest
from fastapi.testclient import TestClient
from pwdlib.hashers.argon2 import Argon2Hasher

from iap.config import Settings
from tests.auth.helpers import (
    assert_unauthenticated,
    assert_validation_error,
    bearer,
    me,
    payload_of,
    try_login,
)
from tests.factories import Account


def test_login_returns_a_bearer_token_pair_with_its_lifetime(
    client: TestClient, alice: Account, settings: Settings
) -> None:
    response = try_login(client, alice.username, alice.password)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.access_token_ttl_seconds
    assert body["access_token"] != body["refresh_token"]


def test_access_token_is_an_hs256_jwt_for_the_user(
    client: TestClient, alice: Account, settings: Settings
) -> None:
    body = try_login(client, alice.username, alice.password).json()
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"
    claims = jwt.decode(
        body["access_token"],
        settings.signing_key,
        algorithms=["HS256"],
        issuer=settings.jwt_issuer,
    )
    assert claims["sub"] == alice.id
    assert claims["typ"] == "access"
    assert claims["exp"] - claims["iat"] == settings.access_token_ttl_seconds
    uuid.UUID(claims["jti"])


def test_refresh_token_belongs_to_a_login_family(
    client: TestClient, alice: Account, settings: Settings
) -> None:
    body = try_login(client, alice.username, alice.password).json()
    claims = jwt.decode(
        body["refresh_token"], settings.signing_key, algorithms=["HS256"], issuer="iap"
    )
    assert claims["sub"] == alice.id
    assert claims["typ"] == "refresh"
    assert claims["exp"] - claims["iat"] == settings.refresh_token_ttl_seconds
    uuid.UUID(claims["fam"])


def test_each_login_issues_distinct_tokens(client: TestClient, alice: Account) -> None:
    first = try_login(client, alice.username, alice.password).json()
    second = try_login(client, alice.username, alice.password).json()
    assert first["access_token"] != second["access_token"]
    assert payload_of(first["refresh_token"])["fam"] != payload_of(second["refresh_token"])["fam"]


def test_access_token_from_login_authenticates(client: TestClient, alice: Account) -> None:
    token = try_login(client, alice.username, alice.password).json()["access_token"]
    response = me(client, bearer(token))
    assert response.status_code == 200
    assert response.json()["id"] == alice.id


def test_wrong_password_is_401_invalid_credentials(client: TestClient, alice: Account) -> None:
    response = try_login(client, alice.username, alice.password + "!")
    assert_unauthenticated(response, "invalid_credentials")


def test_unknown_user_is_401_invalid_credentials(client: TestClient) -> None:
    response = try_login(client, f"nobody_{uuid.uuid4().hex[:8]}", "whatever password")
    assert_unauthenticated(response, "invalid_credentials")


def test_wrong_password_and_unknown_user_get_identical_answers(
    client: TestClient, alice: Account
) -> None:
    wrong_password = try_login(client, alice.username, "not the password")
    unknown_user = try_login(client, f"nobody_{uuid.uuid4().hex[:8]}", "not the password")
    assert wrong_password.status_code == unknown_user.status_code == 401
    assert wrong_password.json() == unknown_user.json()
    assert wrong_password.headers["www-authenticate"] == unknown_user.headers["www-authenticate"]


def test_unknown_user_costs_one_argon2_verification_like_a_wrong_password(
    client: TestClient, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a dummy hash check, an unknown name would answer at once and a known one after an
    argon2 verification: a user-enumeration oracle. Both must do the same work."""
    calls: list[str] = []
    real_verify = Argon2Hasher.verify

    def counting_verify(self: Argon2Hasher, password: str | bytes, hash: str | bytes) -> bool:
        calls.append("verify")
        return real_verify(self, password, hash)

    monkeypatch.setattr(Argon2Hasher, "verify", counting_verify)
    assert try_login(client, alice.username, "not the password").status_code == 401
    assert calls == ["verify"]
    calls.clear()
    assert (
        try_login(client, f"nobody_{uuid.uuid4().hex[:8]}", "not the password").status_code == 401
    )
    assert calls == ["verify"]


def test_username_is_case_sensitive_at_login(client: TestClient, alice: Account) -> None:
    response = try_login(client, alice.username.upper(), alice.password)
    assert_unauthenticated(response, "invalid_credentials")


def test_password_is_case_sensitive(client: TestClient, alice: Account) -> None:
    response = try_login(client, alice.username, alice.password.upper())
    assert_unauthenticated(response, "invalid_credentials")


@pytest.mark.parametrize("missing", ["username", "password"])
def test_login_form_without_a_field_is_422(
    client: TestClient, alice: Account, missing: str
) -> None:
    form = {"username": alice.username, "password": alice.password}
    del form[missing]
    assert_validation_error(client.post("/login", data=form))


def test_login_as_json_instead_of_a_form_is_422(client: TestClient, alice: Account) -> None:
    response = client.post("/login", json={"username": alice.username, "password": alice.password})
    assert_validation_error(response)


def test_empty_password_is_422_not_a_login_attempt(client: TestClient, alice: Account) -> None:
    response = client.post("/login", data={"username": alice.username, "password": ""})
    assert_validation_error(response)


@pytest.mark.parametrize(
    "username", ["nul\x00name", "tab\tname", "x" * 33, "x" * 5000], ids=["nul", "tab", "33", "5000"]
)
def test_username_no_account_can_have_is_401_like_any_unknown_user(
    client: TestClient, username: str
) -> None:
    response = try_login(client, username, "whatever password")
    assert_unauthenticated(response, "invalid_credentials")
