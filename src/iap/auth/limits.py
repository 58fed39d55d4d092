"""Rate limits on signing in and signing up, shared by the API and the web UI's forms: both
count against the same keys, so a guesser gains nothing by switching between them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordRequestForm

from iap.deps import Throttle, throttle

LoginThrottle = Annotated[
    Throttle, Depends(throttle(lambda settings: settings.login_rate_limit, "login attempts"))
]
SignInThrottle = Annotated[
    Throttle, Depends(throttle(lambda settings: settings.login_rate_limit, "sign-in attempts"))
]
SignupThrottle = Annotated[
    Throttle,
    Depends(throttle(lambda settings: settings.signup_rate_limit, "sign-ups from this address")),
]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def login_key(request: Request, username: str) -> str:
    """Login attempts are counted per address and username."""
    return f"login:{client_address(request)}:{username.lower()}"


def signup_key(request: Request) -> str:
    return f"signup:{client_address(request)}"


async def limit_logins(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    limit: LoginThrottle,
) -> None:
    """Route dependency: 429 past ``IAP_LOGIN_RATE_LIMIT`` attempts for this user+address."""
    await limit.check(login_key(request, form.username))
