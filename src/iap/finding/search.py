"""Full-text search over an owner's images, by the database's own engine: SQLite's FTS5 on the
embedded default, PostgreSQL's tsvector and GIN index when scaled (both created by migration
0006), and trigram indexes for pieces of filenames.

The index is written by ``iap.finding.indexing``. The query is parsed by
``iap.finding.words``: the engines only ever see quoted words, as bound parameters. Hits are
ranked by the fields that hold the query (filename above tags above description and camera
above recognised text; ``words.GROUPS``), by the image's own words alone, and paged by a
keyset cursor over (score, index row); snippets are cut from the fields as the owner wrote
them."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, Integer, Uuid, and_, bindparam, column, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from iap.auth.models import User
from iap.finding import words
from iap.finding.indexing import is_postgres, searchable_texts, shown_of
from iap.finding.models import ImageSearch
from iap.images import pagination
from iap.images.errors import InvalidCursor
from iap.images.models import Image
from iap.images.service import ImageFilters, filtered
from iap.people.service import images_of_people, people_named


@dataclass(frozen=True)
class Match:
    field: str
    fragments: list[words.Fragment]


@dataclass(frozen=True)
class Hit:
    image: Image
    score: float
    matches: list[Match]


def _candidates(
    session: AsyncSession, user: User, query: words.Query, people: list[uuid.UUID]
) -> Any:
    """(doc, score) of the owner's images that match, as a subquery: ``doc`` is the image's
    row of the index (``ImageSearch.id``), which breaks ties between equal scores (newest
    first). The image's own words decide its score, weighted by ``words.GROUPS``: on SQLite
    the weights of the groups that hold every term, on PostgreSQL ``ts_rank`` with them.
    Images with a face of one of ``people`` (those named by the query) match too, weighted
    as tags are."""
    part = query.part()
    # Only constants are formatted into these statements; the query's words are bound.
    if is_postgres(session):
        # ts_rank with the groups' weights (for labels D, C, B, A): also the image's own words
        # only (it uses no statistics of other rows), and one evaluation a row where a check
        # per group cost twice as much for a word in a third of the images (measured).
        top = max(words.GROUP_WEIGHTS)  # ts_rank takes weights of 0-1
        weights = ", ".join(str(weight / top) for weight in reversed(words.GROUP_WEIGHTS))
        where = "document @@ query" + (" OR filename LIKE :like" if part else "")
        found = (
            f"SELECT id AS doc, ts_rank('{{{weights}}}', document, query) AS score "  # noqa: S608
            "FROM image_search, to_tsquery('simple', :tsquery) AS query "
            f"WHERE user_id = :user AND ({where})"
        )
        if people:
            found = f"SELECT doc, sum(score) AS score FROM ({found} UNION ALL {_IN_PEOPLE}) AS hits GROUP BY doc"  # noqa: S608, E501
        statement = text(found).bindparams(tsquery=query.tsquery())
        if part:
            statement = statement.bindparams(like=f"%{part}%")
        statement = statement.bindparams(bindparam("user", user.id, type_=Uuid()))
    else:
        # The owner's id is a word of the index's user_id column: each MATCH keeps to the
        # owner's rows in the index itself.
        owner = f'user_id : "{user.id.hex}" AND '
        scored = [("anywhere", words.MATCHED)]
        scored += [(f"group{n}", weight) for n, weight in enumerate(words.GROUP_WEIGHTS)]
        branches = [
            f"SELECT rowid AS doc, {weight} AS score FROM image_search_fts "  # noqa: S608
            f"WHERE image_search_fts MATCH :{name}"
            for name, weight in scored
        ]
        if part:
            branches.append(
                "SELECT n.rowid, 0.0 FROM image_search_names AS n "
                "JOIN image_search AS s ON s.id = n.rowid "
                "WHERE image_search_names MATCH :part AND s.user_id = :user"
            )
        if people:
            branches.append(_IN_PEOPLE)
        statement = text(
            f"SELECT doc, sum(score) AS score FROM ({' UNION ALL '.join(branches)}) "  # noqa: S608
            "GROUP BY doc"
        ).bindparams(
            anywhere=owner + query.fts5(words.FIELDS),
            **{f"group{n}": owner + query.fts5(group) for n, group in enumerate(words.GROUPS)},
        )
        if part:
            statement = statement.bindparams(part=f'"{part}"')
        if part or people:
            statement = statement.bindparams(bindparam("user", user.id, type_=Uuid()))
    if people:
        statement = statement.bindparams(bindparam("people", people, type_=Uuid(), expanding=True))
    return statement.columns(column("doc", Integer()), column("score", Float())).subquery()


# The images with a face of the people a query names, scored as a match in the tags.
_IN_PEOPLE = (
    f"SELECT DISTINCT s.id AS doc, {words.GROUP_WEIGHTS[1]} AS score "  # noqa: S608
    "FROM image_search AS s JOIN faces AS f ON f.image_id = s.image_id "
    "WHERE s.user_id = :user AND f.person_id IN :people"
)


def _order(query: words.Query, filters: ImageFilters) -> str:
    """What a cursor belongs to: this query with these filters."""
    digest = hashlib.sha256(repr((query, filters)).encode()).hexdigest()[:16]
    return f"search:{digest}"


async def search(
    session: AsyncSession,
    user: User,
    query: words.Query,
    filters: ImageFilters,
    *,
    limit: int,
    cursor: str | None = None,
) -> tuple[list[Hit], str | None]:
    """A page of the owner's images that match, best first (the newest first among equals),
    and the cursor of the next page (None on the last)."""
    named = await people_named(session, user, query)
    candidates = _candidates(session, user, query, [person.id for person in named])
    score, doc = candidates.c.score, candidates.c.doc
    # The page is ranked and cut among the matches alone; only its own rows then meet the
    # images table (joining every match to it first costs as much as the matches).
    page = select(doc, score)
    if filters != ImageFilters():
        kept = select(ImageSearch.id).join(Image, Image.id == ImageSearch.image_id)
        page = page.where(doc.in_(filtered(kept, user, filters)))
    order = _order(query, filters)
    if cursor is not None:
        try:
            after_score, after_doc = pagination.decode_position(cursor, order, float, int)
        except InvalidCursor:
            raise InvalidCursor(
                "This cursor is not one of this search's: ask again with the same q and "
                "filters as the page it came from, or start from the first page."
            ) from None
        page = page.where(or_(score < after_score, and_(score == after_score, doc < after_doc)))
    best = page.order_by(score.desc(), doc.desc()).limit(limit + 1).subquery()
    ordered = (
        select(Image, best.c.score, best.c.doc)
        .join(ImageSearch, ImageSearch.image_id == Image.id)
        .join(best, best.c.doc == ImageSearch.id)
        .where(Image.user_id == user.id)
        .order_by(best.c.score.desc(), best.c.doc.desc())
    )
    found: list[tuple[Image, float, int]] = [
        (image, float(value), position) for image, value, position in await session.execute(ordered)
    ]
    next_cursor = None
    if len(found) > limit:
        found = found[:limit]
        _, last_score, last_doc = found[-1]
        next_cursor = pagination.encode_position(order, last_score, last_doc)
    images = [image for image, _, _ in found]
    texts = await searchable_texts(session, [image.id for image in images])
    names = {person.id: person.name or "" for person in named}
    in_image = await images_of_people(session, list(names), [image.id for image in images])
    hits = []
    for image, hit_score, _ in found:
        shown = shown_of(image, texts.get(image.id, {}))
        matches = []
        for field in words.FIELDS:
            fragments = words.snippet(shown[field], query, part=field == "filename")
            if fragments:
                matches.append(Match(field, fragments))
        for person_id in sorted(in_image.get(image.id, []), key=lambda p: names[p]):
            fragments = words.snippet(names[person_id], query)
            if fragments:
                matches.append(Match("person", fragments))
        hits.append(Hit(image, hit_score, matches))
    return hits, next_cursor
