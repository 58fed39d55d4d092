"""Full-text search over an owner's images, by the database's own engine: SQLite's FTS5 on the
embedded default, PostgreSQL's tsvector and GIN index when scaled (both created by migration
0006), and trigram indexes for pieces of filenames.

The index is written by ``iap.finding.indexing``. The query is parsed by
``iap.finding.words``: the engines only ever see quoted words, as bound parameters. Hits are
ranked (BM25 on SQLite, ``ts_rank`` on PostgreSQL; filename above tags above description and
camera above recognised text) and paged by a keyset cursor over (score, id); snippets are cut
from the fields as the owner wrote them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, Uuid, and_, bindparam, column, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from iap.auth.models import User
from iap.finding import words
from iap.finding.indexing import is_postgres, searchable_texts
from iap.images import pagination
from iap.images.errors import InvalidCursor
from iap.images.models import Image
from iap.images.service import ImageFilters, filtered

# SQLite's BM25 weights, in the FTS5 table's column order (words.FIELDS).
_WEIGHTS = {"filename": 8.0, "tags": 4.0, "description": 2.0, "camera": 2.0, "text": 1.0}


@dataclass(frozen=True)
class Match:
    field: str
    fragments: list[words.Fragment]


@dataclass(frozen=True)
class Hit:
    image: Image
    score: float
    matches: list[Match]


def _ranked(session: AsyncSession, user: User, query: words.Query) -> Any:
    """(image_id, score) of the owner's images that match, as a subquery."""
    part = query.part()
    if is_postgres(session):
        # Only constants are formatted into these statements; the query's words are bound.
        where = "document @@ query" + (" OR filename LIKE :like" if part else "")
        statement = text(
            "SELECT image_id, ts_rank(document, query) AS score "  # noqa: S608
            "FROM image_search, to_tsquery('simple', :tsquery) AS query "
            f"WHERE user_id = :user AND ({where})"
        ).bindparams(tsquery=query.tsquery())
        if part:
            statement = statement.bindparams(like=f"%{part}%")
    else:
        weights = ", ".join(str(_WEIGHTS[field]) for field in words.FIELDS)
        names = (
            " UNION ALL SELECT s.image_id, 0.0 FROM image_search_names "
            "JOIN image_search AS s ON s.id = image_search_names.rowid "
            "WHERE image_search_names MATCH :part AND s.user_id = :user"
            if part
            else ""
        )
        # Materialized: bm25() must run in the query that MATCHes, which SQLite would
        # otherwise fold into the grouping one (where it cannot run).
        statement = text(
            "WITH hits AS MATERIALIZED ("  # noqa: S608
            f"SELECT s.image_id AS image_id, -bm25(image_search_fts, {weights}) AS score "
            "FROM image_search_fts JOIN image_search AS s ON s.id = image_search_fts.rowid "
            f"WHERE image_search_fts MATCH :match AND s.user_id = :user{names}"
            ") SELECT image_id, max(score) AS score FROM hits GROUP BY image_id"
        ).bindparams(match=query.fts5())
        if part:
            statement = statement.bindparams(part=f'"{part}"')
    statement = statement.bindparams(bindparam("user", user.id, type_=Uuid()))
    return statement.columns(column("image_id", Uuid()), column("score", Float())).subquery()


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
    """A page of the owner's images that match, best first (the id breaks ties), and the
    cursor of the next page (None on the last)."""
    ranked = _ranked(session, user, query)
    score = ranked.c.score
    statement = filtered(
        select(Image, score).join(ranked, ranked.c.image_id == Image.id), user, filters
    )
    order = _order(query, filters)
    if cursor is not None:
        try:
            after = pagination.decode(cursor, order, float)
        except InvalidCursor:
            raise InvalidCursor(
                "This cursor is not one of this search's: ask again with the same q and "
                "filters as the page it came from, or start from the first page."
            ) from None
        statement = statement.where(
            or_(score < after.value, and_(score == after.value, Image.id > after.id))
        )
    ordered = statement.order_by(score.desc(), Image.id).limit(limit + 1)
    found: list[tuple[Image, float]] = [
        (image, float(value)) for image, value in await session.execute(ordered)
    ]
    next_cursor = None
    if len(found) > limit:
        found = found[:limit]
        last, last_score = found[-1]
        next_cursor = pagination.encode(order, last_score, last.id)
    images = [image for image, _ in found]
    texts = await searchable_texts(session, [image.id for image in images])
    hits = []
    for image, hit_score in found:
        shown = words.shown_fields(
            image.original_filename, image.tag_names, image.description, texts.get(image.id, {})
        )
        matches = []
        for field in words.FIELDS:
            fragments = words.snippet(shown[field], query, part=field == "filename")
            if fragments:
                matches.append(Match(field, fragments))
        hits.append(Hit(image, hit_score, matches))
    return hits, next_cursor
