"""The web UI's pages. Reading happens here, server-side; changes go through the JSON API from
the pages' script, with the session cookie and a CSRF token (see ``iap.auth.cookies``).

Only the sign-in, sign-up and sign-out forms post here: they are what creates and ends the
cookie.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from iap import __version__
from iap.admin.service import stats
from iap.analysis import service as analysis_service
from iap.analysis.analysers import ANALYSERS
from iap.analysis.models import JobStatus
from iap.auth import service as auth_service
from iap.auth.cookies import (
    ANONYMOUS,
    CSRF_COOKIE,
    CSRF_FIELD,
    SESSION_COOKIE,
    CsrfFailed,
    check_csrf,
    clear_session_cookies,
    csrf_token_for,
    new_csrf_token,
    set_csrf_cookie,
    set_session_cookie,
)
from iap.auth.errors import AccountDisabled, InvalidCredentials, InvalidToken
from iap.auth.models import Role, User
from iap.auth.router import login_rate_key, signup_rate_key
from iap.auth.schemas import SignupIn
from iap.config import parse_rate
from iap.deps import AppServices, DbSession
from iap.errors import AppError
from iap.images import service as image_service
from iap.images.errors import ImageNotFound, NotImageOwner
from iap.images.inspection import ALLOWED_FORMATS
from iap.images.schemas import MAX_PAGE, ImageOut
from iap.ratelimit import enforce
from iap.web.placeholders import placeholder_uri
from iap.web.templating import templates

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 24
# Pages run only their own script and style; images may be data: URIs (blurhash placeholders).
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SIGN_UP_HINTS = {
    "username": "Use 3–32 letters, digits, dots, dashes or underscores.",
    "email": "Enter an email address such as name@example.com.",
    "password": "Use at least 8 characters (and at most 256).",
}


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


def _local_path(target: str | None) -> str:
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


def sign_in_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(
        "/sign-in?" + urlencode({"next": target}), status_code=status.HTTP_303_SEE_OTHER
    )


# --- signing in and out -------------------------------------------------------------------


@router.get("/sign-in")
async def sign_in_page(request: Request, browser: Browser, next: str | None = None) -> Response:
    if browser.user is not None:
        return RedirectResponse(_local_path(next), status_code=status.HTTP_303_SEE_OTHER)
    return render(request, browser, "sign_in.html", {"next": _local_path(next)})


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
    username: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: Annotated[str | None, Form(max_length=200)] = None,
    next: Annotated[str | None, Form(max_length=2000)] = None,
) -> Response:
    target = _local_path(next)
    context: dict[str, Any] = {"next": target, "username": username}
    try:
        check_csrf(request, services.settings, browser.session_id or ANONYMOUS, csrf_token)
        await enforce(
            services.limiter,
            login_rate_key(request, username),
            parse_rate(services.settings.login_rate_limit),
            "sign-in attempts",
        )
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
        await enforce(
            services.limiter,
            signup_rate_key(request),
            parse_rate(services.settings.signup_rate_limit),
            "sign-ups from this address",
        )
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


# --- the gallery ----------------------------------------------------------------------------


@dataclass
class GalleryQuery:
    """The gallery's filters, read leniently from the URL: a value that makes no sense is
    dropped and reported rather than turned into an error page."""

    status: JobStatus | None
    tag: str | None
    format: str | None
    after: date | None
    before: date | None
    q: str | None
    page: int
    problems: list[str]

    def filters(self) -> image_service.ImageFilters:
        def moment(day: date | None, shift: int = 0) -> datetime | None:
            if day is None:
                return None
            return datetime.combine(day + timedelta(days=shift), time(), tzinfo=UTC)

        return image_service.ImageFilters(
            status=self.status,
            tags=[self.tag] if self.tag else [],
            format=self.format,
            uploaded_after=moment(self.after),
            uploaded_before=moment(self.before, shift=1),  # the "to" day is included
            text=self.q,
        )

    def url(self, path: str, page: int | None = None) -> str:
        params = {
            "status": self.status.value if self.status else None,
            "tag": self.tag,
            "format": self.format,
            "after": self.after.isoformat() if self.after else None,
            "before": self.before.isoformat() if self.before else None,
            "q": self.q,
            "page": page,
        }
        query = urlencode({k: v for k, v in params.items() if v})
        return f"{path}?{query}" if query else path

    @property
    def active(self) -> bool:
        return any((self.status, self.tag, self.format, self.after, self.before, self.q))


def _clean(value: str | None, limit: int = 200) -> str | None:
    if value is None:
        return None
    value = "".join(ch for ch in value if ch.isprintable()).strip()[:limit]
    return value or None


def _page_number(value: str | None) -> int:
    """A page number from the URL; anything else is the first page."""
    if value is not None and value.isdigit() and 0 < int(value) <= MAX_PAGE:
        return int(value)
    return 1


def gallery_query(
    status_: Annotated[str | None, Query(alias="status")] = None,
    tag: str | None = None,
    format_: Annotated[str | None, Query(alias="format")] = None,
    after: str | None = None,
    before: str | None = None,
    q: str | None = None,
    page: str | None = None,
) -> GalleryQuery:
    problems: list[str] = []

    def day(value: str | None, label: str) -> date | None:
        value = _clean(value, 20)
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            problems.append(f"'{value}' is not a date (YYYY-MM-DD); the {label} filter is off.")
            return None

    job_status = None
    wanted = _clean(status_, 20)
    if wanted:
        try:
            job_status = JobStatus(wanted)
        except ValueError:
            problems.append(f"'{wanted}' is not an analysis status; showing all.")
    return GalleryQuery(
        status=job_status,
        tag=(_clean(tag, 50) or "").lower() or None,
        format=_clean(format_, 50),
        after=day(after, "from"),
        before=day(before, "to"),
        q=_clean(q),
        page=_page_number(page),
        problems=problems,
    )


Gallery = Annotated[GalleryQuery, Depends(gallery_query)]


@dataclass
class Card:
    image: ImageOut
    placeholder: str | None

    @property
    def status(self) -> str:
        return self.image.analysis.status.value if self.image.analysis else "none"


async def _cards(session: DbSession, images: list[Any]) -> list[Card]:
    hashes = await analysis_service.blurhashes_of(session, [image.id for image in images])
    cards = []
    for row in images:
        image = ImageOut.model_validate(row)
        found = hashes.get(image.id)
        aspect = image.width / image.height if image.height else 1.0
        cards.append(Card(image, placeholder_uri(found, aspect) if found else None))
    return cards


@dataclass
class CardsPage:
    total: int
    cards: list[Card]
    more: str | None  # the next page, for a link
    more_fragment: str | None  # the next page's cards alone, for the script


async def _gallery_page(session: DbSession, user: User, query: GalleryQuery) -> CardsPage:
    total, rows = await image_service.list_images(
        session, user, query.filters(), page=query.page, limit=PAGE_SIZE
    )
    has_more = query.page * PAGE_SIZE < total
    return CardsPage(
        total=total,
        cards=await _cards(session, rows),
        more=query.url("/gallery", query.page + 1) if has_more else None,
        more_fragment=query.url("/gallery/cards", query.page + 1) if has_more else None,
    )


@router.get("/gallery")
async def gallery(
    request: Request, browser: Browser, session: DbSession, query: Gallery
) -> Response:
    if browser.user is None:
        return sign_in_redirect(request)
    context = {
        "page": await _gallery_page(session, browser.user, query),
        "query": query,
        "statuses": [s.value for s in JobStatus],
        "formats": [name.lower() for name in ALLOWED_FORMATS],
    }
    return render(request, browser, "gallery.html", context)


@router.get("/gallery/cards")
async def gallery_cards(
    request: Request, browser: Browser, session: DbSession, query: Gallery
) -> Response:
    """The next page of cards, as HTML to append (infinite scroll)."""
    if browser.user is None:
        return Response(status_code=status.HTTP_401_UNAUTHORIZED)
    page = await _gallery_page(session, browser.user, query)
    return render(request, browser, "_cards.html", {"page": page})


async def _owned(session: DbSession, user: User, image_id: uuid.UUID) -> Any | None:
    try:
        return await image_service.get_owned_image(session, user, image_id)
    except (ImageNotFound, NotImageOwner):
        return None  # someone else's image looks exactly like no image


@router.get("/gallery/card/{image_id}")
async def gallery_card(
    request: Request, browser: Browser, session: DbSession, image_id: uuid.UUID
) -> Response:
    """One card, as HTML, to show a new upload or a changed status."""
    if browser.user is None:
        return Response(status_code=status.HTTP_401_UNAUTHORIZED)
    image = await _owned(session, browser.user, image_id)
    if image is None:
        return Response(status_code=status.HTTP_404_NOT_FOUND)
    (card,) = await _cards(session, [image])
    return render(request, browser, "_card.html", {"card": card})


# --- one image ------------------------------------------------------------------------------


@router.get("/gallery/{image_id}")
async def image_page(
    request: Request, browser: Browser, session: DbSession, image_id: uuid.UUID
) -> Response:
    if browser.user is None:
        return sign_in_redirect(request)
    row = await _owned(session, browser.user, image_id)
    if row is None:
        message = "There is no image here: it was deleted, or the link is wrong."
        return render_error(request, browser, message, 404)
    image = ImageOut.model_validate(row)
    results = {r.analyser: r for r in await analysis_service.results_of(session, image.id)}

    def result(name: str) -> dict[str, Any] | None:
        found = results.get(name)
        return found.result if found is not None and found.status == "succeeded" else None

    properties = result("properties") or {}
    canvas = (
        properties.get("upright_width", image.width),
        properties.get("upright_height", image.height),
    )
    derivatives = result("derivatives") or {}
    preview = max((t["size"] for t in derivatives.get("thumbnails", [])), default=None)
    context = {
        "image": image,
        "status": image.analysis.status.value if image.analysis else "none",
        "results": results,
        "result": result,
        "canvas": canvas,
        "preview": preview,
        "analysers": [a.name for a in ANALYSERS],
    }
    return render(request, browser, "image.html", context)


# --- account and administration -----------------------------------------------------------


@router.get("/account")
async def account_page(request: Request, browser: Browser, session: DbSession) -> Response:
    if browser.user is None:
        return sign_in_redirect(request)
    keys = await auth_service.list_api_keys(session, browser.user)
    return render(request, browser, "account.html", {"keys": keys})


ADMIN_PAGE_SIZE = 50


@router.get("/admin")
async def admin_page(
    request: Request,
    browser: Browser,
    session: DbSession,
    q: str | None = None,
    page: str | None = None,
) -> Response:
    if browser.user is None:
        return sign_in_redirect(request)
    if browser.user.role != Role.ADMIN:
        return render_error(request, browser, "This page is for administrators.", 403)
    search = _clean(q, 254)
    number = _page_number(page)
    total_users, users = await auth_service.list_users(
        session, page=number, limit=ADMIN_PAGE_SIZE, search=search, newest_first=True
    )
    total_failed, failed = await analysis_service.failed_jobs(session, page=1, limit=100)

    def users_url(to: int) -> str:
        return "/admin?" + urlencode({k: v for k, v in {"q": search, "page": to}.items() if v})

    context = {
        "stats": await stats(session),
        "users": users,
        "total_users": total_users,
        "search": search,
        "previous": users_url(number - 1) if number > 1 else None,
        "next": users_url(number + 1) if number * ADMIN_PAGE_SIZE < total_users else None,
        "failed": failed,
        "total_failed": total_failed,
    }
    return render(request, browser, "admin.html", context)
