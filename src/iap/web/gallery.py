"""The gallery (filters, search with snippets, cards, infinite scroll) and the page of one
image (who is in it included)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import Response

from iap.analysis import service as analysis_service
from iap.analysis.analysers.derivatives import DerivativesResult
from iap.analysis.analysers.hashes import HashesResult
from iap.analysis.analysers.properties import PropertiesResult
from iap.analysis.models import JobStatus
from iap.analysis.results import analysis_results
from iap.auth.models import User
from iap.deps import DbSession
from iap.finding import likeness, search, words
from iap.finding import service as finding
from iap.images import service as image_service
from iap.images.errors import ImageNotFound, InvalidCursor, NotImageOwner
from iap.images.inspection import ALLOWED_FORMATS
from iap.images.pagination import MAX_CURSOR
from iap.images.schemas import ImageOut
from iap.people import service as people_service
from iap.web.pages import Browser, clean_param, page_number, render, render_error, sign_in_redirect
from iap.web.placeholders import placeholder_uri

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 24
# Look-alikes shown under an image (nearest first).
SIMILAR_STRIP = 8


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
    cursor: str | None  # a search's next page
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
        )

    def url(self, path: str, page: int | None = None, cursor: str | None = None) -> str:
        params = {
            "status": self.status.value if self.status else None,
            "tag": self.tag,
            "format": self.format,
            "after": self.after.isoformat() if self.after else None,
            "before": self.before.isoformat() if self.before else None,
            "q": self.q,
            "page": page,
            "cursor": cursor,
        }
        query = urlencode({k: v for k, v in params.items() if v})
        return f"{path}?{query}" if query else path

    @property
    def active(self) -> bool:
        return any((self.status, self.tag, self.format, self.after, self.before, self.q))


def gallery_query(
    status_: Annotated[str | None, Query(alias="status")] = None,
    tag: str | None = None,
    format_: Annotated[str | None, Query(alias="format")] = None,
    after: str | None = None,
    before: str | None = None,
    q: str | None = None,
    page: str | None = None,
    cursor: str | None = None,
) -> GalleryQuery:
    problems: list[str] = []

    def day(value: str | None, label: str) -> date | None:
        value = clean_param(value, 20)
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            problems.append(f"'{value}' is not a date (YYYY-MM-DD); the {label} filter is off.")
            return None

    job_status = None
    wanted = clean_param(status_, 20)
    if wanted:
        try:
            job_status = JobStatus(wanted)
        except ValueError:
            problems.append(f"'{wanted}' is not an analysis status; showing all.")
    return GalleryQuery(
        status=job_status,
        tag=(clean_param(tag, 50) or "").lower() or None,
        format=clean_param(format_, 50),
        after=day(after, "from"),
        before=day(before, "to"),
        q=clean_param(q),
        page=page_number(page),
        cursor=clean_param(cursor, MAX_CURSOR),
        problems=problems,
    )


Gallery = Annotated[GalleryQuery, Depends(gallery_query)]


FIELD_LABELS = {
    "filename": "Filename",
    "tags": "Tags",
    "description": "Description",
    "camera": "Camera",
    "text": "Text in the image",
    "person": "Person",
}


@dataclass
class Card:
    image: ImageOut
    placeholder: str | None
    matches: list[search.Match] = field(default_factory=list)  # on a search's cards

    @property
    def status(self) -> str:
        return self.image.analysis.status.value if self.image.analysis else "none"


async def cards_of(session: DbSession, images: list[Any]) -> list[Card]:
    hashes = await analysis_service.latest_results(
        session, [image.id for image in images], HashesResult
    )
    cards = []
    for row in images:
        image = ImageOut.model_validate(row)
        found = hashes.get(image.id)
        aspect = image.width / image.height if image.height else 1.0
        cards.append(Card(image, placeholder_uri(found.blurhash, aspect) if found else None))
    return cards


@dataclass
class CardsPage:
    total: int | None  # None on a search's pages (ranked, not counted)
    cards: list[Card]
    more: str | None  # the next page, for a link
    more_fragment: str | None  # the next page's cards alone, for the script


async def _gallery_page(session: DbSession, user: User, query: GalleryQuery) -> CardsPage:
    if query.q:
        try:
            return await _search_page(session, user, query, words.parse(query.q))
        except words.QueryError as exc:
            query.problems.append(f"{exc} Showing every image.")
        except InvalidCursor:
            query.problems.append("That page of the search is gone; here is its first page.")
            query.cursor = None
            return await _search_page(session, user, query, words.parse(query.q))
    found = await image_service.list_images(
        session, user, query.filters(), page=query.page, limit=PAGE_SIZE
    )
    has_more = found.next_cursor is not None
    return CardsPage(
        total=found.total or 0,
        cards=await cards_of(session, found.rows),
        more=query.url("/gallery", query.page + 1) if has_more else None,
        more_fragment=query.url("/gallery/cards", query.page + 1) if has_more else None,
    )


async def _search_page(
    session: DbSession, user: User, query: GalleryQuery, parsed: words.Query
) -> CardsPage:
    """The best matches first, each card with its snippets; the next page by cursor."""
    hits, next_cursor = await search.search(
        session, user, parsed, query.filters(), limit=PAGE_SIZE, cursor=query.cursor
    )
    cards = await cards_of(session, [hit.image for hit in hits])
    for card, hit in zip(cards, hits, strict=True):
        card.matches = hit.matches
    return CardsPage(
        total=None,
        cards=cards,
        more=query.url("/gallery", cursor=next_cursor) if next_cursor else None,
        more_fragment=query.url("/gallery/cards", cursor=next_cursor) if next_cursor else None,
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
        "field_labels": FIELD_LABELS,
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
    return render(request, browser, "_cards.html", {"page": page, "field_labels": FIELD_LABELS})


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
    (card,) = await cards_of(session, [image])
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
    results = analysis_results(await analysis_service.results_of(session, image.id))
    properties = results.succeeded(PropertiesResult)
    canvas = (
        (properties.upright_width, properties.upright_height)
        if properties
        else (image.width, image.height)
    )
    derivatives = results.succeeded(DerivativesResult)
    preview = max((t.size for t in derivatives.thumbnails), default=None) if derivatives else None
    near = await finding.similar(
        session, browser.user, row, limit=SIMILAR_STRIP, max_distance=likeness.DUPLICATE_DISTANCE
    )
    people = await people_service.image_faces(session, row)
    context = {
        "image": image,
        "status": image.analysis.status.value if image.analysis else "none",
        "results": results,
        "canvas": canvas,
        "preview": preview,
        "similar": await cards_of(session, [other for other, _ in near or []]),
        "people": people,
        # A recorded face keeps its place in the faces result: the overlay's box of it.
        "people_by_position": {found.face.position: found for found in people},
    }
    return render(request, browser, "image.html", context)
