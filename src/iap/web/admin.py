"""The admin page: figures, users (search, paging, disable) and failed jobs."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from iap.admin.service import stats
from iap.analysis import service as analysis_service
from iap.auth import service as auth_service
from iap.auth.models import Role
from iap.deps import DbSession
from iap.web.pages import Browser, clean_param, page_number, render, render_error, sign_in_redirect

router = APIRouter(include_in_schema=False)

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
    search = clean_param(q, 254)
    number = page_number(page)
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
