"""Finding an owner's images by likeness: near-duplicates of one image by perceptual hash
(multi-index hashing, so a lookup reads the few rows that share a band rather than every
row), and groups of duplicates, byte-identical (SHA-256) or near (pHash distance).

The hashes are indexed in the transaction that records the analysis (``index_hashes``), and
the new image joins (or merges) its look-alikes' near-duplicate group there: a page of groups
is then an index read, never a comparison of every image with every other at request time."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ARRAY, Integer, any_, delete, func, literal, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from iap.auth.models import User
from iap.finding import likeness
from iap.finding.indexing import is_postgres
from iap.finding.models import ImageHash
from iap.images import pagination
from iap.images.errors import InvalidCursor
from iap.images.models import Image

_BANDS = (ImageHash.band0, ImageHash.band1, ImageHash.band2, ImageHash.band3)


async def index_hashes(
    session: AsyncSession, image_id: uuid.UUID, user_id: uuid.UUID, result: dict[str, Any]
) -> None:
    """Record (or replace) an image's hashes and put it in its look-alikes' group, in the caller's
    transaction.

    On PostgreSQL the owner's recordings take turns (a transaction-scoped advisory lock), so
    that two look-alike images recorded at once each see the other; SQLite has one writer at
    a time anyway."""
    phash, dhash = likeness.to_int(result["phash"]), likeness.to_int(result["dhash"])
    if is_postgres(session):
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(user_id)}
        )
    await session.execute(delete(ImageHash).where(ImageHash.image_id == image_id))
    b = likeness.bands(phash)
    row = ImageHash(
        image_id=image_id,
        user_id=user_id,
        phash=phash,
        dhash=dhash,
        band0=b[0],
        band1=b[1],
        band2=b[2],
        band3=b[3],
    )
    near = await _within(session, user_id, image_id, phash, likeness.DUPLICATE_DISTANCE)
    if near:
        # An image being deleted right now (locked for it) is left out rather than waited
        # for, which could deadlock with an account's deletion.
        alive = set(
            await session.scalars(
                select(Image.id)
                .where(Image.id.in_([other for other, _ in near]))
                .with_for_update(read=True, key_share=True, skip_locked=True)
            )
        )
        if alive:
            row.near_group = await _join_groups(session, user_id, image_id, alive)
    session.add(row)


async def _join_groups(
    session: AsyncSession, user_id: uuid.UUID, image_id: uuid.UUID, neighbours: set[uuid.UUID]
) -> uuid.UUID:
    """One group for the new image and its look-alikes: the groups they are in merge into
    the first of them (by id), or the new image starts one; returns its id."""
    found = await session.execute(
        select(ImageHash.image_id, ImageHash.near_group).where(ImageHash.image_id.in_(neighbours))
    )
    members = {other: group for other, group in found}
    existing = sorted({group for group in members.values() if group is not None}, key=str)
    group = existing[0] if existing else image_id
    ungrouped = [other for other, g in members.items() if g is None]
    if ungrouped:
        await session.execute(
            update(ImageHash).where(ImageHash.image_id.in_(ungrouped)).values(near_group=group)
        )
    if len(existing) > 1:
        await session.execute(
            update(ImageHash)
            .where(ImageHash.user_id == user_id, ImageHash.near_group.in_(existing[1:]))
            .values(near_group=group)
        )
    return group


def _lock_key(user_id: uuid.UUID) -> int:
    return int.from_bytes(user_id.bytes[:8], "big", signed=True)


async def _within(
    session: AsyncSession, user_id: uuid.UUID, image_id: uuid.UUID, phash: int, most: int
) -> list[tuple[uuid.UUID, int]]:
    """The owner's other images whose pHash is within ``most`` of ``phash``, nearest first."""
    values = likeness.band_values(phash, most)
    postgres = is_postgres(session)
    rows = await session.execute(
        select(ImageHash.image_id, ImageHash.phash).where(
            ImageHash.user_id == user_id,
            ImageHash.image_id != image_id,
            or_(
                *(
                    # PostgreSQL plans one array parameter far faster than hundreds of
                    # IN parameters; either way each band's index is searched.
                    band == any_(literal(wanted, ARRAY(Integer))) if postgres else band.in_(wanted)
                    for band, wanted in zip(_BANDS, values, strict=True)
                )
            ),
        )
    )
    found = [(other, likeness.distance(phash, value)) for other, value in rows]
    return sorted(
        ((other, d) for other, d in found if d <= most), key=lambda pair: (pair[1], str(pair[0]))
    )


async def similar(
    session: AsyncSession, user: User, image: Image, *, limit: int, max_distance: int
) -> list[tuple[Image, int]] | None:
    """The owner's images nearest ``image`` by pHash, within ``max_distance``, nearest first
    (the id breaks ties); None when the image has no hashes yet."""
    own = await session.get(ImageHash, image.id)
    if own is None:
        return None
    near = (await _within(session, user.id, image.id, own.phash, max_distance))[:limit]
    images = await _images(session, user, [other for other, _ in near])
    return [(images[other], d) for other, d in near if other in images]


async def _images(
    session: AsyncSession, user: User, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Image]:
    if not ids:
        return {}
    rows = await session.scalars(select(Image).where(Image.user_id == user.id, Image.id.in_(ids)))
    return {image.id: image for image in rows}


@dataclass(frozen=True)
class Member:
    image: Image
    distance: int | None  # pHash distance to the keeper; None without hashes
    same_bytes: bool  # byte-identical to the keeper


@dataclass(frozen=True)
class Group:
    kind: str
    keep: Image
    members: list[Member]


def keeper(images: Sequence[Image]) -> Image:
    """The one to keep: the most pixels, then the largest file, then the oldest upload."""
    return min(
        images,
        key=lambda i: (-(i.width * i.height), -i.file_size, i.upload_date, str(i.id)),
    )


async def duplicate_groups(
    session: AsyncSession, user: User, *, kind: str, limit: int, cursor: str | None
) -> tuple[list[Group], str | None]:
    """A page of the owner's duplicate groups, in a stable order, and the next page's cursor.

    ``exact``: images with the same SHA-256 (found from upload on, analysed or not). ``near``:
    the near-duplicate groups (pHash within ``DUPLICATE_DISTANCE``, single linkage;
    byte-identical copies are among them once analysed). A deleted image leaves its group
    as it was: the others stay together even if it was what joined them."""
    after = pagination.decode_key(cursor, f"duplicates-{kind}") if cursor is not None else None
    if kind == "exact":
        keyed = await _exact_page(session, user, after, limit + 1)
    else:
        keyed = await _near_page(session, user, after, limit + 1)
    more = len(keyed) > limit
    keyed = keyed[:limit]
    wanted = [image_id for _, ids in keyed for image_id in ids]
    images = await _images(session, user, wanted)
    hashes = {
        row.image_id: row.phash
        for row in await session.scalars(select(ImageHash).where(ImageHash.image_id.in_(wanted)))
    }
    page: list[Group] = []
    for _, ids in keyed:
        found = [images[i] for i in ids if i in images]
        if len(found) < 2:
            continue
        keep = keeper(found)
        members = []
        for image in sorted(found, key=lambda i: (i.id != keep.id, i.upload_date, str(i.id))):
            a, b = hashes.get(keep.id), hashes.get(image.id)
            members.append(
                Member(
                    image=image,
                    distance=likeness.distance(a, b) if a is not None and b is not None else None,
                    same_bytes=image.sha256 == keep.sha256,
                )
            )
        page.append(Group(kind=kind, keep=keep, members=members))
    next_cursor = pagination.encode_key(f"duplicates-{kind}", keyed[-1][0]) if more else None
    return page, next_cursor


async def _exact_page(
    session: AsyncSession, user: User, after: str | None, limit: int
) -> list[tuple[str, list[uuid.UUID]]]:
    query = (
        select(Image.sha256)
        .where(Image.user_id == user.id)
        .group_by(Image.sha256)
        .having(func.count() > 1)
        .order_by(Image.sha256)
        .limit(limit)
    )
    if after is not None:
        query = query.where(Image.sha256 > after)
    digests = list(await session.scalars(query))
    if not digests:
        return []
    rows = await session.execute(
        select(Image.sha256, Image.id).where(Image.user_id == user.id, Image.sha256.in_(digests))
    )
    members: dict[str, list[uuid.UUID]] = {digest: [] for digest in digests}
    for digest, image_id in rows:
        members[digest].append(image_id)
    return list(members.items())


async def _near_page(
    session: AsyncSession, user: User, after: str | None, limit: int
) -> list[tuple[str, list[uuid.UUID]]]:
    grouped = ImageHash.near_group
    query = (
        select(grouped)
        .where(ImageHash.user_id == user.id, grouped.is_not(None))
        .group_by(grouped)
        .having(func.count() > 1)
        .order_by(grouped)
        .limit(limit)
    )
    if after is not None:
        query = query.where(grouped > _group_id(after))
    groups = list(await session.scalars(query))
    if not groups:
        return []
    rows = await session.execute(
        select(grouped, ImageHash.image_id).where(ImageHash.user_id == user.id, grouped.in_(groups))
    )
    members: dict[uuid.UUID, list[uuid.UUID]] = {group: [] for group in groups if group}
    for group, image_id in rows:
        if group is not None:
            members[group].append(image_id)
    return [(str(group), ids) for group, ids in members.items()]


def _group_id(key: str) -> uuid.UUID:
    try:
        return uuid.UUID(key)
    except ValueError:
        raise InvalidCursor() from None
