"""The duplicates page: groups of the same picture, each kept to one in one action."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from iap.deps import DbSession
from iap.errors import AppError
from iap.finding import service as finding
from iap.finding.schemas import DuplicateKind
from iap.images.pagination import MAX_CURSOR
from iap.web.gallery import Card, cards_of
from iap.web.pages import Browser, render, render_error, sign_in_redirect

router = APIRouter(include_in_schema=False)

GROUPS_PER_PAGE = 20


@router.get("/duplicates")
async def duplicates_page(
    request: Request,
    browser: Browser,
    session: DbSession,
    kind: DuplicateKind = DuplicateKind.EXACT,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR)] = None,
) -> Response:
    if browser.user is None:
        return sign_in_redirect(request)
    try:
        groups, next_cursor = await finding.duplicate_groups(
            session, browser.user, kind=kind.value, limit=GROUPS_PER_PAGE, cursor=cursor
        )
    except AppError as exc:
        return render_error(request, browser, exc.detail, exc.status)
    shown: list[tuple[Card, list[Card]]] = []
    for group in groups:
        cards = await cards_of(session, [member.image for member in group.members])
        shown.append((cards[0], cards[1:]))  # the one to keep comes first
    context = {"kind": kind.value, "groups": shown, "next_cursor": next_cursor}
    return render(request, browser, "duplicates.html", context)
