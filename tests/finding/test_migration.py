"""Migration 0005 indexes the hashes of images analysed before it, and pairs their look-alikes,
on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from iap import migrations
from iap.analysis.models import AnalysisResult
from iap.auth.models import User
from iap.db import create_engine
from iap.finding.likeness import to_int
from iap.finding.models import ImageHash, NearPair
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


Found = tuple[dict[str, int], set[tuple[str, str, int]]]


async def _migrate(url: str) -> Found:
    engine = create_engine(url)
    try:
        await migrations.upgrade(engine, "0004")
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        async with sessions() as session:
            owner = User(username="old", email="old@example.com", password_hash="x")
            stranger = User(username="other", email="other@example.com", password_hash="x")
            session.add_all([owner, stranger])
            await session.flush()
            images = {name: _image(owner.id, n) for n, name in enumerate(["a", "b", "c", "d"])}
            images["theirs"] = _image(stranger.id, 9)
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
            hashes = {
                names[row.image_id]: row.phash for row in await session.scalars(select(ImageHash))
            }
            pairs = set()
            for pair in await session.scalars(select(NearPair)):
                first, second = sorted((names[pair.first_id], names[pair.second_id]))
                pairs.add((first, second, pair.distance))
        return hashes, pairs
    finally:
        await engine.dispose()


def _check(found: Found) -> None:
    hashes, pairs = found
    assert hashes == {
        "a": to_int(ORIGINAL),
        "b": to_int(NEAR),
        "c": to_int(FAR),
        "theirs": to_int(ORIGINAL),
    }
    assert pairs == {("a", "b", 2)}  # never across owners, never the far one


def test_migration_indexes_existing_hashes_on_sqlite(tmp_path: Path) -> None:
    _check(asyncio.run(_migrate(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")))


def test_migration_indexes_existing_hashes_on_postgresql(fresh_postgres: str) -> None:
    url = fresh_postgres.replace("postgresql://", "postgresql+asyncpg://", 1)
    _check(asyncio.run(_migrate(url)))
