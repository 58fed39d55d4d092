"""The account page: password change and API keys."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from iap.auth import service as auth_service
from iap.deps import DbSession
from iap.web.pages import Browser, render, sign_in_redirect

router = APIRouter(include_in_schema=False)


@router.get("/account")
async def account_page(request: Request, browser: Browser, session: DbSession) -> Response:
    if browser.user is None:
        return sign_in_redirect(request)
    keys = await auth_service.list_api_keys(session, browser.user)
    return render(request, browser, "account.html", {"keys": keys})
