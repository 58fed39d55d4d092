"""Grouping benchmark, run on demand: `.venv/bin/python bench/people.py [--sizes 1000,10000]`.

What one grouping run (``iap.people.service.cluster_owner``) costs as an owner's placed faces
grow: for each size, one owner with that many faces already placed in people (ten faces a
person, four faces an image, synthetic embeddings as far apart as dlib's are for different
people and as close as for one person), then runs that each place ``--waiting`` new faces,
on SQLite (the embedded default) and on PostgreSQL (IAP_TEST_POSTGRES_URL, a new database,
dropped after). Printed: the median run, the run that finds nothing waiting (what the runs
behind a burst cost), and each beside the smallest size's, measured in the same run. It checks
that every new face joined its own person.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from iap import migrations
from iap.auth.models import User
from iap.db import create_engine, create_sessionmaker, utcnow
from iap.images.models import Image
from iap.people import service
from iap.people.models import Face, Person

FACES_PER_PERSON = 10
FACES_PER_IMAGE = 4
BATCH = 5_000


def _unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    rows = rng.normal(size=(n, 128))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


class Owner:
    """One owner's synthetic album: people as points 0.5 from the origin in random directions
    (about 0.7 apart), their faces within about 0.1 of them."""

    def __init__(self, faces: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.people = max(1, faces // FACES_PER_PERSON)
        self.centres = _unit_rows(self.rng, self.people) * 0.5
        self.faces = faces
        self.user_id = uuid.uuid4()

    def face(self, person: int) -> bytes:
        noise = self.rng.normal(size=128).astype(np.float32) * (0.1 / np.sqrt(128))
        return (self.centres[person] + noise).astype("<f4").tobytes()


def _image_row(owner: Owner, n: int) -> dict[str, object]:
    image_id = uuid.uuid4()
    return {
        "id": image_id,
        "user_id": owner.user_id,
        "original_filename": f"{n}.jpg",
        "file_type": "image/jpeg",
        "format": "JPEG",
        "width": 4000,
        "height": 3000,
        "file_size": 1,
        "sha256": "0" * 64,
        "storage_key": f"bench/{image_id}",
        "upload_date": utcnow(),
        "last_modified": utcnow(),
    }


async def fill(sessions: async_sessionmaker[AsyncSession], owner: Owner) -> list[uuid.UUID]:
    """The owner, its people and its placed faces; returns the people's ids."""
    now = utcnow()
    async with sessions() as session:
        session.add(
            User(
                id=owner.user_id,
                username=f"b{owner.user_id.hex[:20]}",
                email=f"{owner.user_id.hex}@example.com",
                password_hash="-",  # noqa: S106 - no account signs in
            )
        )
        person_ids = [uuid.uuid4() for _ in range(owner.people)]
        await session.flush()
        for start in range(0, len(person_ids), BATCH):
            await session.execute(
                insert(Person),
                [
                    {"id": p, "user_id": owner.user_id, "hidden": False}
                    | {"created_at": now, "updated_at": now}
                    for p in person_ids[start : start + BATCH]
                ],
            )
        images = -(-owner.faces // FACES_PER_IMAGE)
        for start in range(0, images, BATCH):
            rows = [_image_row(owner, n) for n in range(start, min(images, start + BATCH))]
            await session.execute(insert(Image), rows)
            faces = []
            for n, row in enumerate(rows):
                for position in range(FACES_PER_IMAGE):
                    index = (start + n) * FACES_PER_IMAGE + position
                    if index >= owner.faces:
                        break
                    person = index % owner.people
                    faces.append(_face_row(owner, row["id"], position, person, person_ids))
            await session.execute(insert(Face), faces)
        await session.commit()
    return person_ids


def _face_row(
    owner: Owner,
    image_id: object,
    position: int,
    person: int | None,
    person_ids: list[uuid.UUID],
    created: object = None,
) -> dict[str, object]:
    return {
        "id": uuid.uuid4(),
        "image_id": image_id,
        "user_id": owner.user_id,
        "position": position,
        "x": 0,
        "y": 0,
        "width": 200,
        "height": 200,
        "confidence": 0.9,
        "embedding": owner.face(person if person is not None else 0),
        "person_id": person_ids[person] if person is not None else None,
        "clustered": person is not None,
        "created_at": created or utcnow(),
    }


async def add_waiting(
    sessions: async_sessionmaker[AsyncSession], owner: Owner, count: int
) -> dict[uuid.UUID, int]:
    """``count`` new faces (one image each) of random existing people: face id -> person."""
    wanted: dict[uuid.UUID, int] = {}
    async with sessions() as session:
        rows = [_image_row(owner, -1) for _ in range(count)]
        await session.execute(insert(Image), rows)
        faces = []
        for row in rows:
            person = int(owner.rng.integers(owner.people))
            face = _face_row(owner, row["id"], 0, None, [])
            face["embedding"] = owner.face(person)
            wanted[face["id"]] = person  # type: ignore[index]
            faces.append(face)
        await session.execute(insert(Face), faces)
        await session.commit()
    return wanted


async def measure(url: str, sizes: list[int], waiting: int, runs: int) -> dict[int, tuple]:
    engine = create_engine(url)
    await migrations.upgrade(engine)
    sessions = create_sessionmaker(engine)
    found: dict[int, tuple] = {}
    try:
        for size in sizes:
            owner = Owner(size, seed=size)
            started = time.perf_counter()
            person_ids = await fill(sessions, owner)
            filled = time.perf_counter() - started
            placing, idle, wrong = [], [], 0
            for _ in range(runs):
                wanted = await add_waiting(sessions, owner, waiting)
                async with sessions() as session:
                    began = time.perf_counter()
                    done = await service.cluster_owner(session, owner.user_id)
                    placing.append((time.perf_counter() - began) * 1000)
                assert done.faces == waiting, done
                async with sessions() as session:
                    placed = dict(
                        (
                            await session.execute(
                                select(Face.id, Face.person_id).where(Face.id.in_(list(wanted)))
                            )
                        ).all()
                    )
                wrong += sum(placed[f] != person_ids[p] for f, p in wanted.items())
                async with sessions() as session:
                    began = time.perf_counter()
                    await service.cluster_owner(session, owner.user_id)
                    idle.append((time.perf_counter() - began) * 1000)
            found[size] = (statistics.median(placing), statistics.median(idle), wrong, filled)
            print(
                f"  {size:>7,} placed faces ({owner.people:,} people, filled in {filled:.0f} s): "
                f"placing {waiting} faces {found[size][0]:8.1f} ms, nothing waiting "
                f"{found[size][1]:6.1f} ms, misplaced {wrong}",
                flush=True,
            )
    finally:
        await engine.dispose()
    return found


def report(found: dict[int, tuple]) -> None:
    smallest = min(found)
    base_place, base_idle = found[smallest][0], found[smallest][1]
    for size, (place, idle, _, _) in sorted(found.items()):
        print(
            f"  {size:>7,}: placing {place / base_place:5.1f}x, nothing waiting "
            f"{idle / base_idle:4.1f}x of {smallest:,} faces'"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--waiting", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; {args.runs} runs "
        f"of {args.waiting} new faces per size\n"
    )
    with tempfile.TemporaryDirectory(prefix="iap-people-") as tmp:
        print("== embedded (SQLite)")
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'iap.db'}"
        report(asyncio.run(measure(url, sizes, args.waiting, args.runs)))
    base = os.environ.get("IAP_TEST_POSTGRES_URL")
    if base and not args.skip_postgres:
        from load import fresh_database

        admin = base.replace("postgresql+asyncpg://", "postgresql://")
        with fresh_database(admin, f"iap_people_{secrets.token_hex(4)}") as plain:
            print("\n== PostgreSQL")
            url = plain.replace("postgresql://", "postgresql+asyncpg://", 1)
            report(asyncio.run(measure(url, sizes, args.waiting, args.runs)))
    else:
        print("\nPostgreSQL skipped: set IAP_TEST_POSTGRES_URL")


if __name__ == "__main__":
    main()
