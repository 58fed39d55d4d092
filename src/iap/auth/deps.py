"""Who is calling: ``CurrentUser`` (bearer JWT, API key or the web UI's session cookie) and
``AdminUser``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer

from iap.auth import service
from iap.auth.cookies import CSRF_HEADER, SAFE_METHODS, SESSION_COOKIE, CsrfFailed, check_csrf
from iap.auth.errors import AccountDisabled, AdminRequired, InvalidToken, NotAuthenticated
from iap.auth.models import Role, User
from iap.auth.security import API_KEY_PREFIX
from iap.deps import AppServices, DbSession
from iap.errors import AppError

# auto_error=False: missing credentials get our error body, not FastAPI's.
_bearer = OAuth2PasswordBearer(tokenUrl="/login", auto_error=False)
_api_key = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key from /me/api-keys."
)


async def current_user(
    request: Request,
    session: DbSession,
    services: AppServices,
    token: Annotated[str | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> User:
    """Accept ``Authorization: Bearer <access JWT or API key>``, ``X-API-Key: <key>`` or, from
    the web UI, the session cookie (with a CSRF token on anything that changes state)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if api_key:
        user = await service.user_from_api_key(session, api_key)
    elif token and token.startswith(API_KEY_PREFIX):
        user = await service.user_from_api_key(session, token)
    elif token:
        user = await service.user_from_access_token(session, services.settings, token)
    elif cookie:
        user, claims = await service.user_from_session_token(session, services.settings, cookie)
        if request.method not in SAFE_METHODS:
            check_csrf(
                request, services.settings, str(claims.token_id), request.headers.get(CSRF_HEADER)
            )
    else:
        raise NotAuthenticated()
    request.state.user_id = user.id
    return user


async def admin_user(user: Annotated[User, Depends(current_user)]) -> User:
    if user.role != Role.ADMIN:
        raise AdminRequired()
    return user


CurrentUser = Annotated[User, Depends(current_user)]
AdminUser = Annotated[User, Depends(admin_user)]

# What a route taking ``CurrentUser`` (or ``AdminUser``) may answer before its own work, for
# its documented responses: ``error_responses(*SIGNED_IN, ...)``. Routes that change state
# may also refuse a cookie-authenticated request without its CSRF token (``*_CHANGES``).
SIGNED_IN: tuple[type[AppError], ...] = (NotAuthenticated, InvalidToken, AccountDisabled)
SIGNED_IN_CHANGES: tuple[type[AppError], ...] = (*SIGNED_IN, CsrfFailed)
ADMIN: tuple[type[AppError], ...] = (*SIGNED_IN, AdminRequired)
ADMIN_CHANGES: tuple[type[AppError], ...] = (*ADMIN, CsrfFailed)
