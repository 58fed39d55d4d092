"""``iap export`` and ``iap import``: an embedded install, filled through the API, moves to the
scaled deployment (PostgreSQL + S3) and serves the same accounts, keys, images, analyses,
thumbnails and webhooks. A damaged, foreign or mismatched archive, or a target that already
holds data, is refused with one line and exit 2, before anything is written."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from iap import migrations
from iap.app import create_app
from iap.cli.main import app as cli
from iap.config import Settings
from iap.db import create_engine
from iap.storage import create_storage
from iap.transfer import (
    FORMAT_VERSION,
    ChecksumMismatch,
    Manifest,
    export_install,
    import_install,
    open_archive,
)
from tests.cli.helpers import CLEAN_ENV, assert_one_line_error
from tests.conftest import S3_CREDENTIALS, TEST_LIMITS, make_bucket, settings_env
from tests.events.test_webhooks import Receiver, deliveries, register
from tests.factories import Account, image_bytes, login, make_account, uploaded

HEAD = migrations.head_revision()
ADMIN_PASSWORD = "admin password, long enough"


def iap(*args: str, settings: Settings | None = None, progress: bool = False) -> Result:
    env = CLEAN_ENV | (dict(settings_env(settings)) if settings else {})
    if progress:
        env["IAP_PROGRESS"] = "1"
    return CliRunner().invoke(cli, list(args), env=env)


def assert_ok(result: Result) -> None:
    assert result.exit_code == 0, (result.output, result.exception)


@pytest.fixture(scope="module", autouse=True)
def empty_working_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Commands run from an empty folder: no ``.env`` is picked up, nothing lands in the tree."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("cwd"))
        yield


# The source: an embedded install filled through the API ---------------------------------------


def views(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    """Everything one account sees through the API: account, keys, webhooks and deliveries,
    every image's metadata, analysis, what a search for its name finds, original (bytes and
    headers) and thumbnails."""
    seen: dict[str, Any] = {
        "me": client.get("/me", headers=headers).json(),
        "api keys": client.get("/me/api-keys", headers=headers).json(),
        "webhooks": client.get("/webhooks", headers=headers).json(),
    }
    for hook in seen["webhooks"]:
        page = client.get(f"/webhooks/{hook['id']}/deliveries?limit=100", headers=headers)
        seen[f"deliveries {hook['id']}"] = page.json()
    listing = client.get("/image/all?skip=1&limit=100&sort=upload_date", headers=headers).json()
    seen["images"] = listing
    for image in listing["data"]:
        image_id = image["id"]
        seen[f"image {image_id}"] = client.get(f"/image/{image_id}", headers=headers).json()
        found = client.get(
            "/image/search", params={"q": image["original_filename"]}, headers=headers
        )
        seen[f"search {image_id}"] = sorted(hit["image"]["id"] for hit in found.json()["data"])
        seen[f"analysis {image_id}"] = client.get(
            f"/image/{image_id}/analysis", headers=headers
        ).json()
        original = client.get(f"/image/download/{image_id}", headers=headers)
        seen[f"download {image_id}"] = (
            original.status_code,
            original.content,
            {name: original.headers.get(name) for name in ("content-type", "etag")},
            original.headers.get("content-disposition"),
        )
        for size in (256, 1024):
            thumb = client.get(f"/image/{image_id}/thumbnail?size={size}", headers=headers)
            seen[f"thumbnail {size} {image_id}"] = (thumb.status_code, thumb.content)
    return seen


def admin_views(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    return {
        "users": client.get("/admin/users?limit=100", headers=headers).json(),
        "stats": client.get("/admin/stats", headers=headers).json(),
    }


def wait_until_delivered(client: TestClient, account: Account, hook_id: str, images: int) -> None:
    """Until every image's ``analysis.succeeded`` event went out and nothing is pending."""
    deadline = time.monotonic() + 90
    while True:
        rows = deliveries(client, account, hook_id)
        succeeded = [r for r in rows if r["event_type"] == "analysis.succeeded"]
        if len(succeeded) >= images and all(r["status"] != "pending" for r in rows):
            return
        assert time.monotonic() < deadline, rows
        time.sleep(0.1)


def wait_until_analysed(client: TestClient, account: Account, image_id: str) -> None:
    """Until the job row says the analysis is over (``/analysis`` reads the database)."""
    deadline = time.monotonic() + 90
    while True:
        job = client.get(f"/image/{image_id}/analysis", headers=account.headers).json()["job"]
        if job["status"] in {"succeeded", "failed"}:
            assert job["status"] == "succeeded", job
            return
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


def bearer(client: TestClient, username: str, password: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {login(client, username, password)['access_token']}"}


def signed_in(client: TestClient, account: Account) -> Account:
    """``account`` with fresh tokens from ``client``'s install."""
    tokens = login(client, account.username, account.password)
    return replace(
        account, access_token=tokens["access_token"], refresh_token=tokens["refresh_token"]
    )


@dataclass(frozen=True)
class Source:
    settings: Settings
    alice: Account
    bob: Account
    admin: str
    api_key: str
    hook_secret: str
    alice_sees: dict[str, Any]
    bob_saw: dict[str, Any]  # before an admin disabled him
    admin_sees: dict[str, Any]
    disabled_login: tuple[int, str]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    hooks = Receiver()
    yield hooks
    hooks.close()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Source:
    """An embedded install with two users and an admin, analysed uploads with tags and
    descriptions, an API key, a webhook and its deliveries, a disabled account."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("source"), **TEST_LIMITS)  # type: ignore[arg-type]
    admin = f"admin_{secrets.token_hex(4)}"
    with TestClient(create_app(settings)) as client:
        alice, bob = make_account(client), make_account(client)
        key = client.post("/me/api-keys", headers=alice.headers, json={"name": "backups"})
        assert key.status_code == 201, key.text
        hook = register(client, alice, receiver.url)
        images = [
            uploaded(
                client,
                alice,
                image_bytes("JPEG", size=(640, 480)),
                filename="harbour.jpg",
                tags="sea,boats",
                description="the harbour at dawn",
            ),
            uploaded(client, alice, image_bytes("PNG", (300, 200), (9, 9, 200)), filename="a.png"),
        ]
        edited = client.put(
            f"/image/{images[1]['id']}",
            headers=alice.headers,
            json={"tags": ["plan"], "description": "edited after upload"},
        )
        assert edited.status_code == 200, edited.text
        bobs = uploaded(client, bob, image_bytes("WEBP", (120, 90)), filename="b.webp")
        for account, image in [(alice, images[0]), (alice, images[1]), (bob, bobs)]:
            wait_until_analysed(client, account, image["id"])
        wait_until_delivered(client, alice, hook["id"], images=len(images))
    made = iap(
        "create-user",
        admin,
        "--email",
        f"{admin}@example.com",
        "--password",
        ADMIN_PASSWORD,
        "--admin",
        settings=settings,
    )
    assert made.exit_code == 0, made.output

    # Seen through a restarted server, as its cache may hold metadata read while jobs ran.
    with TestClient(create_app(settings)) as client:
        bob_saw = views(client, signed_in(client, bob).headers)
        admin_headers = bearer(client, admin, ADMIN_PASSWORD)
        disabled = client.patch(
            f"/admin/users/{bob.id}", headers=admin_headers, json={"is_active": False}
        )
        assert disabled.status_code == 200, disabled.text
        refused = client.post("/login", data={"username": bob.username, "password": bob.password})
        assert refused.status_code in {401, 403}, refused.text
        alice = signed_in(client, alice)
        alice_sees = views(client, alice.headers)
        # What the comparison on the target rests on: every original and thumbnail is there.
        served = [v for k, v in alice_sees.items() if k.startswith(("download", "thumbnail"))]
        assert len(served) == 3 * len(images)
        assert all(status == 200 for status, *_ in served), served
        return Source(
            settings=settings,
            alice=alice,
            bob=bob,
            admin=admin,
            api_key=key.json()["key"],
            hook_secret=hook["secret"],
            alice_sees=alice_sees,
            bob_saw=bob_saw,
            admin_sees=admin_views(client, admin_headers),
            disabled_login=(refused.status_code, refused.json()["code"]),
        )


@pytest.fixture(scope="module")
def archive(source: Source, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("archives") / "install"
    result = iap("export", str(folder), settings=source.settings, progress=True)
    assert_ok(result)
    assert f"exported to {folder}" in result.stderr
    for stage in ("exporting users", "exporting originals", "exporting derivatives"):
        assert stage in result.stderr
    return folder


def copy_of(archive: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(archive, tmp_path / "copy"))


def edit_manifest(folder: Path, **changes: object) -> None:
    path = folder / "manifest.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


# Targets ---------------------------------------------------------------------------------------

TargetFactory = Callable[..., Settings]


@pytest.fixture
def scaled_target(
    postgres_url: str, s3_endpoint: str, redis_url: str, tmp_path: Path
) -> Iterator[TargetFactory]:
    """``scaled_target(revision="head")``: settings of a new scaled install, on a fresh
    PostgreSQL database (migrated by ``iap migrate`` to ``revision``) and a fresh bucket."""
    import asyncpg

    server = postgres_url.replace("postgresql+asyncpg://", "postgresql://")
    created: list[str] = []

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(server)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def make(revision: str = "head") -> Settings:
        name = f"iap_transfer_{secrets.token_hex(4)}"
        asyncio.run(run(f'CREATE DATABASE "{name}"'))
        created.append(name)
        settings = Settings(  # type: ignore[arg-type]
            data_dir=tmp_path / name,
            database_url=urlunsplit(urlsplit(server)._replace(path=f"/{name}")),
            storage_url=f"s3://{make_bucket(s3_endpoint)}/iap",
            s3_endpoint_url=s3_endpoint,
            secret_key=secrets.token_urlsafe(48),
            redis_url=redis_url,
            redis_prefix=f"iap-transfer-{secrets.token_hex(4)}:",
            **S3_CREDENTIALS,
            **TEST_LIMITS,
        )
        assert_ok(iap("migrate", revision, settings=settings))
        return settings

    yield make
    for name in created:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def embedded_target(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "target", **TEST_LIMITS)  # type: ignore[arg-type]


def sqlite_rows(settings: Settings) -> int:
    """Rows in every iap table of an embedded install (0 for one that was never started)."""
    path = settings.data_dir / "iap.db"
    if not path.exists():
        return 0
    with closing(sqlite3.connect(path)) as db:
        found = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
        # FTS5 keeps its index in shadow tables (<virtual table>_data, ...), set up even when
        # empty: the rows that count are those of the tables they index.
        virtual = [name for name, sql in found.items() if sql.startswith("CREATE VIRTUAL")]
        tables = [
            name
            for name in found
            if name != "alembic_version" and not any(name.startswith(f"{v}_") for v in virtual)
        ]
        counts = (
            db.execute(f'SELECT count(*) FROM "{name}"')  # noqa: S608 - names from sqlite_master
            for name in tables
        )
        return sum(count.fetchone()[0] for count in counts)


def stored_files(settings: Settings) -> list[Path]:
    return [p for p in (settings.data_dir / "blobs").rglob("*") if p.is_file()]


# The move ---------------------------------------------------------------------------------------


def test_a_scaled_install_serves_what_the_embedded_one_did(
    source: Source, archive: Path, scaled_target: TargetFactory, receiver: Receiver
) -> None:
    target = scaled_target()
    result = iap("import", str(archive), settings=target, progress=True)
    assert_ok(result)
    assert "verifying archive" in result.stderr
    assert "importing analysis_results" in result.stderr
    assert "rows: users 3, " in result.stderr

    with TestClient(create_app(target)) as client:
        alice = signed_in(client, source.alice)
        admin = bearer(client, source.admin, ADMIN_PASSWORD)
        assert views(client, alice.headers) == source.alice_sees
        assert admin_views(client, admin) == source.admin_sees

        refused = client.post(
            "/login", data={"username": source.bob.username, "password": source.bob.password}
        )
        assert (refused.status_code, refused.json()["code"]) == source.disabled_login
        enabled = client.patch(
            f"/admin/users/{source.bob.id}", headers=admin, json={"is_active": True}
        )
        assert enabled.status_code == 200, enabled.text
        assert views(client, bearer(client, source.bob.username, source.bob.password)) == (
            source.bob_saw
        )

        by_key = client.get("/me", headers={"X-API-Key": source.api_key})
        assert by_key.status_code == 200, by_key.text
        assert by_key.json()["username"] == source.alice.username

        # The webhook lives on, signing with the secret it was given on the source.
        new = uploaded(client, alice)
        for headers, body in receiver.events_until("analysis.succeeded", new["id"]):
            signed = headers["x-iap-timestamp"].encode() + b"." + body
            expected = hmac.new(source.hook_secret.encode(), signed, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(headers["x-iap-signature"], f"sha256={expected}")


def test_the_archive_describes_itself_and_checks_every_file(source: Source, archive: Path) -> None:
    manifest = Manifest.model_validate_json((archive / "manifest.json").read_text())
    assert (manifest.format, manifest.format_version) == ("iap-archive", FORMAT_VERSION)
    assert manifest.schema_revision == HEAD
    assert manifest.source_database == "sqlite"
    counts = {entry.name: entry.rows for entry in manifest.tables}
    assert counts["users"] == 3
    assert counts["images"] == 3
    assert counts["image_tags"] == 3
    assert counts["api_keys"] == 1
    assert counts["webhooks"] == 1
    assert counts["webhook_deliveries"] >= 6
    assert counts["analysis_results"] > counts["analysis_jobs"] == 3
    for entry in manifest.tables:
        lines = (archive / "tables" / f"{entry.name}.jsonl").read_text().splitlines()
        assert len(lines) == entry.rows
        assert all(set(json.loads(line)) == set(entry.columns) for line in lines)

    users = [json.loads(line) for line in (archive / "tables/users.jsonl").read_text().split()]
    by_name = {user["username"]: user for user in users}
    assert by_name[source.admin]["role"] == "admin"
    assert by_name[source.bob.username]["is_active"] is False
    assert all(user["password_hash"].startswith("$argon2") for user in users)

    index = [json.loads(line) for line in (archive / "blobs.jsonl").read_text().splitlines()]
    assert (manifest.blobs.count, manifest.blobs.bytes) == (
        len(index),
        sum(blob["size"] for blob in index),
    )
    for blob in index:
        data = (archive / "blobs" / blob["key"]).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (blob["size"], blob["sha256"])
    keys = {blob["key"] for blob in index}
    for line in (archive / "tables/images.jsonl").read_text().splitlines():
        image = json.loads(line)
        assert {
            image["storage_key"],
            f"derivatives/{image['id']}/thumb-256.webp",
            f"derivatives/{image['id']}/thumb-1024.webp",
        } <= keys


def test_an_archive_survives_the_round_trip_through_postgres_and_s3_unchanged(
    archive: Path, scaled_target: TargetFactory, tmp_path: Path
) -> None:
    # The typed functions, without the CLI: import into PostgreSQL + S3, export from there, and
    # every row and every file comes back as it was written from SQLite + local files.
    target = scaled_target()
    again = tmp_path / "again"

    async def round_trip() -> None:
        engine, storage = create_engine(target.resolved_database_url), create_storage(target)
        try:
            await import_install(engine, storage, open_archive(archive))
            await export_install(engine, storage, again)
        finally:
            await storage.close()
            await engine.dispose()

    asyncio.run(round_trip())
    manifest = Manifest.model_validate_json((archive / "manifest.json").read_text())
    for entry in manifest.tables:
        name = f"tables/{entry.name}.jsonl"
        assert sorted((again / name).read_text().splitlines()) == sorted(
            (archive / name).read_text().splitlines()
        ), name
    assert sorted((again / "blobs.jsonl").read_text().splitlines()) == sorted(
        (archive / "blobs.jsonl").read_text().splitlines()
    )


# Refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["embedded", "scaled"])
def test_a_second_import_is_refused_and_a_merge_adds_nothing(
    kind: str, archive: Path, scaled_target: TargetFactory, tmp_path: Path
) -> None:
    target = scaled_target() if kind == "scaled" else embedded_target(tmp_path)
    assert_ok(iap("import", str(archive), settings=target))

    again = iap("import", str(archive), settings=target)
    assert_one_line_error(again, 2, "already holds data", "users 3", "--merge")

    merged = iap("import", "--merge", str(archive), settings=target)
    assert_ok(merged)
    assert "rows: users 0, " in merged.stderr
    assert "files: 0 (0 bytes)" in merged.stderr


def test_a_merge_that_conflicts_with_the_target_imports_no_row(
    source: Source, archive: Path, tmp_path: Path
) -> None:
    target = embedded_target(tmp_path)
    with TestClient(create_app(target)) as client:  # someone else already took alice's name
        taken = client.post(
            "/signup",
            json={
                "username": source.alice.username,
                "email": "other@example.com",
                "password": "another long password",
            },
        )
        assert taken.status_code == 201, taken.text
    rows = sqlite_rows(target)

    result = iap("import", "--merge", str(archive), settings=target)
    assert_one_line_error(result, 1, "refused a row of users", "no row was imported")
    assert sqlite_rows(target) == rows


@pytest.mark.parametrize(
    "damage",
    ["original", "derivative", "table row", "blob index", "truncated table"],
)
def test_a_tampered_archive_is_refused_before_anything_is_written(
    damage: str, archive: Path, tmp_path: Path
) -> None:
    folder = copy_of(archive, tmp_path)
    index = [json.loads(line) for line in (folder / "blobs.jsonl").read_text().splitlines()]
    if damage in {"original", "derivative"}:
        prefix = "originals/" if damage == "original" else "derivatives/"
        key = next(blob["key"] for blob in index if blob["key"].startswith(prefix))
        path = folder / "blobs" / key
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
        damaged = path
    elif damage == "table row":  # a quiet privilege escalation
        damaged = folder / "tables/users.jsonl"
        damaged.write_text(damaged.read_text().replace('"role":"user"', '"role":"admin"', 1))
    elif damage == "blob index":
        damaged = folder / "blobs.jsonl"
        index[0]["content_type"] = "text/html"
        damaged.write_text("".join(json.dumps(blob) + "\n" for blob in index))
    else:
        damaged = folder / "tables/analysis_results.jsonl"
        damaged.write_bytes(damaged.read_bytes()[:-200])
    target = embedded_target(tmp_path)

    result = iap("import", str(folder), settings=target)
    assert_one_line_error(result, 2, str(damaged), "checksum")
    assert sqlite_rows(target) == 0
    assert stored_files(target) == []


def test_verifying_names_the_damaged_file_without_the_cli(archive: Path, tmp_path: Path) -> None:
    folder = copy_of(archive, tmp_path)
    victim = next((folder / "blobs/originals").iterdir())
    victim.write_bytes(victim.read_bytes() + b"\0")
    target = embedded_target(tmp_path)
    target.data_dir.mkdir()

    async def run() -> None:
        engine, storage = create_engine(target.resolved_database_url), create_storage(target)
        try:
            await migrations.upgrade(engine)
            await import_install(engine, storage, open_archive(folder))
        finally:
            await engine.dispose()

    with pytest.raises(ChecksumMismatch, match=victim.name):
        asyncio.run(run())


def test_an_archive_of_another_format_version_is_refused(archive: Path, tmp_path: Path) -> None:
    folder = copy_of(archive, tmp_path)
    edit_manifest(folder, format_version=FORMAT_VERSION + 1)
    target = embedded_target(tmp_path)
    result = iap("import", str(folder), settings=target)
    assert_one_line_error(result, 2, f"format version {FORMAT_VERSION + 1}", "not supported")
    assert not target.data_dir.exists()  # refused before the target was even opened


def test_an_archive_from_another_schema_revision_is_refused(archive: Path, tmp_path: Path) -> None:
    folder = copy_of(archive, tmp_path)
    edit_manifest(folder, schema_revision="0002")
    result = iap("import", str(folder), settings=embedded_target(tmp_path))
    assert_one_line_error(result, 2, "schema revision 0002", f"this iap is at {HEAD}")


def test_a_target_at_another_schema_revision_is_refused(
    archive: Path, scaled_target: TargetFactory
) -> None:
    target = scaled_target("0002")
    result = iap("import", str(archive), settings=target)
    assert_one_line_error(result, 2, "revision 0002", "iap migrate")


def test_importing_a_missing_folder_exits_2(tmp_path: Path) -> None:
    target = embedded_target(tmp_path)
    result = iap("import", str(tmp_path / "nowhere"), settings=target)
    assert_one_line_error(result, 2, "nowhere", "no such folder")
    assert not target.data_dir.exists()


def test_importing_an_unfinished_export_exits_2(archive: Path, tmp_path: Path) -> None:
    folder = copy_of(archive, tmp_path)
    (folder / "manifest.json").unlink()
    result = iap("import", str(folder), settings=embedded_target(tmp_path))
    assert_one_line_error(result, 2, "no manifest.json", "did not finish")


def test_exporting_into_a_folder_that_holds_files_exits_2(source: Source, tmp_path: Path) -> None:
    folder = tmp_path / "used"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    result = iap("export", str(folder), settings=source.settings)
    assert_one_line_error(result, 2, str(folder), "not empty")
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
