"""Finding benchmark, run on demand: `.venv/bin/python bench/find.py [--owner-images N]`.

One owner with 100k images (by default) among 1M image rows in all (the rest spread over 99
other owners), generated directly in the database with their perceptual hashes, about 1% exact
copies and 2% near copies (in near-duplicate groups, as the analysis records them), their search
index rows, and text and EXIF results: 40% of images carry recognised text (5-60 words drawn
from a Zipf-distributed vocabulary of common English words and a long tail of rarer ones, as
OCR of signs, receipts and documents reads), 60% a camera; on SQLite (the embedded default)
and on PostgreSQL (IAP_TEST_POSTGRES_URL, a new database, dropped after).
Through the API (in-process, FastAPI's TestClient), p50/p99 of:
- `/image/all` page 1, page 2,000 by `skip` (OFFSET) and page 2,000 by `cursor` (keyset);
- `/image/search`: a word of middling frequency (each in 2-3% of the images), two words, a
  prefix, a piece of a filename, and the commonest word (in over a third of the images);
- `/image/{id}/similar` of random images; `/image/duplicates` exact and near, page 1;
beside a bare indexed primary-key SELECT of one image row through the same engine, measured
in the same run. Goals: every p99 under 50 ms on PostgreSQL; page 2,000 within 1.5x of page 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, text

from iap import migrations
from iap.app import create_app
from iap.config import Settings
from iap.db import create_engine
from iap.finding.likeness import bands
from iap.finding.words import document
from iap.images import pagination
from iap.images.models import Image

PAGE = 20
DEEP_PAGE = 2_000
LIMITS = {
    "login_rate_limit": "1000000/60",
    "signup_rate_limit": "1000000/60",
    "upload_rate_limit": "1000000/60",
    "api_rate_limit": "100000000/60",
    "analysis_processes": 0,
}
SEARCH_COLUMNS = "image_id, user_id, filename, tags, description, camera, text"
RESULT_COLUMNS = "id, image_id, analyser, version, status, result, duration_ms, created_at"
COLUMNS = (
    "id, user_id, original_filename, file_type, format, width, height, file_size, sha256, "
    "storage_key, description, upload_date, last_modified"
)


# The commonest words of English text (by rank), then a long tail of made-up rarer ones.
COMMON_TEXT = (
    "the of and to in a is for on that with by at from this it be are as or open your "
    "all new total no we you not our more price free street road hotel station exit "
    "room service city north south park store office cash card date time please thank "
    "menu coffee bakery bread market bank pharmacy museum bus train parking entrance "
    "sale tax receipt invoice number order item qty amount change visa welcome closed "
    "monday tuesday friday sunday hours daily fresh hot cold water tea milk cheese wine "
    "beer pizza salad chicken soup cake cream apple orange lemon green red blue white "
    "black main central avenue square bridge river hill tower church school library "
    "hospital police fire stop slow danger private keep left right floor level gate "
    "platform ticket adult child return single report page chapter figure table section "
    "meeting agenda project team minutes notes draft final version copy signed dear sir"
)
COMMON = COMMON_TEXT.split()
SYLLABLE_TEXT = "ka lo mi ne sa ru te vo pi da ge lu ha bo ri zen tor mar kel fin"
SYLLABLES = SYLLABLE_TEXT.split()
CAMERAS = [
    "Canon · Canon EOS R6 · RF24-105mm F4 L IS USM",
    "NIKON CORPORATION · NIKON Z 6 · NIKKOR Z 24-70mm f/4 S",
    "SONY · ILCE-7M3 · FE 24-105mm F4 G OSS",
    "Apple · iPhone 15 Pro · iPhone 15 Pro back triple camera 6.86mm f/1.78",
    "Google · Pixel 8",
    "FUJIFILM · X-T4 · XF16-80mmF4 R OIS WR",
    "samsung · Galaxy S23",
]
# The query words: middling ones (each in about 1% of the images with text) and the commonest.
MIDDLING = ("bakery", "museum", "invoice", "platform", "cheese", "library")
COMMONEST = "the"


def vocabulary(rng: random.Random) -> tuple[list[str], list[float]]:
    tail = sorted(
        {"".join(rng.choices(SYLLABLES, k=rng.randint(2, 4))) for _ in range(3000)} - set(COMMON)
    )
    vocab = COMMON + tail
    # Zipf: the word of rank r is drawn with weight 1 / r.
    weights, total = [], 0.0
    for rank in range(1, len(vocab) + 1):
        total += 1 / rank
        weights.append(total)
    return vocab, weights


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(call: Callable[[], Any], runs: int) -> tuple[float, float]:
    call()  # warm
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), p(samples, 0.99)


def signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def rows_for(owner: uuid.UUID, others: list[uuid.UUID], owner_images: int, total: int, seed: int):
    """(images, hashes, search rows, results) as rows, the owner's first; a copy and its
    original share a group."""
    rng = random.Random(seed)
    vocab, weights = vocabulary(rng)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    images: list[tuple[Any, ...]] = []
    hashes: list[list[Any]] = []
    found: list[tuple[Any, ...]] = []  # image_search rows
    results: list[tuple[Any, ...]] = []  # (image_id, analyser, result)
    words = ["img", "holiday", "beach", "receipt", "scan", "DSC", "party", "cat", "report"]
    for n in range(total):
        user = owner if n < owner_images else others[n % len(others)]
        image_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        when = start + timedelta(seconds=n * 37 + rng.randrange(30))
        digest = f"{rng.getrandbits(256):064x}"
        phash = rng.getrandbits(64)
        copy_of = images[-1] if n and rng.random() < 0.03 and images[-1][1] == user else None
        if copy_of is not None and rng.random() < 1 / 3:
            digest = copy_of[8]  # an exact copy
            phash = hashes[-1][2] & ((1 << 64) - 1)
        elif copy_of is not None:  # a near copy: 1-3 bits away
            phash = hashes[-1][2] & ((1 << 64) - 1)
            for bit in rng.sample(range(64), rng.randint(1, 3)):
                phash ^= 1 << bit
        name = f"{rng.choice(words)}{n:06d}.jpg"
        images.append(
            (
                image_id,
                user,
                name,
                "image/jpeg",
                "jpeg",
                4000,
                3000,
                2_000_000 + n,
                digest,
                f"originals/{image_id}",
                None,
                when,
                when,
            )
        )
        value = signed(phash)
        group = None
        if copy_of is not None:
            group = hashes[-1][8] = hashes[-1][8] or hashes[-1][0]
        hashes.append([image_id, user, value, signed(rng.getrandbits(64)), *bands(value), group])
        recognised = camera = ""
        if rng.random() < 0.4:
            recognised = " ".join(rng.choices(vocab, cum_weights=weights, k=rng.randint(5, 60)))
            results.append((image_id, "text", {"lines": [], "full_text": recognised.upper()}))
        if rng.random() < 0.6:
            camera = rng.choice(CAMERAS)
            make, model, *lens = camera.split(" · ")
            exif = {"make": make, "model": model, "lens_make": None, "lens_model": None}
            exif["lens_model"] = lens[0] if lens else None
            results.append((image_id, "exif", exif))
        found.append((image_id, user, document(name), "", "", document(camera), recognised))
    return images, hashes, found, results


async def fill_postgres(url: str, owner: uuid.UUID, data: tuple) -> list[uuid.UUID]:
    import asyncpg

    images, hashes, found, results = data
    now = datetime.now(UTC)
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        row = await conn.fetchrow("SELECT * FROM users WHERE id = $1", owner)
        others = sorted({image[1] for image in images} - {owner})
        users = [
            tuple(
                {**dict(row), "id": o, "username": f"u{n}", "email": f"u{n}@example.com"}.values()
            )
            for n, o in enumerate(others)
        ]
        await conn.copy_records_to_table("users", records=users, columns=list(row.keys()))
        await conn.copy_records_to_table(
            "images", records=images, columns=[c.strip() for c in COLUMNS.split(",")]
        )
        await conn.copy_records_to_table(
            "image_hashes",
            records=[tuple(h) for h in hashes],
            columns=[
                *("image_id", "user_id", "phash", "dhash", "band0", "band1", "band2", "band3"),
                "near_group",
            ],
        )
        await conn.copy_records_to_table(
            "image_search", records=found, columns=SEARCH_COLUMNS.split(", ")
        )
        await conn.copy_records_to_table(
            "analysis_results",
            records=[
                (uuid.uuid4(), image_id, analyser, 1, "succeeded", json.dumps(result), 1.0, now)
                for image_id, analyser, result in results
            ],
            columns=RESULT_COLUMNS.split(", "),
        )
        await conn.execute("VACUUM (ANALYZE)")  # as autovacuum leaves a settled table
    finally:
        await conn.close()
    return others


def fill_sqlite(path: Path, owner: uuid.UUID, data: tuple) -> None:
    import sqlite3

    images, hashes, found, results = data
    now = datetime.now(UTC)

    def stamp(moment: datetime) -> str:
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    db = sqlite3.connect(path)
    try:
        cursor = db.execute("SELECT * FROM users WHERE id = ?", (owner.hex,))
        row = cursor.fetchone()
        names = [d[0] for d in cursor.description]
        others = sorted({image[1] for image in images} - {owner})
        users = []
        for n, other in enumerate(others):
            values = dict(zip(names, row, strict=True))
            values |= {"id": other.hex, "username": f"u{n}", "email": f"u{n}@example.com"}
            users.append(tuple(values.values()))
        marks = ", ".join("?" * len(names))
        # The column names come from the table itself, the values are parameters.
        insert_users = f"INSERT INTO users ({', '.join(names)}) VALUES ({marks})"  # noqa: S608
        db.executemany(insert_users, users)
        db.executemany(
            f"INSERT INTO images ({COLUMNS}) VALUES ({', '.join('?' * 13)})",  # noqa: S608
            ((i[0].hex, i[1].hex, *i[2:10], i[10], stamp(i[11]), stamp(i[12])) for i in images),
        )
        db.executemany(
            "INSERT INTO image_hashes (image_id, user_id, phash, dhash, band0, band1, band2, "
            "band3, near_group) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ((h[0].hex, h[1].hex, *h[2:8], h[8].hex if h[8] else None) for h in hashes),
        )
        # The index's triggers fill the FTS5 tables, as an upload's transaction does.
        db.executemany(
            f"INSERT INTO image_search ({SEARCH_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            ((row[0].hex, row[1].hex, *row[2:]) for row in found),
        )
        db.executemany(
            f"INSERT INTO analysis_results ({RESULT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            (
                (uuid.uuid4().hex, i.hex, a, 1, "succeeded", json.dumps(r), 1.0, stamp(now))
                for i, a, r in results
            ),
        )
        db.commit()
        db.execute("ANALYZE")
    finally:
        db.close()


def measure(
    settings: Settings, fill: Callable[[uuid.UUID], None], runs: int, seed: int, deep_page: int
) -> dict:
    results: dict[str, tuple[float, float]] = {}
    with TestClient(create_app(settings)) as client:
        password = secrets.token_urlsafe(16)
        account = {"username": "finder", "email": "finder@example.com", "password": password}
        owner = uuid.UUID(client.post("/signup", json=account).json()["id"])
        tokens = client.post("/login", data={"username": "finder", "password": password}).json()
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        started = time.monotonic()
        fill(owner)
        print(f"  rows generated and loaded in {time.monotonic() - started:.0f} s")

        async def ids_and_deep_cursor() -> tuple[list[uuid.UUID], str]:
            engine = create_engine(settings.resolved_database_url)
            async with engine.connect() as conn:
                ids = list(
                    (
                        await conn.execute(
                            select(Image.id).where(Image.user_id == owner).limit(5000)
                        )
                    ).scalars()
                )
                last = (
                    await conn.execute(
                        select(Image.upload_date, Image.id)
                        .where(Image.user_id == owner)
                        .order_by(Image.upload_date.desc(), Image.id.desc())
                        .offset((deep_page - 1) * PAGE - 1)
                        .limit(1)
                    )
                ).one()
            await engine.dispose()
            return ids, pagination.encode("-upload_date", last[0], last[1])

        ids, deep_cursor = asyncio.run(ids_and_deep_cursor())
        rng = random.Random(seed)

        def get(path: str, **params: Any) -> Callable[[], Any]:
            def call() -> None:
                response = client.get(path, params=params, headers=headers)
                assert response.status_code == 200, response.text

            return call

        def similar() -> None:
            response = client.get(f"/image/{rng.choice(ids)}/similar", headers=headers)
            assert response.status_code == 200, response.text

        # The bare row read, through an engine of the same kind, on the app's loop's thread.
        engine = create_engine(settings.resolved_database_url)
        loop = asyncio.new_event_loop()

        async def bare() -> None:
            async with engine.connect() as conn:
                await conn.execute(
                    text("SELECT * FROM images WHERE id = :id"),
                    {
                        "id": rng.choice(ids)
                        if "postgresql" in str(engine.url)
                        else rng.choice(ids).hex
                    },
                )

        results["bare primary-key SELECT (engine)"] = timed(
            lambda: loop.run_until_complete(bare()), runs
        )
        loop.run_until_complete(engine.dispose())
        loop.close()
        results["/image/all page 1"] = timed(get("/image/all", limit=PAGE), runs)
        results["/image/all deep page by skip"] = timed(
            get("/image/all", limit=PAGE, skip=deep_page), runs
        )
        results["/image/all deep page by cursor"] = timed(
            get("/image/all", limit=PAGE, cursor=deep_cursor), runs
        )

        def searching(*queries: str) -> Callable[[], None]:
            def call() -> None:
                q = rng.choice(queries)
                response = client.get("/image/search", params={"q": q}, headers=headers)
                assert response.status_code == 200, response.text
                assert response.json()["data"], f"nothing found for {q!r}"

            return call

        pairs = [f"{a} {b}" for a in MIDDLING for b in ("open", "street", "new") if a != b]
        results["/image/search a word"] = timed(searching(*MIDDLING), runs)
        results["/image/search two words"] = timed(searching(*pairs), runs)
        results["/image/search a prefix"] = timed(searching(*(w[:4] + "*" for w in MIDDLING)), runs)
        results["/image/search part of a filename"] = timed(
            searching(*(f"{n:04d}" for n in range(1000, 1100))), runs
        )
        results["/image/search the commonest word"] = timed(searching(COMMONEST), runs)
        results["/image/{id}/similar"] = timed(similar, runs)
        results["/image/duplicates exact"] = timed(get("/image/duplicates", kind="exact"), runs)
        results["/image/duplicates near"] = timed(get("/image/duplicates", kind="near"), runs)
    return results


def report(name: str, results: dict[str, tuple[float, float]], goals: bool) -> list[str]:
    bare = results["bare primary-key SELECT (engine)"][1]
    print(f"== {name}")
    print(f"  {'request':<36} {'p50 ms':>8} {'p99 ms':>8} {'p99 x bare':>11}")
    for label, (p50, p99) in results.items():
        print(f"  {label:<36} {p50:8.1f} {p99:8.1f} {p99 / bare:11.1f}")
    first = results["/image/all page 1"][1]
    deep = results["/image/all deep page by cursor"][1]
    lines = [
        f"{name}: the deep page by cursor p99 {deep:.1f} ms vs page 1 {first:.1f} ms "
        f"= {deep / first:.2f}x (goal <= 1.5x): {'met' if deep <= 1.5 * first else 'NOT met'}"
    ]
    if goals:
        # OFFSET paging is the seed's, kept for compatibility (the cursor is the goal's); the
        # commonest word is a stress case: its rank is computed for every one of its matches.
        beyond = ("by skip", "commonest")
        worst = max(
            (p99, label)
            for label, (_, p99) in results.items()
            if not any(word in label for word in beyond)
        )
        lines.append(
            f"{name}: slowest p99 {worst[0]:.1f} ms ({worst[1]}) (goal < 50 ms): "
            f"{'met' if worst[0] < 50 else 'NOT met'}"
        )
        common = results["/image/search the commonest word"][1]
        lines.append(f"{name}: the commonest word (a stress case, no goal): p99 {common:.1f} ms")
    print()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--owner-images", type=int, default=100_000)
    parser.add_argument("--total", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; one owner with "
        f"{args.owner_images:,} images among {args.total:,}; {args.runs} requests each, "
        f"{PAGE} per page\n"
    )
    others = [
        uuid.UUID(int=random.Random(args.seed + n).getrandbits(128), version=4) for n in range(99)
    ]
    goals: list[str] = []
    deep = min(DEEP_PAGE, args.owner_images // PAGE)
    print(f"the deep page: page {deep:,}\n")
    with tempfile.TemporaryDirectory(prefix="iap-find-") as tmp:
        settings = Settings(data_dir=Path(tmp), **LIMITS)  # type: ignore[arg-type]

        def fill_embedded(owner: uuid.UUID) -> None:
            data = rows_for(owner, others, args.owner_images, args.total, args.seed)
            fill_sqlite(Path(tmp) / "iap.db", owner, data)

        if not args.skip_sqlite:
            found = measure(settings, fill_embedded, args.runs, args.seed, deep)
            goals += report("embedded (SQLite)", found, False)
    base = os.environ.get("IAP_TEST_POSTGRES_URL")
    if base and not args.skip_postgres:
        from load import fresh_database

        admin = base.replace("postgresql+asyncpg://", "postgresql://")
        with fresh_database(admin, f"iap_find_{secrets.token_hex(4)}") as plain:
            url = plain.replace("postgresql://", "postgresql+asyncpg://", 1)

            async def migrate() -> None:
                engine = create_engine(url)
                await migrations.upgrade(engine)
                await engine.dispose()

            asyncio.run(migrate())
            with tempfile.TemporaryDirectory(prefix="iap-find-") as tmp:
                settings = Settings(
                    data_dir=Path(tmp),
                    database_url=url,
                    secret_key=secrets.token_urlsafe(48),
                    **LIMITS,
                )  # type: ignore[arg-type]

                def fill_scaled(owner: uuid.UUID) -> None:
                    data = rows_for(owner, others, args.owner_images, args.total, args.seed)
                    asyncio.run(fill_postgres(url, owner, data))

                goals += report(
                    "PostgreSQL", measure(settings, fill_scaled, args.runs, args.seed, deep), True
                )
    else:
        print("PostgreSQL skipped: set IAP_TEST_POSTGRES_URL\n")
    print("== goals")
    for line in goals:
        print(f"  {line}")


if __name__ == "__main__":
    main()
