"""Refresh tokens rotate: each works once, a replayed one ends its whole login, and logging out
ends the login it belongs to (and only one of the caller's own)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from iap.config import Settings
from tests.auth.helpers import (
    assert_unauthenticated,
    assert_validation_error,
    b64url,
    bearer,
    forge,
    me,
    payload_of,
    refresh,
)
from tests.factories import Account, login


def logout(client: TestClient, account: Account, token: str) -> Any:
    return client.post("/logout", headers=account.headers, json={"refresh_token": token})


# --- rotation -----------------------------------------------------------------------------


def test_refresh_returns_a_new_working_pair(
    client: TestClient, alice: Account, settings: Settings
) -> None:
    response = refresh(client, alice.refresh_token)
    assert response.status_code == 200, response.text
    pair = response.json()
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert pair["token_type"] == "bearer"
    assert pair["expires_in"] == settings.access_token_ttl_seconds
    assert pair["refresh_token"] != alice.refresh_token
    assert pair["access_token"] != alice.access_token
    assert me(client, bearer(pair["access_token"])).json()["id"] == alice.id


def test_rotated_token_stays_in_the_same_login_family(client: TestClient, alice: Account) -> None:
    new = refresh(client, alice.refresh_token).json()["refresh_token"]
    assert payload_of(new)["fam"] == payload_of(alice.refresh_token)["fam"]
    assert payload_of(new)["jti"] != payload_of(alice.refresh_token)["jti"]


def test_a_chain_of_refreshes_keeps_working(client: TestClient, alice: Account) -> None:
    token = alice.refresh_token
    for _ in range(3):
        response = refresh(client, token)
        assert response.status_code == 200, response.text
        token = response.json()["refresh_token"]


def test_replayed_refresh_token_is_401(client: TestClient, alice: Account) -> None:
    assert refresh(client, alice.refresh_token).status_code == 200
    body = assert_unauthenticated(refresh(client, alice.refresh_token))
    assert "already used" in body["detail"]


def test_replayed_refresh_token_revokes_the_whole_login(client: TestClient, alice: Account) -> None:
    newest = refresh(client, alice.refresh_token).json()["refresh_token"]
    assert_unauthenticated(refresh(client, alice.refresh_token))  # the thief, or the victim
    assert_unauthenticated(refresh(client, newest))


def test_replay_deep_in_the_chain_revokes_the_latest_token(
    client: TestClient, alice: Account
) -> None:
    first = refresh(client, alice.refresh_token).json()["refresh_token"]
    latest = refresh(client, first).json()["refresh_token"]
    assert_unauthenticated(refresh(client, first))
    assert_unauthenticated(refresh(client, latest))


def test_replay_does_not_end_the_users_other_logins(client: TestClient, alice: Account) -> None:
    other_login = login(client, alice.username, alice.password)
    assert refresh(client, alice.refresh_token).status_code == 200
    assert_unauthenticated(refresh(client, alice.refresh_token))
    assert refresh(client, other_login["refresh_token"]).status_code == 200


def test_replay_does_not_touch_another_users_login(
    client: TestClient, alice: Account, bob: Account
) -> None:
    assert refresh(client, alice.refresh_token).status_code == 200
    assert_unauthenticated(refresh(client, alice.refresh_token))
    assert refresh(client, bob.refresh_token).status_code == 200


def test_concurrent_use_of_one_refresh_token_succeeds_at_most_once(
    client: TestClient, alice: Account
) -> None:
    statuses: list[int] = []
    barrier = threading.Barrier(2)

    def use() -> None:
        barrier.wait()
        statuses.append(refresh(client, alice.refresh_token).status_code)

    threads = [threading.Thread(target=use) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [200, 401]


def test_access_token_used_as_a_refresh_token_is_401(client: TestClient, alice: Account) -> None:
    assert_unauthenticated(refresh(client, alice.access_token))
    assert refresh(client, alice.refresh_token).status_code == 200  # the real one is untouched


def test_expired_refresh_token_is_401(
    client: TestClient, alice: Account, settings: Settings
) -> None:
    now = datetime.now(UTC)
    token = forge(
        settings, alice.id, "refresh", iat=now - timedelta(days=15), exp=now - timedelta(days=1)
    )
    body = assert_unauthenticated(refresh(client, token))
    assert "expired" in body["detail"]


def test_refresh_token_signed_with_another_key_is_401(
    client: TestClient, alice: Account, settings: Settings
) -> None:
    claims = payload_of(alice.refresh_token)
    token = forge(
        settings,
        alice.id,
        "refresh",
        key="an-entirely-different-signing-key-of-enough-length",
        jti=claims["jti"],
        fam=claims["fam"],
    )
    assert_unauthenticated(refresh(client, token))


def test_alg_none_refresh_token_is_401(
    client: TestClient, alice: Account, settings: Settings
) -> None:
    claims = payload_of(alice.refresh_token)
    token = forge(
        settings, alice.id, "refresh", algorithm="none", jti=claims["jti"], fam=claims["fam"]
    )
    assert_unauthenticated(refresh(client, token))


def test_validly_signed_refresh_token_that_was_never_issued_is_401(
    client: TestClient, alice: Account, settings: Settings
) -> None:
    # Refresh tokens are checked against the issued ones, not just their signature.
    assert_unauthenticated(refresh(client, forge(settings, alice.id, "refresh")))


def test_garbage_refresh_token_is_401(client: TestClient) -> None:
    assert_unauthenticated(refresh(client, "not-a-token"))


def test_refresh_body_must_hold_exactly_a_refresh_token(client: TestClient, alice: Account) -> None:
    assert_validation_error(client.post("/token/refresh", json={}))
    assert_validation_error(client.post("/token/refresh", json={"refresh_token": ""}))
    assert_validation_error(client.post("/token/refresh", json={"refresh_token": "x" * 4097}))
    assert_validation_error(
        client.post("/token/refresh", json={"refresh_token": alice.refresh_token, "extra": 1})
    )
    # None of the rejected bodies used up the token.
    assert refresh(client, alice.refresh_token).status_code == 200


# --- logout -------------------------------------------------------------------------------


def test_logout_is_204_and_the_refresh_token_stops_working(
    client: TestClient, alice: Account
) -> None:
    response = logout(client, alice, alice.refresh_token)
    assert response.status_code == 204
    assert response.content == b""
    assert_unauthenticated(refresh(client, alice.refresh_token))


def test_logout_with_an_already_rotated_token_ends_that_login(
    client: TestClient, alice: Account
) -> None:
    newest = refresh(client, alice.refresh_token).json()["refresh_token"]
    assert logout(client, alice, alice.refresh_token).status_code == 204
    assert_unauthenticated(refresh(client, newest))


def test_logout_ends_only_the_login_it_names(client: TestClient, alice: Account) -> None:
    other_login = login(client, alice.username, alice.password)
    assert logout(client, alice, alice.refresh_token).status_code == 204
    assert refresh(client, other_login["refresh_token"]).status_code == 200


def test_logout_twice_is_harmless(client: TestClient, alice: Account) -> None:
    other_login = login(client, alice.username, alice.password)
    assert logout(client, alice, alice.refresh_token).status_code == 204
    # The access token ended with its login, so it cannot log out again...
    assert_unauthenticated(logout(client, alice, alice.refresh_token))
    # ...and from another login, ending an ended login again is a no-op.
    response = client.post(
        "/logout",
        headers=bearer(other_login["access_token"]),
        json={"refresh_token": alice.refresh_token},
    )
    assert response.status_code == 204
    assert_unauthenticated(refresh(client, alice.refresh_token))
    assert refresh(client, other_login["refresh_token"]).status_code == 200


def test_logout_with_another_users_refresh_token_is_401_and_revokes_nothing(
    client: TestClient, alice: Account, bob: Account
) -> None:
    assert_unauthenticated(logout(client, alice, bob.refresh_token))
    assert refresh(client, bob.refresh_token).status_code == 200


def test_logout_needs_authentication(client: TestClient, alice: Account) -> None:
    response = client.post("/logout", json={"refresh_token": alice.refresh_token})
    assert_unauthenticated(response, "not_authenticated")
    assert refresh(client, alice.refresh_token).status_code == 200


def test_logout_with_an_access_token_in_the_body_is_401(client: TestClient, alice: Account) -> None:
    assert_unauthenticated(logout(client, alice, alice.access_token))
    assert refresh(client, alice.refresh_token).status_code == 200


def test_logout_with_a_garbage_token_is_401(client: TestClient, alice: Account) -> None:
    assert_unauthenticated(logout(client, alice, "garbage"))


def test_logout_with_a_forged_token_for_the_same_user_is_401(
    client: TestClient, alice: Account
) -> None:
    claims = payload_of(alice.refresh_token)
    header, _, signature = alice.refresh_token.split(".")
    tampered = f"{header}.{b64url(claims | {'fam': 'x'})}.{signature}"
    assert_unauthenticated(logout(client, alice, tampered))
    assert refresh(client, alice.refresh_token).status_code == 200


def test_logout_body_is_validated(client: TestClient, alice: Account) -> None:
    response = client.post("/logout", headers=alice.headers, json={})
    assert_validation_error(response)


# --- access tokens end with their login ------------------------------------------------------


def test_logout_ends_the_logins_access_tokens_at_once(client: TestClient, alice: Account) -> None:
    assert me(client, alice.headers).status_code == 200
    assert logout(client, alice, alice.refresh_token).status_code == 204
    body = assert_unauthenticated(me(client, alice.headers))
    assert "log in again" in body["detail"]


def test_logout_leaves_the_users_other_logins_access_tokens_working(
    client: TestClient, alice: Account
) -> None:
    other_login = login(client, alice.username, alice.password)
    assert logout(client, alice, alice.refresh_token).status_code == 204
    assert me(client, bearer(other_login["access_token"])).status_code == 200


def test_access_tokens_of_a_login_outlive_its_rotations_until_logout(
    client: TestClient, alice: Account
) -> None:
    rotated = refresh(client, alice.refresh_token).json()
    # The rotation keeps the login: the older access token has not expired and still works.
    assert me(client, alice.headers).status_code == 200
    assert me(client, bearer(rotated["access_token"])).status_code == 200
    assert logout(client, alice, rotated["refresh_token"]).status_code == 204
    assert_unauthenticated(me(client, alice.headers))
    assert_unauthenticated(me(client, bearer(rotated["access_token"])))


def test_a_replayed_refresh_token_ends_the_logins_access_tokens_too(
    client: TestClient, alice: Account
) -> None:
    rotated = refresh(client, alice.refresh_token).json()
    assert_unauthenticated(refresh(client, alice.refresh_token))  # the replay: login revoked
    assert_unauthenticated(me(client, bearer(rotated["access_token"])))
    assert_unauthenticated(me(client, alice.headers))


def test_an_access_token_naming_no_login_is_401(
    client: TestClient, alice: Account, settings: Settings
) -> None:
    assert_unauthenticated(me(client, bearer(forge(settings, alice.id, fam=None))))
    assert_unauthenticated(me(client, bearer(forge(settings, alice.id, fam=str(uuid.uuid4())))))


def test_an_access_token_naming_another_users_login_is_401(
    client: TestClient, alice: Account, bob: Account, settings: Settings
) -> None:
    bobs_login = payload_of(bob.refresh_token)["fam"]
    assert_unauthenticated(me(client, bearer(forge(settings, alice.id, fam=bobs_login))))
