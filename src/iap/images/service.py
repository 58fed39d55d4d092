"""Image logic: store an upload, read, list, edit and delete images, clean up orphans.

Consistency rule: a database row never points at a missing blob. Uploads store the blob first
and insert the rows (image + analysis job) in one transaction after; if that fails the blob is
removed, and anything a crash leaves behind is swept by ``sweep_orphan_blobs``. Deletes remove
the rows first and the blob after, for the same reason.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, BinaryIO, TypeVar

from sqlalchemy import ColumnElement, Select, delete, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from iap.analysis.models import AnalysisJob, JobStatus
from iap.auth.models import User
from iap.cache import Cache
from iap.db import utcnow
from iap.finding.indexing import reindex
from iap.images import pagination
from iap.images.errors import ImageNotFound, NotImageOwner
from iap.images.inspection import ImageFacts
from iap.images.models import Image, ImageTag
from iap.images.schemas import ImageOut, SortKey
from iap.people.models import Face, Person
from iap.people.service import lock_people, prune_people
from iap.storage import BlobStorage, StorageUnavailable

log = logging.getLogger(__name__)

AnySelect = TypeVar("AnySelect", bound=Select[Any])

ORIGINALS = "originals/"
DERIVATIVES = "derivatives/"


def original_key(image_id: uuid.UUID) -> str:
    return f"{ORIGINALS}{image_id}"


def derivatives_prefix(image_id: uuid.UUID) -> str:
    """Where the analysis keeps files made from an image (thumbnails, previews)."""
    return f"{DERIVATIVES}{image_id}/"


def _cache_key(image_id: uuid.UUID) -> str:
    return f"image:{image_id}"


async def create_image(
    session: AsyncSession,
    storage: BlobStorage,
    *,
    owner: User,
    source: BinaryIO,
    facts: ImageFacts,
    filename: str,
    tags: list[str],
    description: str | None,
) -> Image:
    """Store the original under a new UUID, then describe it and queue its analysis."""
    image_id = uuid.uuid4()
    key = original_key(image_id)
    await storage.put(key, source, facts.mime_type)
    now = utcnow()
    image = Image(
        id=image_id,
        user_id=owner.id,
        original_filename=filename,
        file_type=facts.mime_type,
        format=facts.format,
        width=facts.width,
        height=facts.height,
        file_size=facts.file_size,
        sha256=facts.sha256,
        storage_key=key,
        description=description,
        upload_date=now,
        last_modified=now,
        tags=[ImageTag(tag=tag) for tag in tags],
        job=AnalysisJob(status=JobStatus.QUEUED, queued_at=now),
    )
    session.add(image)
    try:
        await reindex(session, image, analysed=False)
        await session.commit()
    except BaseException:
        await session.rollback()
        await delete_blob_quietly(storage, key)
        raise
    return image


async def delete_image_files(storage: BlobStorage, image_id: uuid.UUID, key: str) -> None:
    """The original and every derivative of an image, best effort."""
    await delete_blob_quietly(storage, key)
    try:
        derived = [blob.key async for blob in storage.list(derivatives_prefix(image_id))]
    except Exception as exc:
        log.warning("could not list derivatives of %s (%s)", image_id, exc)
        return
    for derived_key in derived:
        await delete_blob_quietly(storage, derived_key)


async def delete_blob_quietly(storage: BlobStorage, key: str) -> None:
    """Best effort: a blob that cannot be removed now is left for the orphan sweep."""
    try:
        await storage.delete(key)
    except Exception as exc:
        log.warning("could not delete blob %s now (%s); the orphan sweep will", key, exc)


async def get_owned_image(session: AsyncSession, user: User, image_id: uuid.UUID) -> Image:
    image = await session.get(Image, image_id)
    if image is None:
        raise ImageNotFound()
    if image.user_id != user.id:
        raise NotImageOwner()
    return image


async def read_image(
    session: AsyncSession, cache: Cache, user: User, image_id: uuid.UUID, ttl: int
) -> ImageOut:
    """An image's metadata, from the cache when it is there. The owner check runs either way."""
    key = _cache_key(image_id)
    cached = await cache.get(key)
    if cached is not None:
        out = ImageOut.model_validate_json(cached)
        if out.user_id != user.id:
            raise NotImageOwner()
        return out
    lease = await cache.lease(key)  # before reading: a change after this voids the fill
    out = ImageOut.model_validate(await get_owned_image(session, user, image_id))
    await cache.fill(key, out.model_dump_json(), ttl, lease)
    return out


async def invalidate(cache: Cache, *image_ids: uuid.UUID) -> None:
    await cache.delete(*(_cache_key(image_id) for image_id in image_ids))


@dataclass(frozen=True)
class ImageFilters:
    status: JobStatus | None = None
    tags: list[str] = field(default_factory=list)
    format: str | None = None
    uploaded_after: datetime | None = None
    uploaded_before: datetime | None = None
    text: str | None = None


_FORMAT_ALIASES = {"jpg": "jpeg", "jpe": "jpeg", "tif": "tiff", "heic": "heif"}

_SORTS = {
    SortKey.UPLOAD_DATE: (Image.upload_date, False),
    SortKey.UPLOAD_DATE_DESC: (Image.upload_date, True),
    SortKey.FILENAME: (func.lower(Image.original_filename), False),
    SortKey.FILENAME_DESC: (func.lower(Image.original_filename), True),
    SortKey.FILE_SIZE: (Image.file_size, False),
    SortKey.FILE_SIZE_DESC: (Image.file_size, True),
}


def filtered(query: AnySelect, user: User, filters: ImageFilters) -> AnySelect:
    """``query`` (of images) narrowed to the user's and to the filters."""
    query = query.where(Image.user_id == user.id)
    if filters.status is not None:
        query = query.join(AnalysisJob, AnalysisJob.image_id == Image.id).where(
            AnalysisJob.status == filters.status
        )
    for tag in filters.tags:
        query = query.where(
            Image.id.in_(select(ImageTag.image_id).where(ImageTag.tag == tag.strip().lower()))
        )
    if filters.format:
        wanted = filters.format.strip().lower().removeprefix("image/")
        wanted = _FORMAT_ALIASES.get(wanted, wanted)
        query = query.where(func.lower(Image.format) == wanted)
    if filters.uploaded_after is not None:
        query = query.where(Image.upload_date >= filters.uploaded_after)
    if filters.uploaded_before is not None:
        query = query.where(Image.upload_date < filters.uploaded_before)
    if filters.text:
        needle = filters.text.strip().lower()
        query = query.where(
            func.lower(Image.original_filename).contains(needle, autoescape=True)
            | func.lower(func.coalesce(Image.description, "")).contains(needle, autoescape=True)
            | Image.id.in_(
                select(ImageTag.image_id).where(ImageTag.tag.contains(needle, autoescape=True))
            )
        )
    return query


@dataclass(frozen=True)
class ImageList:
    """One page of a list: ``total`` is counted for numbered pages only (a cursor page skips
    the count, which costs as much as reading every matching row); ``next_cursor`` is None
    on the last page."""

    rows: list[Image]
    total: int | None
    next_cursor: str | None


async def list_images(
    session: AsyncSession,
    user: User,
    filters: ImageFilters,
    *,
    page: int = 1,
    limit: int,
    sort: SortKey = SortKey.UPLOAD_DATE_DESC,
    cursor: str | None = None,
) -> ImageList:
    """One page of the user's images, in a stable order (the id breaks every tie): page
    number ``page`` (an OFFSET, for the seed's ``skip``), or the page after ``cursor`` (keyset:
    an index seek to the last row seen, as cheap deep in the list as on its first page)."""
    base = filtered(select(Image), user, filters)
    column, descending = _SORTS[sort]
    order = (column.desc(), Image.id.desc()) if descending else (column.asc(), Image.id.asc())
    query = base.order_by(*order).limit(limit + 1)
    total: int | None = None
    if cursor is not None:
        after = pagination.decode(cursor, sort.value, _CURSOR_TYPES[sort])
        # A row value (both databases seek their (user, sort, id) index with it); each value
        # is bound with its column's type.
        key, seen = tuple_(column, Image.id), (after.value, after.id)
        query = query.where(key < seen if descending else key > seen)
    else:
        total = await session.scalar(select(func.count()).select_from(base.subquery())) or 0
        query = query.offset((page - 1) * limit)
    # The sort value as the database has it (its lower() is not Python's), for the cursor.
    found = [(image, value) for image, value in await session.execute(query.add_columns(column))]
    next_cursor = None
    if len(found) > limit:
        found = found[:limit]
        last, value = found[-1]
        next_cursor = pagination.encode(sort.value, value, last.id)
    return ImageList(rows=[image for image, _ in found], total=total, next_cursor=next_cursor)


_CURSOR_TYPES: dict[SortKey, type] = {
    SortKey.UPLOAD_DATE: datetime,
    SortKey.UPLOAD_DATE_DESC: datetime,
    SortKey.FILENAME: str,
    SortKey.FILENAME_DESC: str,
    SortKey.FILE_SIZE: int,
    SortKey.FILE_SIZE_DESC: int,
}


async def update_image(
    session: AsyncSession,
    cache: Cache,
    user: User,
    image_id: uuid.UUID,
    *,
    filename: str | None,
    tags: list[str] | None,
    description: str | None,
    description_set: bool,
) -> Image:
    image = await get_owned_image(session, user, image_id)
    if filename is not None:
        image.original_filename = filename
    if tags is not None:
        image.tags = [ImageTag(tag=tag) for tag in tags]
    if description_set:
        image.description = description
    image.last_modified = utcnow()
    await reindex(session, image)
    await session.commit()
    await invalidate(cache, image.id)
    await session.refresh(image, ["tags", "job"])
    return image


async def delete_image(
    session: AsyncSession, storage: BlobStorage, cache: Cache, user: User, image_id: uuid.UUID
) -> None:
    """Delete the row (its job, results and tags go with it through the foreign keys), then its
    cache entries and files. Of parallel deletes of one image exactly one deletes it; the others
    find no image (404), like a delete after it."""
    image = await get_owned_image(session, user, image_id)
    key = image.storage_key
    # PostgreSQL: a parallel delete holding the row makes this wait, then find it gone.
    if not await lock_images(session, Image.id == image.id):
        raise ImageNotFound()
    await lock_people(session, user.id)  # no grouping places its faces meanwhile
    in_image = list(
        await session.scalars(
            select(Face.person_id).where(Face.image_id == image.id, Face.person_id.is_not(None))
        )
    )
    deleted = await session.execute(delete(Image).where(Image.id == image.id))
    if deleted.rowcount != 1:  # type: ignore[attr-defined]  # SQLite: the other one won
        await session.rollback()
        raise ImageNotFound()
    # Its faces went with it (foreign keys): so do the people they were the last of.
    await prune_people(session, Person.id.in_(in_image))
    await session.commit()
    await invalidate(cache, image_id)
    await delete_image_files(storage, image_id, key)


async def lock_images(
    session: AsyncSession, where: ColumnElement[bool]
) -> list[tuple[uuid.UUID, str]]:
    """Lock the image rows about to be deleted, before anything else. Deleting an image first
    deletes its job row (the ORM cascade) and then the image; a worker recording results holds
    the image (its new result rows point at it) and then updates the job: the opposite order,
    and a deadlock. Taking the image rows first puts both in the same order. (SQLite, which
    has one writer at a time, ignores the lock.)"""
    rows = await session.execute(
        select(Image.id, Image.storage_key).where(where).order_by(Image.id).with_for_update()
    )
    return [(image_id, key) for image_id, key in rows]


async def purge_user_images(
    session: AsyncSession, storage: BlobStorage, cache: Cache, user: User
) -> None:
    """Delete a user's account row and, through it, every image row, tag and job (the foreign
    keys cascade); then their cache entries and blobs, once the rows are gone for good."""
    rows = await lock_images(session, Image.user_id == user.id)
    await session.delete(user)
    await session.commit()
    await invalidate(cache, *(image_id for image_id, _ in rows))
    for image_id, key in rows:
        await delete_image_files(storage, image_id, key)


async def sweep_orphan_blobs(
    session: AsyncSession, storage: BlobStorage, *, older_than: timedelta, batch: int = 500
) -> int:
    """Delete blobs no image row references and that are older than the grace period
    (younger ones may belong to an upload or analysis still in flight): originals whose row is
    missing, and derivatives of images that no longer exist. Returns how many went."""
    cutoff = utcnow() - older_than
    removed = 0
    for prefix, column in ((ORIGINALS, Image.storage_key), (DERIVATIVES, Image.id)):
        candidates: dict[str, Any] = {}  # blob key -> the value that would reference it
        async for blob in storage.list(prefix):
            if blob.modified > cutoff:
                continue
            reference = _reference_of(blob.key, prefix)
            if reference is not None:
                candidates[blob.key] = reference
            if len(candidates) >= batch:
                removed += await _delete_unreferenced(session, storage, column, candidates)
                candidates = {}
        if candidates:
            removed += await _delete_unreferenced(session, storage, column, candidates)
    if removed:
        log.info("removed %d orphan blob(s)", removed)
    return removed


@dataclass(frozen=True)
class Swept:
    orphans: int  # blobs no image references
    leftovers: int  # partial files, empty folders, abandoned uploads


async def sweep_storage(
    session: AsyncSession, storage: BlobStorage, *, older_than: timedelta
) -> Swept:
    """Everything the store holds that nothing needs any more, older than the grace period:
    orphan blobs (``sweep_orphan_blobs``), then what interrupted writes left behind."""
    orphans = await sweep_orphan_blobs(session, storage, older_than=older_than)
    try:
        leftovers = await storage.sweep_leftovers(utcnow() - older_than)
    except StorageUnavailable as exc:  # e.g. an S3 look-alike without multipart listings
        log.warning("could not sweep leftovers of interrupted writes (%s)", exc.detail)
        leftovers = 0
    if leftovers:
        log.info("removed %d leftover(s) of interrupted writes", leftovers)
    return Swept(orphans, leftovers)


def _reference_of(key: str, prefix: str) -> Any:
    if prefix == ORIGINALS:
        return key
    try:  # derivatives/<image id>/<name>
        return uuid.UUID(key.removeprefix(prefix).split("/", 1)[0])
    except ValueError:
        return None


async def _delete_unreferenced(
    session: AsyncSession, storage: BlobStorage, column: Any, candidates: dict[str, Any]
) -> int:
    known = set(await session.scalars(select(column).where(column.in_(set(candidates.values())))))
    orphans = [key for key, reference in candidates.items() if reference not in known]
    for key in orphans:
        await delete_blob_quietly(storage, key)
    return len(orphans)
