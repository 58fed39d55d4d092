"""Shared checks and token forgery for the auth and admin tests."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from fastapi.testclient import TestClient

from iap.config import Settings


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The response is ``status`` with the one error body ``{"detail", "code"}`` and ``code``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail", "code"}, body
    assert body["code"] == code, body
    assert isinstance(body["detail"], str | list), body
    assert body["detail"], body
    return dict(body)


def assert_validation_error(response: Any) -> list[Any]:
    """A 422 whose ``detail`` is FastAPI's list of problems, tagged ``validation_error``."""
    body = assert_error(response, 422, "validation_error")
    assert isinstance(body["detail"], list)
    return list(body["detail"])


def assert_unauthenticated(response: Any, code: str = "invalid_token") -> dict[str, Any]:
    """A 401 that also tells the client how to authenticate."""
    body = assert_error(response, 401, code)
    assert response.headers.get("www-authenticate") == "Bearer"
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims_for(
    settings: Settings, user_id: str, kind: str = "access", **overrides: Any
) -> dict[str, Any]:
    """The claims iap puts in its tokens; ``overrides`` set (or, with None, drop) any of them."""
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": user_id,
        "typ": kind,
        "jti": str(uuid.uuid4()),
        "iss": settings.jwt_issuer,
        "iat": now,
        "exp": now + timedelta(minutes=5),
    }
    if kind in ("access", "refresh"):
        # The login (token family) the token belongs to; a random one names no real login.
        claims["fam"] = str(uuid.uuid4())
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def forge(
    settings: Settings,
    user_id: str,
    kind: str = "access",
    *,
    key: str | None = None,
    algorithm: str = "HS256",
    **overrides: Any,
) -> str:
    """A JWT built outside iap: with the real key (by default), any other, or (``alg: none``)
    none at all."""
    claims = claims_for(settings, user_id, kind, **overrides)
    signing_key = None if algorithm == "none" else (key or settings.signing_key)
    return jwt.encode(claims, signing_key, algorithm=algorithm)


def b64url(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned_token(settings: Settings, user_id: str) -> str:
    """An ``alg: none`` token written by hand: header, payload and an empty signature."""
    now = int(datetime.now(UTC).timestamp())
    payload = claims_for(settings, user_id, iat=now, exp=now + 300)
    return f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(payload)}."


def payload_of(token: str) -> dict[str, Any]:
    """The claims of a token, read without verifying it (for inspecting what iap issued)."""
    return dict(jwt.decode(token, options={"verify_signature": False}))


def me(client: TestClient, headers: dict[str, str]) -> Any:
    return client.get("/me", headers=headers)


def refresh(client: TestClient, token: str) -> Any:
    return client.post("/token/refresh", json={"refresh_token": token})


def try_login(client: TestClient, username: str, password: str) -> Any:
    return client.post("/login", data={"username": username, "password": password})
