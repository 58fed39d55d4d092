"""Migration 0006 indexes the images there were before it (their fields, tags, and newest
succeeded text and EXIF results), on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from iap import migrations
from iap.analysis.models import AnalysisResult
from iap.auth.models import User
from iap.db import create_engine
from iap.finding import search, words
from iap.images.models import Image, ImageTag
from iap.images.service import ImageFilters
from tests.finding.test_migration import old_images


def _result(image: Image, analyser: str, result: dict[str, Any], **fields: Any) -> AnalysisResult:
    values = {"version": 1, "status": "succeeded"} | fields
    return AnalysisResult(image_id=image.id, analyser=analyser, result=result, **values)


async def _migrate(url: str) -> dict[str, list[str]]:
    engine = create_engine(url)
    try:
        await migrations.upgrade(engine, "0005")
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        async with sessions() as session:
            owner, images = await old_images(session)
            images["a"].description = "Crème brûlée"
            session.add_all(images.values())
            await session.flush()
            session.add_all(
                [
                    ImageTag(image_id=images["b"].id, tag="sunset"),
                    _result(images["a"], "text", {"full_text": "florist"}, version=0),
                    _result(images["a"], "text", {"full_text": "Bakery open"}),
                    _result(images["b"], "exif", {"make": "NIKON", "model": "Z 6", "x": 1}),
                    _result(images["c"], "text", {"full_text": "bakery"}, status="failed"),
                    _result(images["theirs"], "text", {"full_text": "bakery"}),
                ]
            )
            await session.commit()
        await migrations.upgrade(engine)
        async with sessions() as session:
            me = await session.get(User, owner.id)
            assert me is not None
            names = {image.id: name for name, image in images.items()}
            found = {}
            for q in ("bakery", "florist", "creme", "sunset", "nikon z", "3.jpg"):
                hits, _ = await search.search(session, me, words.parse(q), ImageFilters(), limit=10)
                found[q] = [names[hit.image.id] for hit in hits]
            return found
    finally:
        await engine.dispose()


def _check(found: dict[str, list[str]]) -> None:
    assert found == {
        "bakery": ["a"],  # the newest succeeded text, the owner's own
        "florist": [],
        "creme": ["a"],
        "sunset": ["b"],
        "nikon z": ["b"],
        "3.jpg": ["d"],
    }


def test_migration_indexes_existing_images_on_sqlite(tmp_path: Path) -> None:
    _check(asyncio.run(_migrate(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")))


def test_migration_indexes_existing_images_on_postgresql(fresh_postgres: str) -> None:
    url = fresh_postgres.replace("postgresql://", "postgresql+asyncpg://", 1)
    _check(asyncio.run(_migrate(url)))
