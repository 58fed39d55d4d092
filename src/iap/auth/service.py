"""Accounts and credentials: sign-up, login, token rotation and revocation, API keys."""

from __future__ import annotations

import hmac
import uuid
from datetime import timedelta

from anyio import to_thread
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from iap.auth import security
from iap.auth.errors import (
    AccountDisabled,
    ApiKeyNotFound,
    EmailTaken,
    InvalidCredentials,
    InvalidToken,
    UsernameTaken,
    UserNotFound,
    WrongPassword,
)
from iap.auth.models import ApiKey, RefreshToken, Role, User
from iap.auth.schemas import TokenPair
from iap.config import Settings
from iap.db import utcnow
from iap.text import has_control

# Writing last_used_at on every request would turn every read into a write.
_API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)


async def create_user(
    session: AsyncSession, *, username: str, email: str, password: str, role: Role = Role.USER
) -> User:
    email = email.lower()
    if await session.scalar(select(User.id).where(User.username == username)):
        raise UsernameTaken()
    if await session.scalar(select(User.id).where(User.email == email)):
        raise EmailTaken()
    password_hash = await to_thread.run_sync(security.hash_password, password)
    user = User(username=username, email=email, password_hash=password_hash, role=role)
    session.add(user)
    try:
        await session.commit()
    except IntegrityError:
        # A concurrent sign-up won the race for the same name or address.
        await session.rollback()
        if await session.scalar(select(User.id).where(User.username == username)):
            raise UsernameTaken() from None
        raise EmailTaken() from None
    return user


async def authenticate(session: AsyncSession, username: str, password: str) -> User:
    """The user whose credentials these are. Unknown user and wrong password fail alike."""
    # A name no account can have (sign-up forbids control characters) is looked up as nobody.
    usable = not has_control(username) and len(username) <= 32
    user = await session.scalar(select(User).where(User.username == username)) if usable else None
    ok = await to_thread.run_sync(
        security.verify_password, password, user.password_hash if user else None
    )
    if user is None or not ok:
        raise InvalidCredentials()
    if not user.is_active:
        raise AccountDisabled()
    return user


async def issue_tokens(
    session: AsyncSession, settings: Settings, user: User, family_id: uuid.UUID | None = None
) -> TokenPair:
    family_id = family_id or uuid.uuid4()
    # The access token names its login (the refresh tokens' family), so ending the login ends it.
    access, _ = security.encode_token(
        key=settings.signing_key,
        issuer=settings.jwt_issuer,
        token_type="access",
        user_id=user.id,
        ttl=timedelta(seconds=settings.access_token_ttl_seconds),
        family_id=family_id,
    )
    refresh, claims = security.encode_token(
        key=settings.signing_key,
        issuer=settings.jwt_issuer,
        token_type="refresh",
        user_id=user.id,
        ttl=timedelta(seconds=settings.refresh_token_ttl_seconds),
        family_id=family_id,
    )
    session.add(
        RefreshToken(
            id=claims.token_id, user_id=user.id, family_id=family_id, expires_at=claims.expires_at
        )
    )
    await session.commit()
    return TokenPair(
        access_token=access, refresh_token=refresh, expires_in=settings.access_token_ttl_seconds
    )


def _decode_refresh(settings: Settings, token: str) -> security.TokenClaims:
    return security.decode_token(
        token, key=settings.signing_key, issuer=settings.jwt_issuer, token_type="refresh"
    )


async def rotate_refresh_token(session: AsyncSession, settings: Settings, token: str) -> TokenPair:
    """Trade a refresh token for a new pair. Each refresh token works once: presenting a used
    one means it leaked, so the whole login (token family) is revoked."""
    claims = _decode_refresh(settings, token)
    now = utcnow()
    claimed = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == claims.token_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        row = await session.get(RefreshToken, claims.token_id)
        if row is not None:
            await _revoke_family(session, row.family_id)
        await session.commit()
        raise InvalidToken("This refresh token was already used or revoked; log in again.")
    user = await session.get(User, claims.user_id)
    if user is None:
        raise InvalidToken()
    if not user.is_active:
        await session.commit()
        raise AccountDisabled()
    return await issue_tokens(session, settings, user, family_id=claims.family_id)


async def revoke_refresh_token(
    session: AsyncSession, settings: Settings, user: User, token: str
) -> None:
    """Log out: revoke the refresh token's whole login. Another user's token is not touched."""
    claims = _decode_refresh(settings, token)
    if claims.user_id != user.id or claims.family_id is None:
        raise InvalidToken()
    await _revoke_family(session, claims.family_id)
    await session.commit()


async def _revoke_family(session: AsyncSession, family_id: uuid.UUID) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def revoke_all_refresh_tokens(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def start_session(
    session: AsyncSession, settings: Settings, user: User
) -> tuple[str, security.TokenClaims]:
    """A web UI sign-in: a ``session`` token for an HttpOnly cookie. Like a refresh token it has a
    row, so signing out, a new password or a disabled account ends it at once."""
    token, claims = security.encode_token(
        key=settings.signing_key,
        issuer=settings.jwt_issuer,
        token_type="session",
        user_id=user.id,
        ttl=timedelta(seconds=settings.session_ttl_seconds),
        family_id=uuid.uuid4(),
    )
    session.add(
        RefreshToken(
            id=claims.token_id,
            user_id=user.id,
            family_id=claims.family_id,
            expires_at=claims.expires_at,
        )
    )
    await session.commit()
    return token, claims


def decode_session_token(settings: Settings, token: str) -> security.TokenClaims:
    return security.decode_token(
        token, key=settings.signing_key, issuer=settings.jwt_issuer, token_type="session"
    )


async def user_from_session_token(
    session: AsyncSession, settings: Settings, token: str
) -> tuple[User, security.TokenClaims]:
    claims = decode_session_token(settings, token)
    revoked = await session.scalar(
        select(RefreshToken.revoked_at.is_not(None)).where(RefreshToken.id == claims.token_id)
    )
    if revoked is None or revoked:
        raise InvalidToken("This sign-in has ended; sign in again.")
    return _usable(await session.get(User, claims.user_id)), claims


async def end_session(session: AsyncSession, claims: security.TokenClaims) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == claims.token_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    await session.commit()


async def user_from_access_token(session: AsyncSession, settings: Settings, token: str) -> User:
    """The token's user, while the login it was issued for lasts: a logout, a new password, a
    disabled account or a replayed refresh token end its access tokens at once, not at expiry.

    The login check rides on the user lookup every request makes (one query, by the indexed
    family id), so it holds on every replica at once and needs no cache to invalidate."""
    claims = security.decode_token(
        token, key=settings.signing_key, issuer=settings.jwt_issuer, token_type="access"
    )
    if claims.family_id is None:
        raise InvalidToken(
            "This access token names no login (issued by an older version); log in again."
        )
    login_lasts = (
        select(RefreshToken.id)
        .where(
            RefreshToken.family_id == claims.family_id,
            RefreshToken.user_id == claims.user_id,
            RefreshToken.revoked_at.is_(None),
        )
        .exists()
    )
    row = (
        await session.execute(select(User, login_lasts).where(User.id == claims.user_id))
    ).one_or_none()
    if row is None:
        raise InvalidToken()
    user, lasts = row
    _usable(user)  # a disabled account says so (403), though disabling also ended its logins
    if not lasts:
        raise InvalidToken(_LOGIN_ENDED)
    return user


_LOGIN_ENDED = "This login has ended (logged out, new password or stolen token); log in again."


async def user_from_api_key(session: AsyncSession, key: str) -> User:
    prefix = security.split_api_key(key)
    if prefix is None:
        raise InvalidToken("The API key is malformed.")
    api_key = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if api_key is None or not hmac.compare_digest(api_key.key_hash, security.hash_api_key(key)):
        raise InvalidToken("The API key is not valid; it may have been deleted.")
    user = _usable(await session.get(User, api_key.user_id))
    now = utcnow()
    if api_key.last_used_at is None or now - api_key.last_used_at > _API_KEY_TOUCH_INTERVAL:
        api_key.last_used_at = now
        await session.commit()
    return user


def _usable(user: User | None) -> User:
    if user is None:
        raise InvalidToken()
    if not user.is_active:
        raise AccountDisabled()
    return user


async def update_user(
    session: AsyncSession,
    user: User,
    *,
    email: str | None,
    password: str | None,
    current_password: str | None,
) -> User:
    if email is not None and email.lower() != user.email:
        email = email.lower()
        if await session.scalar(select(User.id).where(User.email == email)):
            raise EmailTaken()
        user.email = email
    if password is not None:
        ok = current_password is not None and await to_thread.run_sync(
            security.verify_password, current_password, user.password_hash
        )
        if not ok:
            raise WrongPassword()
        user.password_hash = await to_thread.run_sync(security.hash_password, password)
        # A new password ends every existing login.
        await revoke_all_refresh_tokens(session, user.id)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise EmailTaken() from None
    return user


async def set_user_active(session: AsyncSession, user_id: uuid.UUID, active: bool) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise UserNotFound()
    user.is_active = active
    if not active:
        await revoke_all_refresh_tokens(session, user.id)
    await session.commit()
    return user


async def list_users(
    session: AsyncSession,
    *,
    page: int,
    limit: int,
    search: str | None = None,
    newest_first: bool = False,
) -> tuple[int, list[User]]:
    """A page of accounts, oldest first unless ``newest_first``; ``search`` keeps those whose
    username or email contains it (case-insensitive)."""
    query = select(User)
    if search:
        needle = search.lower()
        query = query.where(
            func.lower(User.username).contains(needle, autoescape=True)
            | User.email.contains(needle, autoescape=True)  # stored lower-case
        )
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    order = (User.created_at.desc(), User.id.desc()) if newest_first else (User.created_at, User.id)
    rows = await session.scalars(query.order_by(*order).offset((page - 1) * limit).limit(limit))
    return total, list(rows)


async def create_api_key(session: AsyncSession, user: User, name: str) -> tuple[ApiKey, str]:
    full, prefix, digest = security.new_api_key()
    api_key = ApiKey(user_id=user.id, name=name, prefix=prefix, key_hash=digest)
    session.add(api_key)
    await session.commit()
    return api_key, full


async def list_api_keys(session: AsyncSession, user: User) -> list[ApiKey]:
    rows = await session.scalars(
        select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.created_at, ApiKey.id)
    )
    return list(rows)


async def delete_api_key(session: AsyncSession, user: User, key_id: uuid.UUID) -> None:
    api_key = await session.get(ApiKey, key_id)
    if api_key is None or api_key.user_id != user.id:
        raise ApiKeyNotFound()
    await session.delete(api_key)
    await session.commit()
