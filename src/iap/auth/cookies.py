"""Browser sign-ins: the session cookie and its CSRF protection.

The web UI signs in with a ``session`` token in an HttpOnly, SameSite=Lax cookie, so page
scripts never hold a credential. Because a browser sends cookies on its own, every state-changing
request authenticated by that cookie must also prove it came from one of our pages:

- a CSRF token (signed double-submit): the ``iap_csrf`` cookie holds ``nonce.mac`` where the mac
  binds the nonce to the sign-in it belongs to; pages repeat it in a form field or the
  ``X-CSRF-Token`` header, which another site can neither read nor set;
- and, where the browser says so (``Sec-Fetch-Site``), the request must be same-origin.

Requests with a bearer token or an API key carry no ambient credential and need neither.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request, Response

from iap.config import Settings
from iap.errors import Forbidden

SESSION_COOKIE = "iap_session"
CSRF_COOKIE = "iap_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
ANONYMOUS = "anonymous"  # the binding of tokens on the sign-in and sign-up forms
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfFailed(Forbidden):
    code = "csrf_failed"
    detail = (
        "This request did not come with a valid CSRF token from an iap page; reload the page "
        "and try again."
    )


def _mac(settings: Settings, binding: str, nonce: str) -> str:
    message = f"csrf:{binding}:{nonce}".encode()
    return hmac.new(settings.signing_key.encode(), message, hashlib.sha256).hexdigest()


def new_csrf_token(settings: Settings, binding: str) -> str:
    nonce = secrets.token_urlsafe(18)
    return f"{nonce}.{_mac(settings, binding, nonce)}"


def csrf_token_is_valid(settings: Settings, binding: str, token: str | None) -> bool:
    if not token or len(token) > 200:
        return False
    nonce, _, mac = token.partition(".")
    return hmac.compare_digest(mac, _mac(settings, binding, nonce))


def csrf_token_for(request: Request, settings: Settings, binding: str) -> str:
    """The page's CSRF token: the one in the cookie when it is valid for ``binding``, else new
    (the caller sets it with ``set_csrf_cookie``)."""
    current = request.cookies.get(CSRF_COOKIE)
    if current is not None and csrf_token_is_valid(settings, binding, current):
        return current
    return new_csrf_token(settings, binding)


def check_csrf(request: Request, settings: Settings, binding: str, submitted: str | None) -> None:
    """Raise ``CsrfFailed`` unless ``submitted`` matches the cookie and is bound to ``binding``,
    and the browser does not report a cross-site request."""
    if request.headers.get("sec-fetch-site", "same-origin") not in {"same-origin", "none"}:
        raise CsrfFailed("Cross-site requests cannot change anything here.")
    cookie = request.cookies.get(CSRF_COOKIE)
    if (
        submitted is None
        or cookie is None
        or not hmac.compare_digest(cookie.encode(), submitted.encode())
        or not csrf_token_is_valid(settings, binding, cookie)
    ):
        raise CsrfFailed()


def _secure(request: Request, settings: Settings) -> bool:
    if settings.secure_cookies is not None:
        return settings.secure_cookies
    return request.url.scheme == "https"


def set_session_cookie(
    response: Response, request: Request, settings: Settings, token: str
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_ttl_seconds,
        httponly=True,
        samesite="lax",  # sent when following a link to iap; never on another site's POST
        secure=_secure(request, settings),
        path="/",
    )


def set_csrf_cookie(response: Response, request: Request, settings: Settings, token: str) -> None:
    response.set_cookie(
        CSRF_COOKIE,
        token,
        max_age=settings.session_ttl_seconds,
        httponly=True,
        samesite="strict",
        secure=_secure(request, settings),
        path="/",
    )


def clear_session_cookies(response: Response, request: Request, settings: Settings) -> None:
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/", secure=_secure(request, settings), httponly=True)
