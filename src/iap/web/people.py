"""The people page (the faces found in the owner's images, grouped by who they are: named,
hidden and merged there) and the page of one person (their images, each with that person's
faces, a wrongly grouped one taken out in one click).

The pages live under ``/gallery/``: ``/people`` is the API's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from iap.deps import DbSession
from iap.people import service as people_service
from iap.people.errors import NotPersonOwner, PersonNotFound
from iap.people.models import Face
from iap.web.gallery import Card, cards_of
from iap.web.pages import Browser, page_number, render, render_error, sign_in_redirect

router = APIRouter(include_in_schema=False)

PEOPLE_PER_PAGE = 60
IMAGES_PER_PAGE = 24
PEOPLE_PATH = "/gallery/people"


def _url(path: str, page: int, hidden: bool = False) -> str:
    params = {"hidden": "1" if hidden else None, "page": page if page > 1 else None}
    query = urlencode({k: v for k, v in params.items() if v})
    return f"{path}?{query}" if query else path


def _pages(
    path: str, page: int, per_page: int, total: int, hidden: bool = False
) -> dict[str, str | None]:
    """The links to the previous and the next page, where there are such pages."""
    return {
        "previous": _url(path, page - 1, hidden) if page > 1 else None,
        "next": _url(path, page + 1, hidden) if page * per_page < total else None,
    }


@router.get(PEOPLE_PATH)
async def people_page(
    request: Request,
    browser: Browser,
    session: DbSession,
    hidden: str | None = None,
    page: str | None = None,
) -> Response:
    """The owner's people, those in the most images first; hidden ones with ``hidden=1``."""
    if browser.user is None:
        return sign_in_redirect(request)
    include_hidden = hidden == "1"
    number = page_number(page)
    total, people = await people_service.list_people(
        session, browser.user, page=number, limit=PEOPLE_PER_PAGE, include_hidden=include_hidden
    )
    context = {
        "people": people,
        "total": total,
        "include_hidden": include_hidden,
        **_pages(PEOPLE_PATH, number, PEOPLE_PER_PAGE, total, include_hidden),
    }
    return render(request, browser, "people.html", context)


@dataclass
class PersonImage:
    """One image on a person's page: its card, and the person's faces in it."""

    card: Card
    faces: list[Face]


@router.get(PEOPLE_PATH + "/{person_id}")
async def person_page(
    request: Request,
    browser: Browser,
    session: DbSession,
    person_id: uuid.UUID,
    page: str | None = None,
) -> Response:
    """One person: their images, newest upload first, each with the person's faces in it."""
    if browser.user is None:
        return sign_in_redirect(request)
    try:
        person = await people_service.get_owned_person(session, browser.user, person_id)
    except (PersonNotFound, NotPersonOwner):
        # Someone else's person looks exactly like no person, as someone else's image does.
        message = (
            "There is no person here: their faces were taken out, merged into someone else "
            "or deleted with their images, or the link is wrong."
        )
        return render_error(request, browser, message, 404)
    number = page_number(page)
    view = await people_service.view_person(session, person)
    total, found = await people_service.person_images(
        session, person, page=number, limit=IMAGES_PER_PAGE
    )
    cards = await cards_of(session, [item.image for item in found])
    context = {
        "view": view,
        "images": [PersonImage(card, item.faces) for card, item in zip(cards, found, strict=True)],
        **_pages(f"{PEOPLE_PATH}/{person.id}", number, IMAGES_PER_PAGE, total),
    }
    return render(request, browser, "person.html", context)
