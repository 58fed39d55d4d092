"""What every page shares: who is looking (``Browser``), rendering with the page headers,
and reading lenient parameters from the URL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse

from iap import __version__
from iap.auth import service as auth_service
from iap.auth.cookies import (
    ANONYMOUS,
    CSRF_COOKIE,
    CSRF_FIELD,
    SESSION_COOKIE,
    csrf_token_for,
    set_csrf_cookie,
)
from iap.auth.errors import AccountDisabled, InvalidToken
from iap.auth.models import User
from iap.deps import AppServices, DbSession
from iap.images.schemas import MAX_PAGE
from iap.web.templating import templates

# Pages run only their own script and style; images may be data: URIs (blurhash placeholders).
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


@dataclass
class Visitor:
    """Who is looking at a page: the signed-in user (if any) and the page's CSRF token."""

    user: User | None
    csrf_token: str
    session_id: str | None


async def visitor(request: Request, session: DbSession, services: AppServices) -> Visitor:
    """Pages know the browser by its session cookie only; a stale cookie is simply ignored."""
    user, session_id = None, None
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        try:
            user, claims = await auth_service.user_from_session_token(
                session, services.settings, cookie
            )
            session_id = str(claims.token_id)
        except (InvalidToken, AccountDisabled):
            pass
    binding = session_id or ANONYMOUS
    return Visitor(user, csrf_token_for(request, services.settings, binding), session_id)


Browser = Annotated[Visitor, Depends(visitor)]


def render(
    request: Request,
    browser: Visitor,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    response = templates.TemplateResponse(
        request,
        template,
        {
            "user": browser.user,
            "csrf_token": browser.csrf_token,
            "csrf_field": CSRF_FIELD,
            "version": __version__,
            **(context or {}),
        },
        status_code=status_code,
    )
    if request.cookies.get(CSRF_COOKIE) != browser.csrf_token:
        set_csrf_cookie(response, request, request.app.state.services.settings, browser.csrf_token)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers["X-Frame-Options"] = "DENY"
    return response


def render_error(
    request: Request, browser: Visitor, message: str, status_code: int
) -> HTMLResponse:
    return render(request, browser, "error.html", {"message": message}, status_code=status_code)


def sign_in_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(
        "/sign-in?" + urlencode({"next": target}), status_code=status.HTTP_303_SEE_OTHER
    )


def clean_param(value: str | None, limit: int = 200) -> str | None:
    if value is None:
        return None
    value = "".join(ch for ch in value if ch.isprintable()).strip()[:limit]
    return value or None


def page_number(value: str | None) -> int:
    """A page number from the URL; anything else is the first page."""
    if value is not None and value.isdigit() and 0 < int(value) <= MAX_PAGE:
        return int(value)
    return 1
