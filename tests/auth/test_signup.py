"""Sign-up: an account is created once per username and email, and never echoes a password."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.auth.helpers import assert_error, assert_validation_error, try_login
from tests.factories import PASSWORD

USER_FIELDS = {"id", "username", "email", "role", "is_active", "created_at"}


def fresh_name() -> str:
    return f"user_{secrets.token_hex(5)}"


def signup(client: TestClient, **fields: Any) -> Any:
    name = fresh_name()
    body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD} | fields
    return client.post("/signup", json=body)


def test_signup_returns_201_with_the_user_and_no_password_fields(client: TestClient) -> None:
    name = fresh_name()
    response = client.post(
        "/signup", json={"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == USER_FIELDS
    assert body["username"] == name
    assert body["email"] == f"{name}@example.com"
    assert body["role"] == "user"
    assert body["is_active"] is True
    assert not any("password" in field or "hash" in field for field in body)
    assert PASSWORD not in response.text
    assert "argon2" not in response.text


def test_signed_up_user_can_log_in(client: TestClient) -> None:
    name = fresh_name()
    assert signup(client, username=name).status_code == 201
    assert try_login(client, name, PASSWORD).status_code == 200


def test_email_is_stored_in_lower_case(client: TestClient) -> None:
    name = fresh_name()
    response = signup(client, username=name, email=f"{name.upper()}@Example.COM")
    assert response.status_code == 201, response.text
    assert response.json()["email"] == f"{name}@example.com"


def test_username_surrounding_whitespace_is_stripped(client: TestClient) -> None:
    name = fresh_name()
    response = signup(client, username=f"  {name}  ")
    assert response.status_code == 201, response.text
    assert response.json()["username"] == name
    assert try_login(client, name, PASSWORD).status_code == 200


def test_duplicate_username_is_400_username_taken(client: TestClient) -> None:
    name = fresh_name()
    assert signup(client, username=name).status_code == 201
    body = assert_error(signup(client, username=name), 400, "username_taken")
    assert isinstance(body["detail"], str)


def test_duplicate_username_with_padding_is_still_taken(client: TestClient) -> None:
    name = fresh_name()
    assert signup(client, username=name).status_code == 201
    assert_error(signup(client, username=f" {name} "), 400, "username_taken")


@pytest.mark.parametrize("variant", [str.lower, str.upper, str.title])
def test_duplicate_email_in_any_case_is_400_email_taken(client: TestClient, variant: Any) -> None:
    name = fresh_name()
    email = f"{name}@example.com"
    assert signup(client, email=email).status_code == 201
    body = assert_error(signup(client, email=variant(email)), 400, "email_taken")
    assert isinstance(body["detail"], str)


def test_failed_duplicate_signup_leaves_the_first_account_working(client: TestClient) -> None:
    name = fresh_name()
    assert signup(client, username=name).status_code == 201
    assert signup(client, username=name, password="another password").status_code == 400
    assert try_login(client, name, PASSWORD).status_code == 200
    assert try_login(client, name, "another password").status_code == 401


@pytest.mark.parametrize(
    "fields",
    [
        {"email": "not-an-email"},
        {"email": "two@@example.com"},
        {"email": ""},
        {"password": "short"},
        {"password": "1234567"},
        {"password": "x" * 257},
        {"username": "ab"},
        {"username": "x" * 33},
        {"username": "bad name"},
        {"username": "bad/name"},
        {"username": "bad@name"},
        {"username": ""},
        {"username": 12345},
        {"password": None},
    ],
    ids=lambda fields: f"{next(iter(fields))}={next(iter(fields.values()))!r}"[:40],
)
def test_invalid_field_is_422_validation_error(client: TestClient, fields: dict[str, Any]) -> None:
    problems = assert_validation_error(signup(client, **fields))
    assert any(next(iter(fields)) in problem["loc"] for problem in problems), problems


@pytest.mark.parametrize("missing", ["username", "email", "password"])
def test_missing_field_is_422_validation_error(client: TestClient, missing: str) -> None:
    name = fresh_name()
    body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    del body[missing]
    assert_validation_error(client.post("/signup", json=body))


@pytest.mark.parametrize(
    "extra",
    [{"role": "admin"}, {"is_active": False}, {"id": "6d0c6e0e-0000-4000-8000-00000000beef"}],
)
def test_unknown_extra_field_is_422_and_creates_nothing(
    client: TestClient, extra: dict[str, Any]
) -> None:
    name = fresh_name()
    assert_validation_error(signup(client, username=name, **extra))
    assert_error(try_login(client, name, PASSWORD), 401, "invalid_credentials")


def test_body_that_is_not_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/signup", content=b"username=x", headers={"Content-Type": "application/json"}
    )
    assert_validation_error(response)


def test_validation_error_does_not_echo_the_password(client: TestClient) -> None:
    secret = "sevench"  # too short: rejected, and must not be reflected back
    response = signup(client, password=secret)
    assert_validation_error(response)
    assert secret not in response.text


@pytest.mark.parametrize("username", ["nul\x00name", "tab\tname", "new\nline"], ids=repr)
def test_username_with_control_characters_is_422(client: TestClient, username: str) -> None:
    assert_validation_error(signup(client, username=username))
