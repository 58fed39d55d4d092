"""Password hashing (argon2 via pwdlib), JWTs (PyJWT, HS256) and API-key material."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from iap.auth.errors import InvalidToken

_hasher = PasswordHash((Argon2Hasher(),))
# Verified against when the user does not exist, so both failures cost the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

ALGORITHM = "HS256"
TokenType = Literal["access", "refresh", "session"]
API_KEY_PREFIX = "iap_"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Constant-cost check: a missing user still pays for one argon2 verification."""
    if password_hash is None:
        _hasher.verify(password, _DUMMY_HASH)
        return False
    return _hasher.verify(password, password_hash)


@dataclass(frozen=True)
class TokenClaims:
    user_id: uuid.UUID
    token_id: uuid.UUID
    family_id: uuid.UUID | None
    expires_at: datetime


def encode_token(
    *,
    key: str,
    issuer: str,
    token_type: TokenType,
    user_id: uuid.UUID,
    ttl: timedelta,
    family_id: uuid.UUID | None = None,
    token_id: uuid.UUID | None = None,
) -> tuple[str, TokenClaims]:
    now = datetime.now(UTC)
    claims = TokenClaims(
        user_id=user_id,
        token_id=token_id or uuid.uuid4(),
        family_id=family_id,
        expires_at=now + ttl,
    )
    payload: dict[str, object] = {
        "sub": str(user_id),
        "typ": token_type,
        "jti": str(claims.token_id),
        "iss": issuer,
        "iat": now,
        "exp": claims.expires_at,
    }
    if family_id is not None:
        payload["fam"] = str(family_id)
    return jwt.encode(payload, key, algorithm=ALGORITHM), claims


def decode_token(token: str, *, key: str, issuer: str, token_type: TokenType) -> TokenClaims:
    """Verify signature, algorithm, expiry, issuer and type; anything off is ``InvalidToken``."""
    try:
        payload = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=issuer,
            options={"require": ["sub", "exp", "iat", "jti", "typ", "iss"]},
        )
        if payload["typ"] != token_type:
            raise InvalidToken(f"Expected a token of type {token_type!r}.")
        family = payload.get("fam")
        return TokenClaims(
            user_id=uuid.UUID(payload["sub"]),
            token_id=uuid.UUID(payload["jti"]),
            family_id=uuid.UUID(family) if family else None,
            expires_at=datetime.fromtimestamp(payload["exp"], UTC),
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("The token has expired; refresh it or log in again.") from None
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        raise InvalidToken() from None


def new_api_key() -> tuple[str, str, str]:
    """Return ``(full_key, lookup_prefix, sha256_hex)``; only the last two are stored."""
    prefix = secrets.token_hex(6)
    full = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    return full, prefix, hash_api_key(full)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def split_api_key(key: str) -> str | None:
    """The lookup prefix of a well-formed key, or None."""
    if not key.startswith(API_KEY_PREFIX):
        return None
    prefix, sep, secret = key.removeprefix(API_KEY_PREFIX).partition("_")
    if not sep or len(prefix) != 12 or not secret:
        return None
    return prefix
