"""Signing in, signing up and signing out: the only forms that post to the pages' routes,
for they create and end the session cookie."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from iap.auth import service as auth_service
from iap.auth.cookies import (
    ANONYMOUS,
    SESSION_COOKIE,
    CsrfFailed,
    check_csrf,
    clear_session_cookies,
    new_csrf_token,
    set_csrf_cookie,
    set_session_cookie,
)
from iap.auth.errors import InvalidCredentials
from iap.auth.limits import SignInThrottle, SignupThrottle, login_key, signup_key
from iap.auth.models import User
from iap.auth.schemas import SignupIn
from iap.deps import AppServices, DbSession
from iap.errors import AppError
from iap.web.pages import Browser, render, render_error

router = APIRouter(include_in_schema=False)

SIGN_UP_HINTS = {
    "username": "Use 3–32 letters, digits, dots, dashes or underscores.",
    "email": "Enter an email address such as name@example.com.",
    "password": "Use at least 8 characters (and at most 256).",
}


def local_path(target: str | None) -> str:
    """Only same-site paths are followed after sign-in (no open redirects)."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        # Browsers drop tabs and newlines from URLs: "/\t/evil.example" would become "//evil...".
        or any(ch.isspace() or not ch.isprintable() for ch in target)
    ):
        return "/gallery"
    return target


@router.get("/sign-in")
async def sign_in_page(request: Request, browser: Browser, next: str | None = None) -> Response:
    if browser.user is not None:
        return RedirectResponse(local_path(next), status_code=status.HTTP_303_SEE_OTHER)
    return render(request, browser, "sign_in.html", {"next": local_path(next)})


async def _start_session(
    request: Request, session: DbSession, services: AppServices, user: User, target: str
) -> RedirectResponse:
    token, claims = await auth_service.start_session(session, services.settings, user)
    response = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
    set_session_cookie(response, request, services.settings, token)
    # A fresh CSRF token bound to the new sign-in: one planted before it is worthless after.
    csrf = new_csrf_token(services.settings, str(claims.token_id))
    set_csrf_cookie(response, request, services.settings, csrf)
    return response


@router.post("/sign-in")
async def sign_in(
    request: Request,
    browser: Browser,
    session: DbSession,
    services: AppServices,
    limit: SignInThrottle,
    username: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: Annotated[str | None, Form(max_length=200)] = None,
    next: Annotated[str | None, Form(max_length=2000)] = None,
) -> Response:
    target = local_path(next)
    context: dict[str, Any] = {"next": target, "username": username}
    try:
        check_csrf(request, services.settings, browser.session_id or ANONYMOUS, csrf_token)
        # Counted after the CSRF check, so another site cannot spend a user's attempts; a
        # refusal is shown on the form, like any other sign-in problem.
        await limit.check(login_key(request, username))
        user = await auth_service.authenticate(session, username, password)
    except AppError as exc:
        code = 401 if isinstance(exc, InvalidCredentials) else exc.status
        context["error"] = exc.detail
        return render(request, browser, "sign_in.html", context, status_code=code)
    return await _start_session(request, session, services, user, target)


@router.get("/sign-up")
async def sign_up_page(request: Request, browser: Browser) -> Response:
    if browser.user is not None:
        return RedirectResponse("/gallery", status_code=status.HTTP_303_SEE_OTHER)
    return render(request, browser, "sign_up.html")


@router.post("/sign-up")
async def sign_up(
    request: Request,
    browser: Browser,
    session: DbSession,
    services: AppServices,
    limit: SignupThrottle,
    username: Annotated[str, Form(max_length=200)] = "",
    email: Annotated[str, Form(max_length=400)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    context: dict[str, Any] = {"username": username, "email": email}
    try:
        check_csrf(request, services.settings, browser.session_id or ANONYMOUS, csrf_token)
        try:
            form = SignupIn(username=username, email=email, password=password)
        except ValidationError as exc:
            context["errors"] = {
                str(error["loc"][0]): SIGN_UP_HINTS.get(str(error["loc"][0]), error["msg"])
                for error in exc.errors()
            }
            return render(request, browser, "sign_up.html", context, status_code=422)
        await limit.check(signup_key(request))
        user = await auth_service.create_user(
            session, username=form.username, email=str(form.email), password=form.password
        )
    except AppError as exc:
        context["error"] = exc.detail
        return render(request, browser, "sign_up.html", context, status_code=exc.status)
    return await _start_session(request, session, services, user, "/gallery")


@router.post("/sign-out")
async def sign_out(
    request: Request,
    browser: Browser,
    session: DbSession,
    services: AppServices,
    csrf_token: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    """Ends this browser's sign-in (the token is revoked, not merely forgotten)."""
    if browser.session_id is not None:
        try:
            check_csrf(request, services.settings, browser.session_id, csrf_token)
        except CsrfFailed as exc:
            return render_error(request, browser, exc.detail, exc.status)
        cookie = request.cookies[SESSION_COOKIE]
        await auth_service.end_session(
            session, auth_service.decode_session_token(services.settings, cookie)
        )
    response = RedirectResponse("/sign-in", status_code=status.HTTP_303_SEE_OTHER)
    clear_session_cookies(response, request, services.settings)
    return response
