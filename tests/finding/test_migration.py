"""Migration 0005 indexes the hashes of images analysed before it, and groups their
look-alikes, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from iap import migrations
from iap.analysis.models import AnalysisResult
from iap.auth.models import User
from iap.db import create_engine
from iap.finding import service as finding
from iap.finding.likeness import to_int
from iap.finding.models import ImageHash
from iap.images.models import Image

ORIGINAL = "c3d1e0f0a5a5f00f"
NEAR = "c3d1e0f0a5a5f00c"  # 2 bits away
FAR = "3c2e1f0f5a5a0ff0"


def _image(owner: uuid.UUID, n: int) -> Image:
    return Image(
        user_id=owner,
        original_filename=f"{n}.jpg",
        file_type="image/jpeg",
        format="jpeg",
        width=10,
        height=10,
        file_size=100,
        sha256=f"{n:064x}",
        storage_key=f"originals/{uuid.uuid4()}",
    )


def _hashes(
    image: Image, phash: str, status: str = "succeeded", version: int = 1
) -> AnalysisResult:
    result = {
        "phash": phash,
        "dhash": "0123456789abcdef",
        "blurhash": "L00000fQfQfQfQfQfQfQfQfQfQfQ",
    }
    return AnalysisResult(
        image_id=image.id, analyser="hashes", version=version, status=status, result=result
    )


async def old_images(session: AsyncSession) -> tuple[User, dict[str, Image]]:
    """An owner with images a-d and another user with one ("theirs"), as before a migration
    (flushed: their ids are known)."""
    owner = User(username="old", email="old@example.com", password_hash="x")
    stranger = User(username="other", email="other@example.com", password_hash="x")
    session.add_all([owner, stranger])
    await session.flush()
    images = {name: _image(owner.id, n) for n, name in enumerate("abcd")}
    images["theirs"] = _image(stranger.id, 9)
    return owner, images


Found = tuple[dict[str, int], list[set[str]]]


async def _migrate(url: str) -> Found:
    engine = create_engine(url)
    try:
        await migrations.upgrade(engine, "0004")
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        async with sessions() as session:
            _, images = await old_images(session)
            session.add_all(images.values())
            await session.flush()
            session.add_all(
                [
                    _hashes(images["a"], FAR, version=0),  # an older version: the newest counts
                    _hashes(images["a"], ORIGINAL),
                    _hashes(images["b"], NEAR),
                    _hashes(images["c"], FAR),
                    _hashes(images["d"], ORIGINAL, status="failed"),
                    _hashes(images["theirs"], ORIGINAL),
                ]
            )
            await session.commit()
        await migrations.upgrade(engine)
        async with sessions() as session:
            names = {image.id: name for name, image in images.items()}
            rows = list(await session.scalars(select(ImageHash)))
        hashes = {names[row.image_id]: row.phash for row in rows}
        groups: dict[uuid.UUID, set[str]] = {}
        for row in rows:
            if row.near_group is not None:
                groups.setdefault(row.near_group, set()).add(names[row.image_id])
        return hashes, list(groups.values())
    finally:
        await engine.dispose()


def _check(found: Found) -> None:
    hashes, groups = found
    assert hashes == {
        "a": to_int(ORIGINAL),
        "b": to_int(NEAR),
        "c": to_int(FAR),
        "theirs": to_int(ORIGINAL),
    }
    assert groups == [{"a", "b"}]  # never across owners, never the far one


def test_migration_indexes_existing_hashes_on_sqlite(tmp_path: Path) -> None:
    _check(asyncio.run(_migrate(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")))


def test_migration_indexes_existing_hashes_on_postgresql(fresh_postgres: str) -> None:
    url = fresh_postgres.replace("postgresql://", "postgresql+asyncpg://", 1)
    _check(asyncio.run(_migrate(url)))


# Groups as analyses arrive -------------------------------------------------------------------


def _flipped(hex_digest: str, *bits: int) -> str:
    value = int(hex_digest, 16)
    for bit in bits:
        value ^= 1 << bit
    return f"{value:016x}"


async def _group_as_recorded(url: str) -> tuple[list[set[str]], ...]:
    """Left and right are 16 bits apart (two groups) until a bridge 8 bits from each joins
    them; a far image stays alone; a re-recorded image keeps to its group."""
    engine = create_engine(url)
    try:
        await migrations.upgrade(engine)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        left = ORIGINAL
        right = _flipped(left, *range(16))
        bridge = _flipped(left, *range(8))
        order = [
            ("left", left),
            ("left copy", _flipped(left, 63)),
            ("right", right),
            ("right copy", _flipped(right, 62)),
            ("far", FAR),
            ("bridge", bridge),
            ("left", left),  # analysed again
        ]
        async with sessions() as session:
            owner = User(username="new", email="new@example.com", password_hash="x")
            session.add(owner)
            await session.flush()
            images = {name: _image(owner.id, n) for n, (name, _) in enumerate(order[:-1])}
            session.add_all(images.values())
            await session.commit()
        names = {image.id: name for name, image in images.items()}
        seen: list[list[set[str]]] = []
        for name, phash in order:
            async with sessions() as session:
                result = {"phash": phash, "dhash": phash}
                await finding.index_hashes(session, images[name].id, owner.id, result)
                await session.commit()
                groups: dict[uuid.UUID, set[str]] = {}
                for row in await session.scalars(select(ImageHash)):
                    if row.near_group is not None:
                        groups.setdefault(row.near_group, set()).add(names[row.image_id])
                seen.append(sorted(groups.values(), key=sorted))
        return seen[3], seen[5], seen[6]
    finally:
        await engine.dispose()


def _check_groups(found: tuple[list[set[str]], ...]) -> None:
    before, bridged, again = found
    assert before == [{"left", "left copy"}, {"right", "right copy"}]
    everything = {"left", "left copy", "right", "right copy", "bridge"}
    assert bridged == [everything]
    assert again == [everything]


def test_groups_merge_when_a_bridge_arrives_on_sqlite(tmp_path: Path) -> None:
    _check_groups(asyncio.run(_group_as_recorded(f"sqlite+aiosqlite:///{tmp_path / 'g.db'}")))


def test_groups_merge_when_a_bridge_arrives_on_postgresql(fresh_postgres: str) -> None:
    url = fresh_postgres.replace("postgresql://", "postgresql+asyncpg://", 1)
    _check_groups(asyncio.run(_group_as_recorded(url)))
