"""An image's words in the search index, rewritten in the transaction that changes them: its
upload, its edit, the recording of its analysis' results."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

from sqlalchemy import Select, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from iap.analysis.models import AnalysisResult
from iap.finding import words
from iap.finding.models import ImageSearch
from iap.images.models import Image


def is_postgres(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"


def shown_of(image: Image, analysed: dict[str, str]) -> dict[str, str]:
    """An image's searchable fields as the owner reads them, with its analysed texts."""
    return words.shown_fields(image.original_filename, image.tag_names, image.description, analysed)


async def reindex(session: AsyncSession, image: Image, *, analysed: bool = True) -> None:
    """Write ``image``'s row of the index from its fields, tags and (``analysed``) newest
    succeeded text and EXIF results, in the caller's transaction.

    On PostgreSQL the row is locked first, and the sources are read after: of an edit and an
    analysis recorded at once, the second to write reads what the first committed."""
    await session.flush()  # the image row (and its tags) first, as every writer takes them
    analysed_texts: dict[str, str] = {}
    if analysed:
        await session.execute(
            select(ImageSearch.id).where(ImageSearch.image_id == image.id).with_for_update()
        )
        await session.refresh(image, ["original_filename", "description", "tags"])
        analysed_texts = (await searchable_texts(session, [image.id])).get(image.id, {})
    fields = words.indexed_fields(shown_of(image, analysed_texts))
    dialect_insert = postgresql.insert if is_postgres(session) else sqlite.insert
    statement = dialect_insert(ImageSearch).values(
        image_id=image.id, user_id=image.user_id, **fields
    )
    await session.execute(
        statement.on_conflict_do_update(index_elements=[ImageSearch.image_id], set_=fields)
    )


def _unindexed() -> Select[Image]:
    return (
        select(Image)
        .outerjoin(ImageSearch, ImageSearch.image_id == Image.id)
        .where(ImageSearch.id.is_(None))
    )


async def unindexed(session: AsyncSession) -> int:
    """How many images have no row in the index."""
    return await session.scalar(select(func.count()).select_from(_unindexed().subquery())) or 0


async def index_missing(
    session: AsyncSession, on_batch: Callable[[int], object] = lambda _: None, batch: int = 500
) -> int:
    """Index every image that has no row (after an import, which leaves the index out), a
    batch per transaction, in id order (each batch seeks past the one before); returns how
    many were indexed."""
    indexed = 0
    after: uuid.UUID | None = None
    while True:
        query = _unindexed().order_by(Image.id).limit(batch)
        if after is not None:
            query = query.where(Image.id > after)
        images = list(await session.scalars(query))
        if not images:
            return indexed
        after = images[-1].id
        texts = await searchable_texts(session, [image.id for image in images])
        rows = [
            {
                "image_id": image.id,
                "user_id": image.user_id,
                **words.indexed_fields(shown_of(image, texts.get(image.id, {}))),
            }
            for image in images
        ]
        await session.execute(insert(ImageSearch), rows)
        await session.commit()
        indexed += len(rows)
        on_batch(len(rows))


async def searchable_texts(
    session: AsyncSession, image_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, str]]:
    """Per image, the searchable text of its newest succeeded text and EXIF results."""
    found: dict[uuid.UUID, dict[str, str]] = {}
    rows = await session.execute(
        select(AnalysisResult.image_id, AnalysisResult.analyser, AnalysisResult.result)
        .where(
            AnalysisResult.image_id.in_(image_ids),
            AnalysisResult.analyser.in_(words.ANALYSED),
            AnalysisResult.status == "succeeded",
        )
        .order_by(AnalysisResult.version)  # the newest last, so it stays
    )
    for image_id, analyser, result in rows:
        field = words.ANALYSED[analyser]
        found.setdefault(image_id, {})[field] = words.analysed_text(analyser, result)
    return found
