"""Finding images: search by words, near-duplicates of one image, and groups of duplicates."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from iap.auth.deps import SIGNED_IN, CurrentUser
from iap.deps import DbSession
from iap.errors import error_responses
from iap.finding import likeness, search, service, words
from iap.finding.errors import HashesNotReady, InvalidQuery
from iap.finding.schemas import (
    DuplicateGroup,
    DuplicateKind,
    DuplicateMember,
    DuplicatePage,
    SearchField,
    SearchHit,
    SearchMatch,
    SearchPage,
    SimilarImage,
    SimilarPage,
)
from iap.images.errors import OWNED_IMAGE, InvalidCursor
from iap.images.filter_params import Filters
from iap.images.pagination import MAX_CURSOR
from iap.images.schemas import ImageOut
from iap.images.service import get_owned_image
from iap.text import NO_CONTROL_PATTERN

router = APIRouter(prefix="/image", tags=["finding"])


@router.get(
    "/search",
    response_model=SearchPage,
    responses=error_responses(*SIGNED_IN, InvalidQuery, InvalidCursor),
)
async def search_images(
    user: CurrentUser,
    session: DbSession,
    filters: Filters,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=200,
            pattern=NO_CONTROL_PATTERN,
            description="Words to find, all of them (case and accents do not matter); "
            '`bake*` for words that begin so; `"in quotes"` for words in a row. Anything '
            f"else is only text. At most {words.MAX_TERMS} terms.",
            examples=['bakery "opening hours"', "img_20*"],
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=100, description="Hits per page.")] = 20,
    cursor: Annotated[
        str | None, Query(max_length=MAX_CURSOR, description="A page's `next_cursor`.")
    ] = None,
) -> SearchPage:
    """Your images whose filename, tags, description, recognised text (OCR), camera and lens
    names, or the name of a person in them (see `/people`) contain the words, best first,
    each with the fields that matched and a snippet of each. A query of three or more
    characters also finds filenames that contain it anywhere (`mg_99` finds `IMG_9912.JPG`).
    Takes the list filters of `/image/all`."""
    try:
        query = words.parse(q)
    except words.QueryError as exc:
        raise InvalidQuery(str(exc)) from None
    hits, next_cursor = await search.search(
        session, user, query, filters, limit=limit, cursor=cursor
    )
    return SearchPage(
        query=" ".join(term.fts5() for term in query.terms),
        data=[
            SearchHit(
                score=hit.score,
                matches=[
                    SearchMatch(
                        field=SearchField(match.field),
                        snippet="".join(part.text for part in match.fragments),
                        parts=[
                            {"text": part.text, "highlight": part.highlight}
                            for part in match.fragments
                        ],
                    )
                    for match in hit.matches
                ],
                image=ImageOut.model_validate(hit.image),
            )
            for hit in hits
        ],
        next_cursor=next_cursor,
    )


@router.get(
    "/duplicates",
    response_model=DuplicatePage,
    responses=error_responses(*SIGNED_IN, InvalidCursor),
)
async def duplicates(
    user: CurrentUser,
    session: DbSession,
    kind: Annotated[
        DuplicateKind,
        Query(
            description="`exact`: the same bytes (SHA-256), from upload on. `near`: pHashes "
            f"within {likeness.DUPLICATE_DISTANCE} bits (resized, recompressed, lightly "
            "cropped copies), once analysed."
        ),
    ] = DuplicateKind.EXACT,
    limit: Annotated[int, Query(ge=1, le=100, description="Groups per page.")] = 20,
    cursor: Annotated[
        str | None, Query(max_length=MAX_CURSOR, description="A page's `next_cursor`.")
    ] = None,
) -> DuplicatePage:
    """Your duplicates, in groups, each with the suggested one to keep first."""
    groups, next_cursor = await service.duplicate_groups(
        session, user, kind=kind.value, limit=limit, cursor=cursor
    )
    return DuplicatePage(
        kind=kind,
        data=[
            DuplicateGroup(
                kind=kind,
                keep=group.keep.id,
                images=[
                    DuplicateMember(
                        distance=member.distance,
                        same_bytes=member.same_bytes,
                        image=ImageOut.model_validate(member.image),
                    )
                    for member in group.members
                ],
            )
            for group in groups
        ],
        next_cursor=next_cursor,
    )


@router.get(
    "/{image_id}/similar",
    response_model=SimilarPage,
    responses=error_responses(*SIGNED_IN, *OWNED_IMAGE, HashesNotReady),
)
async def similar(
    image_id: uuid.UUID,
    user: CurrentUser,
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    max_distance: Annotated[
        int,
        Query(
            ge=0,
            le=likeness.MAX_DISTANCE,
            description="The farthest pHash distance (bits of 64) to include. Resized and "
            "recompressed copies are within 4, lightly cropped ones mostly within 10-12, "
            "unrelated photos 20 or more apart.",
        ),
    ] = likeness.DUPLICATE_DISTANCE,
) -> SimilarPage:
    """Your images that look like this one (by perceptual hash), nearest first, each with its
    distance. The image itself is not listed."""
    image = await get_owned_image(session, user, image_id)
    found = await service.similar(session, user, image, limit=limit, max_distance=max_distance)
    if found is None:
        raise HashesNotReady()
    return SimilarPage(
        max_distance=max_distance,
        data=[SimilarImage(distance=d, image=ImageOut.model_validate(other)) for other, d in found],
    )
