"""Login and sign-up are rate limited (in memory when embedded, in Redis when scaled): past the
limit the answer is 429 ``rate_limited`` with a ``Retry-After``.

Each test builds its own app with a tight limit over an hour, so that no earlier request of the
test leaves the window while the test runs, however slow the machine.
"""

from __future__ import annotations

import secrets

import pytest
from fastapi.testclient import TestClient

from tests.auth.helpers import assert_error, assert_unauthenticated, try_login
from tests.conftest import ClientFactory
from tests.factories import PASSWORD, make_account

WINDOW = 3600


@pytest.fixture
def limited(client_with: ClientFactory) -> TestClient:
    """An app that allows 3 login attempts per user and address, and 3 sign-ups per address."""
    return client_with(login_rate_limit=f"3/{WINDOW}", signup_rate_limit=f"3/{WINDOW}")


def assert_rate_limited(response: object) -> None:
    body = assert_error(response, 429, "rate_limited")
    retry_after = response.headers["retry-after"]  # type: ignore[attr-defined]
    assert retry_after.isdigit(), retry_after
    assert 1 <= int(retry_after) <= WINDOW
    assert retry_after in body["detail"]


def test_fourth_login_attempt_is_429_with_retry_after(limited: TestClient) -> None:
    account = make_account(limited)  # one login attempt
    for _ in range(2):
        assert try_login(limited, account.username, PASSWORD).status_code == 200
    assert_rate_limited(try_login(limited, account.username, PASSWORD))


def test_failed_login_attempts_count_towards_the_limit(limited: TestClient) -> None:
    account = make_account(limited)
    for _ in range(2):
        assert_unauthenticated(
            try_login(limited, account.username, "wrong!"), "invalid_credentials"
        )
    # Even the right password is refused now: the limit holds off password guessing.
    assert_rate_limited(try_login(limited, account.username, PASSWORD))


def test_unknown_usernames_are_limited_too(limited: TestClient) -> None:
    name = f"nobody_{secrets.token_hex(4)}"
    for _ in range(3):
        assert_unauthenticated(try_login(limited, name, "guess"), "invalid_credentials")
    assert_rate_limited(try_login(limited, name, "guess"))


def test_login_limit_is_per_username(limited: TestClient) -> None:
    alice, bob = make_account(limited), make_account(limited)
    for _ in range(3):
        try_login(limited, alice.username, "wrong!")
    assert_rate_limited(try_login(limited, alice.username, PASSWORD))
    assert try_login(limited, bob.username, PASSWORD).status_code == 200


def test_login_limit_ignores_the_case_of_the_username(limited: TestClient) -> None:
    account = make_account(limited)
    for _ in range(2):
        try_login(limited, account.username.upper(), "wrong!")
    assert_rate_limited(try_login(limited, account.username, PASSWORD))


def test_rate_limited_login_issues_no_tokens(limited: TestClient) -> None:
    account = make_account(limited)
    for _ in range(2):
        try_login(limited, account.username, PASSWORD)
    response = try_login(limited, account.username, PASSWORD)
    assert response.status_code == 429
    assert "access_token" not in response.text


def test_fourth_signup_from_one_address_is_429(limited: TestClient) -> None:
    for _ in range(3):
        make_account(limited)
    name = f"user_{secrets.token_hex(5)}"
    response = limited.post(
        "/signup", json={"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    )
    assert_rate_limited(response)
    assert_unauthenticated(try_login(limited, name, PASSWORD), "invalid_credentials")


def test_malformed_signups_do_not_count_towards_the_limit(limited: TestClient) -> None:
    for _ in range(4):
        response = limited.post("/signup", json={"username": "x", "email": "not an address"})
        assert_error(response, 422, "validation_error")
    for _ in range(3):
        make_account(limited)
    name = f"late_{secrets.token_hex(4)}"
    assert_rate_limited(
        limited.post(
            "/signup",
            json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
        )
    )
