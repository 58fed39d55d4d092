"""Sign-up, login, tokens, the caller's own account and API keys."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from iap.auth import service
from iap.auth.deps import SIGNED_IN, SIGNED_IN_CHANGES, CurrentUser
from iap.auth.errors import (
    AccountDisabled,
    ApiKeyNotFound,
    EmailTaken,
    InvalidCredentials,
    InvalidToken,
    UsernameTaken,
    WrongPassword,
)
from iap.auth.limits import SignupThrottle, limit_logins, signup_key
from iap.auth.schemas import (
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeyOut,
    RefreshIn,
    SignupIn,
    TokenPair,
    UserOut,
    UserUpdate,
)
from iap.deps import AppServices, DbSession
from iap.errors import RateLimited, error_responses
from iap.images.service import purge_user_images

router = APIRouter(tags=["users"])


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses=error_responses(UsernameTaken, EmailTaken, RateLimited),
)
async def signup(
    body: SignupIn, request: Request, session: DbSession, limit: SignupThrottle
) -> UserOut:
    """Create an account. The password is stored only as an argon2 hash."""
    # Counted once the body is valid, as the web UI's form counts: a malformed request is
    # not a sign-up.
    await limit.check(signup_key(request))
    user = await service.create_user(
        session, username=body.username, email=str(body.email), password=body.password
    )
    return UserOut.model_validate(user)


@router.post(
    "/login",
    response_model=TokenPair,
    responses=error_responses(InvalidCredentials, AccountDisabled, RateLimited),
    dependencies=[Depends(limit_logins)],
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: DbSession,
    services: AppServices,
) -> TokenPair:
    """Trade a username and password (OAuth2 password form) for an access and a refresh token.

    The access token is short-lived (``expires_in`` seconds); use ``/token/refresh`` for a new one.
    """
    user = await service.authenticate(session, form.username, form.password)
    return await service.issue_tokens(session, services.settings, user)


@router.post(
    "/token/refresh",
    response_model=TokenPair,
    responses=error_responses(InvalidToken, AccountDisabled),
)
async def refresh(body: RefreshIn, session: DbSession, services: AppServices) -> TokenPair:
    """Trade a refresh token for a new pair. Each refresh token works once (rotation); replaying
    a used one revokes that whole login."""
    return await service.rotate_refresh_token(session, services.settings, body.refresh_token)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(*SIGNED_IN_CHANGES),
)
async def logout(
    body: RefreshIn, user: CurrentUser, session: DbSession, services: AppServices
) -> Response:
    """End the refresh token's login: it, every token rotated from it and the login's access
    tokens stop working at once."""
    await service.revoke_refresh_token(session, services.settings, user, body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", response_model=UserOut, responses=error_responses(*SIGNED_IN))
async def me(user: CurrentUser) -> UserOut:
    """The calling user's account."""
    return UserOut.model_validate(user)


@router.patch(
    "/me",
    response_model=UserOut,
    responses=error_responses(*SIGNED_IN_CHANGES, EmailTaken, WrongPassword),
)
async def update_me(body: UserUpdate, user: CurrentUser, session: DbSession) -> UserOut:
    """Change your email or password. A new password needs ``current_password`` and ends every
    login, this one included: their refresh and access tokens stop working at once, so log in
    again with the new password."""
    updated = await service.update_user(
        session,
        user,
        email=str(body.email) if body.email else None,
        password=body.password,
        current_password=body.current_password,
    )
    return UserOut.model_validate(updated)


@router.delete(
    "/me", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(*SIGNED_IN_CHANGES)
)
async def delete_me(user: CurrentUser, session: DbSession, services: AppServices) -> Response:
    """Delete your account with every image, stored file and result. This cannot be undone."""
    await purge_user_images(session, services.storage, services.cache, user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/me/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=error_responses(*SIGNED_IN_CHANGES),
)
async def create_api_key(body: ApiKeyIn, user: CurrentUser, session: DbSession) -> ApiKeyCreated:
    """Create an API key for scripts (send it as ``X-API-Key`` or as a bearer token).
    The key is in this response only; iap keeps just its hash."""
    api_key, secret = await service.create_api_key(session, user, body.name)
    return ApiKeyCreated(
        id=api_key.id,
        name=api_key.name,
        prefix=api_key.prefix,
        created_at=api_key.created_at,
        last_used_at=api_key.last_used_at,
        key=secret,
    )


@router.get("/me/api-keys", response_model=list[ApiKeyOut], responses=error_responses(*SIGNED_IN))
async def list_api_keys(user: CurrentUser, session: DbSession) -> list[ApiKeyOut]:
    """Your API keys (names and prefixes; never the keys themselves)."""
    return [ApiKeyOut.model_validate(k) for k in await service.list_api_keys(session, user)]


@router.delete(
    "/me/api-keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(*SIGNED_IN_CHANGES, ApiKeyNotFound),
)
async def delete_api_key(key_id: uuid.UUID, user: CurrentUser, session: DbSession) -> Response:
    """Delete an API key; requests using it fail from now on."""
    await service.delete_api_key(session, user, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
