"""The ``iap`` command: migrate, create-user, gc and upload, with real databases, stores and a
real server; misconfiguration stops every command with exit 2 and one line, never a traceback."""

from __future__ import annotations

import asyncio
import io
import os
import re
import secrets
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from pydantic import SecretStr
from skimage import data as skimage_data
from typer.testing import CliRunner, Result

from iap import migrations
from iap.app import create_app
from iap.cli.main import app
from iap.config import Settings
from iap.images.service import original_key
from iap.storage import LocalStorage, create_storage
from iap.storage.s3 import S3Storage
from tests.cli.helpers import CLEAN_ENV, assert_one_line_error
from tests.conftest import S3_CREDENTIALS, settings_for
from tests.factories import PASSWORD, image_bytes, login
from tests.live_server import LiveServer, RemoteAccount, remote_account

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SECRET = secrets.token_urlsafe(48)
HEAD = migrations.head_revision()


@pytest.fixture(autouse=True)
def no_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from an empty folder, so no ``.env`` is picked up."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


def iap(*args: str, env: dict[str, str | None] | None = None, stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=CLEAN_ENV | (env or {}), input=stdin)


def env_for(settings: Settings) -> dict[str, str | None]:
    """The ``IAP_*`` variables that configure a process exactly like ``settings``."""
    env: dict[str, str | None] = {}
    for name in settings.model_fields_set:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"IAP_{name.upper()}"] = str(value)
    return env


def embedded_env(tmp_path: Path) -> dict[str, str | None]:
    return {"IAP_DATA_DIR": str(tmp_path / "data")}


# migrate ---------------------------------------------------------------------------------------


def test_migrate_creates_a_fresh_sqlite_database_and_is_idempotent(tmp_path: Path) -> None:
    env = embedded_env(tmp_path)
    first = iap("migrate", env=env)
    assert first.exit_code == 0, first.output
    assert f"database schema: empty -> {HEAD}" in first.stderr
    second = iap("migrate", env=env)
    assert second.exit_code == 0, second.output
    assert f"database schema: {HEAD} -> {HEAD}" in second.stderr
    with closing(sqlite3.connect(tmp_path / "data" / "iap.db")) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert {"users", "images"} <= tables


def postgres_revision(url: str) -> str | None:
    import asyncpg

    async def run() -> str | None:
        conn = await asyncpg.connect(url)
        try:
            value = await conn.fetchval("SELECT version_num FROM alembic_version")
            return None if value is None else str(value)
        finally:
            await conn.close()

    return asyncio.run(run())


def test_migrate_creates_a_fresh_postgres_database_and_is_idempotent(
    fresh_postgres: str, tmp_path: Path
) -> None:
    env = {"IAP_DATABASE_URL": fresh_postgres, "IAP_SECRET_KEY": SECRET, **embedded_env(tmp_path)}
    first = iap("migrate", env=env)
    assert first.exit_code == 0, first.output
    assert f"database schema: empty -> {HEAD}" in first.stderr
    second = iap("migrate", env=env)
    assert second.exit_code == 0, second.output
    assert f"database schema: {HEAD} -> {HEAD}" in second.stderr
    assert postgres_revision(fresh_postgres) == HEAD


def test_postgres_commands_refuse_an_unmigrated_database_until_migrate_runs(
    fresh_postgres: str, tmp_path: Path
) -> None:
    env = {"IAP_DATABASE_URL": fresh_postgres, "IAP_SECRET_KEY": SECRET, **embedded_env(tmp_path)}
    assert_one_line_error(iap("gc", env=env), 2, "revision none", "iap migrate")
    assert iap("migrate", env=env).exit_code == 0
    after = iap("gc", env=env)
    assert after.exit_code == 0, after.output
    assert "removed 0 orphan blob(s)" in after.stderr


def test_migrate_on_an_unreachable_database_fails_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        env = {
            "IAP_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/nothing",
            "IAP_SECRET_KEY": SECRET,
            **embedded_env(tmp_path),
        }
        assert_one_line_error(iap("migrate", env=env), 1, "the database cannot be used")


# create-user -----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["embedded", "scaled"])
def test_created_user_can_log_in_through_the_api(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    settings = settings_for(backend, request, tmp_path / "deploy")
    username = f"cli_{secrets.token_hex(4)}"
    result = iap(
        "create-user",
        username,
        "--email",
        f"{username}@example.com",
        "--password",
        PASSWORD,
        env=env_for(settings),
    )
    assert result.exit_code == 0, result.output
    assert re.search(rf"created user {username} \([0-9a-f-]{{36}}\)", result.stderr)
    with TestClient(create_app(settings)) as client:
        tokens = login(client, username, PASSWORD)
        me = client.get("/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200
    assert me.json()["username"] == username
    assert me.json()["email"] == f"{username}@example.com"
    assert me.json()["role"] == "user"


def test_create_user_with_admin_flag_makes_an_admin(tmp_path: Path) -> None:
    env = embedded_env(tmp_path)
    result = iap(
        "create-user",
        "root_admin",
        "--email",
        "root@example.com",
        "--admin",
        env=env | {"IAP_NEW_USER_PASSWORD": PASSWORD},
    )
    assert result.exit_code == 0, result.output
    assert "created admin root_admin" in result.stderr
    settings = Settings(data_dir=tmp_path / "data")
    with TestClient(create_app(settings)) as client:
        token = login(client, "root_admin", PASSWORD)["access_token"]
        me = client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["role"] == "admin"


def test_create_user_prompts_for_email_and_password(tmp_path: Path) -> None:
    result = iap(
        "create-user",
        "prompted",
        env=embedded_env(tmp_path),
        stdin=f"prompted@example.com\n{PASSWORD}\n{PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output  # the password prompt hides what is typed
    with TestClient(create_app(Settings(data_dir=tmp_path / "data"))) as client:
        assert login(client, "prompted", PASSWORD)["access_token"]


def test_create_user_with_a_bad_email_exits_2_with_one_line(tmp_path: Path) -> None:
    result = iap(
        "create-user",
        "someone",
        "--email",
        "not-an-email",
        "--password",
        PASSWORD,
        env=embedded_env(tmp_path),
    )
    assert_one_line_error(result, 2, "email")


def test_create_user_with_a_short_password_exits_2_with_one_line(tmp_path: Path) -> None:
    result = iap(
        "create-user",
        "someone",
        "--email",
        "someone@example.com",
        "--password",
        "short",
        env=embedded_env(tmp_path),
    )
    assert_one_line_error(result, 2, "password")


def test_create_user_with_a_taken_username_exits_1_with_one_line(tmp_path: Path) -> None:
    env = embedded_env(tmp_path) | {"IAP_NEW_USER_PASSWORD": PASSWORD}
    assert iap("create-user", "twice", "--email", "one@example.com", env=env).exit_code == 0
    again = iap("create-user", "twice", "--email", "two@example.com", env=env)
    assert_one_line_error(again, 1, "username is already registered")


# misconfiguration ------------------------------------------------------------------------------

MISCONFIGURATIONS = [
    pytest.param({"IAP_DATABASE_URL": "mysql://x"}, "IAP_DATABASE_URL", id="mysql-database"),
    pytest.param({"IAP_STORAGE_URL": "ftp://x"}, "IAP_STORAGE_URL", id="ftp-storage"),
    pytest.param(
        {"IAP_DATABASE_URL": "postgresql://iap@127.0.0.1/iap"},
        "IAP_SECRET_KEY is required",
        id="postgres-without-secret",
    ),
    pytest.param({"IAP_SECRET_KEY": "too-short"}, "IAP_SECRET_KEY", id="short-secret"),
    pytest.param({"IAP_MAX_UPLOAD_BYTES": "0"}, "IAP_MAX_UPLOAD_BYTES", id="zero-upload-limit"),
    pytest.param({"IAP_MAX_UPLOAD_BYTES": "lots"}, "IAP_MAX_UPLOAD_BYTES", id="non-number"),
    pytest.param({"IAP_LOGIN_RATE_LIMIT": "abc"}, "IAP_LOGIN_RATE_LIMIT", id="bad-rate"),
    pytest.param({"IAP_REDIS_URL": "http://x"}, "IAP_REDIS_URL", id="http-redis"),
    pytest.param({"IAP_LOG_LEVEL": "loud"}, "IAP_LOG_LEVEL", id="bad-log-level"),
]
COMMANDS = [
    pytest.param(["migrate"], id="migrate"),
    pytest.param(["gc"], id="gc"),
    pytest.param(
        ["create-user", "someone", "--email", "a@example.com", "--password", PASSWORD],
        id="create-user",
    ),
]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(("env", "fragment"), MISCONFIGURATIONS)
def test_misconfiguration_exits_2_with_one_clear_line(
    tmp_path: Path, command: list[str], env: dict[str, str | None], fragment: str
) -> None:
    result = iap(*command, env=embedded_env(tmp_path) | env)
    assert_one_line_error(result, 2, fragment)
    assert not (tmp_path / "data" / "iap.db").exists()


def test_missing_s3_bucket_exits_2_with_one_line(tmp_path: Path, s3_endpoint: str) -> None:
    env = embedded_env(tmp_path) | {
        "IAP_STORAGE_URL": "s3://no-such-bucket-for-iap",
        "IAP_S3_ENDPOINT_URL": s3_endpoint,
        "IAP_S3_ACCESS_KEY_ID": S3_CREDENTIALS["s3_access_key_id"],
        "IAP_S3_SECRET_ACCESS_KEY": S3_CREDENTIALS["s3_secret_access_key"],
    }
    assert_one_line_error(iap("gc", env=env), 2, "no-such-bucket-for-iap")


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        pytest.param({"IAP_DATABASE_URL": "mysql://x"}, "IAP_DATABASE_URL", id="mysql-database"),
        pytest.param({"IAP_SECRET_KEY": "too-short"}, "IAP_SECRET_KEY", id="short-secret"),
    ],
)
def test_serve_with_a_misconfiguration_stops_at_once_with_one_line(
    tmp_path: Path, env: dict[str, str], fragment: str
) -> None:
    # A real process: if the configuration were accepted, the server would start (and be killed).
    process_env = {k: v for k, v in os.environ.items() if not k.startswith("IAP_")}
    process_env |= {"IAP_DATA_DIR": str(tmp_path / "data"), "IAP_PORT": "1", **env}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "iap", "serve"],
            env=process_env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("iap serve started despite the misconfiguration")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert fragment in lines[0]


# gc --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["embedded", "scaled"])
def test_gc_removes_old_orphans_and_keeps_young_ones(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    settings = settings_for(backend, request, tmp_path / "deploy")
    env = env_for(settings)
    assert iap("migrate", env=env).exit_code == 0  # a no-op on the shared PostgreSQL database
    key = original_key(uuid.uuid4())
    storage = create_storage(settings)

    async def put() -> None:
        await storage.check()
        await storage.put(key, io.BytesIO(b"orphan"), "application/octet-stream")

    async def exists() -> bool:
        return await storage.exists(key)

    asyncio.run(put())

    young = iap("gc", env=env)
    assert young.exit_code == 0, young.output
    assert "removed 0 orphan blob(s) and 0 leftover(s)" in young.stderr
    assert asyncio.run(exists())

    if isinstance(storage, LocalStorage):
        past = time.time() - 2 * 3600
        os.utime(storage.root / key, (past, past))
        old = iap("gc", env=env)
    else:  # an S3 object cannot be back-dated: shrink the grace period instead
        old = iap("gc", "--grace-minutes", "0", env=env)
    assert old.exit_code == 0, old.output
    assert "removed 1 orphan blob(s)" in old.stderr
    assert not asyncio.run(exists())


@pytest.fixture
def local_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[LocalStorage, dict[str, str | None]]:
    """An embedded deployment's store, and the environment of its ``iap`` commands."""
    settings = settings_for("embedded", request, tmp_path / "deploy")
    env = env_for(settings)
    assert iap("migrate", env=env).exit_code == 0
    storage = create_storage(settings)
    assert isinstance(storage, LocalStorage)
    return storage, env


def test_gc_removes_orphan_derivative_folders_with_their_partial_files(
    local_store: tuple[LocalStorage, dict[str, str | None]],
) -> None:
    """What a delete during an analysis, or a worker killed mid-write, leaves in the store."""
    storage, env = local_store
    gone = storage.root / "derivatives" / str(uuid.uuid4())
    thumbnail = f"{gone.relative_to(storage.root).as_posix()}/thumb-256.webp"
    asyncio.run(storage.put(thumbnail, io.BytesIO(b"webp"), "image/webp"))
    (gone / ".tmp-k3j2x9").write_bytes(b"half a thumbnail")
    empty = storage.root / "derivatives" / str(uuid.uuid4())
    empty.mkdir()
    partial_original = storage.root / "originals" / ".tmp-abcdef"
    partial_original.parent.mkdir(exist_ok=True)
    partial_original.write_bytes(b"half an upload")

    swept = iap("gc", "--grace-minutes", "0", env=env)
    assert swept.exit_code == 0, swept.output
    assert "removed 1 orphan blob(s) and 2 leftover(s) of interrupted writes" in swept.stderr
    assert not gone.exists()
    assert not empty.exists()
    assert not partial_original.exists()


def test_gc_keeps_partial_files_younger_than_the_grace_period(
    local_store: tuple[LocalStorage, dict[str, str | None]],
) -> None:
    storage, env = local_store
    writing = storage.root / "originals" / ".tmp-in-flight"
    writing.parent.mkdir(parents=True)
    writing.write_bytes(b"an upload being written")
    swept = iap("gc", env=env)
    assert swept.exit_code == 0, swept.output
    assert "0 leftover(s)" in swept.stderr
    assert writing.exists()


def test_gc_aborts_abandoned_multipart_uploads_on_s3(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    settings = settings_for("scaled", request, tmp_path / "deploy")
    env = env_for(settings)
    storage = create_storage(settings)
    assert isinstance(storage, S3Storage)
    key = storage.prefix + original_key(uuid.uuid4())  # the bucket's key, as put makes it
    started = storage.client.create_multipart_upload(Bucket=storage.bucket, Key=key)
    storage.client.upload_part(
        Bucket=storage.bucket,
        Key=key,
        UploadId=started["UploadId"],
        PartNumber=1,
        Body=b"the first part of an upload whose process was killed",
    )
    swept = iap("gc", "--grace-minutes", "0", env=env)
    assert swept.exit_code == 0, swept.output
    assert "1 leftover(s) of interrupted writes" in swept.stderr
    left = storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", [])
    assert [upload["Key"] for upload in left] == []


# upload ----------------------------------------------------------------------------------------


@pytest.fixture
def account(live_server: LiveServer) -> RemoteAccount:
    return remote_account(live_server)


def listed(server: LiveServer, token: str, **params: str) -> dict[str, dict[str, object]]:
    """The account's images by id (every page)."""
    found: dict[str, dict[str, object]] = {}
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as http:
        page = 1
        while True:
            body = http.get("/image/all", params={"skip": page, "limit": 100, **params}).json()
            found |= {item["id"]: item for item in body["data"]}
            if len(found) >= body["total"] or not body["data"]:
                return found
            page += 1


def printed_ids(result: Result) -> dict[str, str]:
    """``image id -> file`` from the upload command's stdout lines."""
    ids: dict[str, str] = {}
    for line in result.stdout.splitlines():
        image_id, _, path = line.partition("  ")
        assert UUID.match(image_id), line
        ids[image_id] = path
    return ids


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    (folder / "nested" / "deeper").mkdir(parents=True)
    (folder / "a.png").write_bytes(image_bytes("PNG"))
    (folder / "b.jpg").write_bytes(image_bytes("JPEG"))
    (folder / "LOUD.JPG").write_bytes(image_bytes("JPEG", color=(1, 2, 3)))
    (folder / "nested" / "c.webp").write_bytes(image_bytes("WEBP"))
    (folder / "nested" / "deeper" / "d.gif").write_bytes(image_bytes("GIF"))
    (folder / "notes.txt").write_text("not an image, and not even named like one\n")
    (folder / "nested" / "readme.md").write_text("# skipped too\n")
    return folder


IMAGES_IN_FOLDER = {"a.png", "b.jpg", "LOUD.JPG", "c.webp", "d.gif"}


def test_upload_sends_every_image_in_a_folder_tree_with_its_tag(
    live_server: LiveServer, account: RemoteAccount, photo_folder: Path
) -> None:
    result = iap(
        "upload",
        str(photo_folder),
        "--server",
        live_server.url,
        "--token",
        account.access_token,
        "--tag",
        "x",
    )
    assert result.exit_code == 0, result.output
    ids = printed_ids(result)
    assert {Path(path).name for path in ids.values()} == IMAGES_IN_FOLDER
    assert "uploaded 5 of 5 file(s)" in result.stderr
    images = listed(live_server, account.access_token, tag="x")
    assert set(images) == set(ids)
    assert {image["original_filename"] for image in images.values()} == IMAGES_IN_FOLDER
    assert all(image["tags"] == ["x"] for image in images.values())
    assert set(listed(live_server, account.access_token)) == set(ids)  # nothing else went up


def test_upload_keeps_the_bytes_and_applies_several_tags_and_a_description(
    live_server: LiveServer, account: RemoteAccount, tmp_path: Path
) -> None:
    path = tmp_path / "one.png"
    path.write_bytes(image_bytes("PNG", size=(320, 200)))
    result = iap(
        "upload",
        str(path),
        "--server",
        live_server.url,
        "--token",
        account.access_token,
        "-t",
        "Sea",
        "--tag",
        "boats",
        "--description",
        "from the cli",
    )
    assert result.exit_code == 0, result.output
    [image_id] = printed_ids(result)
    headers = {"Authorization": f"Bearer {account.access_token}"}
    with httpx.Client(base_url=live_server.url, headers=headers) as http:
        image = http.get(f"/image/{image_id}").json()
        original = http.get(f"/image/download/{image_id}", follow_redirects=True).content
    assert image["tags"] == ["boats", "sea"]
    assert image["description"] == "from the cli"
    assert original == path.read_bytes()


def test_upload_with_one_bad_explicit_file_exits_1_and_still_uploads_the_rest(
    live_server: LiveServer, account: RemoteAccount, tmp_path: Path
) -> None:
    good = [tmp_path / "good1.png", tmp_path / "good2.jpg"]
    good[0].write_bytes(image_bytes("PNG"))
    good[1].write_bytes(image_bytes("JPEG"))
    bad = tmp_path / "bad.txt"
    bad.write_text("plain text, given by name\n")
    result = iap(
        "upload",
        str(good[0]),
        str(bad),
        str(good[1]),
        "--server",
        live_server.url,
        "--token",
        account.access_token,
    )
    assert result.exit_code == 1, result.output
    ids = printed_ids(result)
    assert sorted(Path(path).name for path in ids.values()) == ["good1.png", "good2.jpg"]
    failed = [line for line in result.stderr.splitlines() if "failed" in line and "bad.txt" in line]
    assert len(failed) == 1, result.stderr
    assert "unsupported_image_type" in failed[0]
    assert "uploaded 2 of 3 file(s), 1 failed" in result.stderr
    assert "Traceback" not in result.output
    assert set(listed(live_server, account.access_token)) == set(ids)


def test_upload_with_an_api_key(
    live_server: LiveServer, account: RemoteAccount, photo_folder: Path
) -> None:
    created = httpx.post(
        f"{live_server.url}/me/api-keys",
        json={"name": "cli upload"},
        headers={"Authorization": f"Bearer {account.access_token}"},
    )
    assert created.status_code == 201, created.text
    result = iap(
        "upload",
        str(photo_folder / "a.png"),
        "--server",
        live_server.url,
        "--api-key",
        created.json()["key"],
    )
    assert result.exit_code == 0, result.output
    assert set(listed(live_server, account.access_token)) == set(printed_ids(result))


def test_upload_reads_server_and_token_from_the_environment_and_shows_progress(
    live_server: LiveServer, account: RemoteAccount, photo_folder: Path
) -> None:
    env = {"IAP_SERVER": live_server.url, "IAP_TOKEN": account.access_token, "IAP_PROGRESS": "1"}
    result = iap("upload", str(photo_folder), "--parallel", "2", env=env)
    assert result.exit_code == 0, result.output
    assert len(printed_ids(result)) == len(IMAGES_IN_FOLDER)
    assert "5/5 files" in result.stderr


def test_upload_without_credentials_exits_2(live_server: LiveServer, photo_folder: Path) -> None:
    result = iap("upload", str(photo_folder), "--server", live_server.url)
    assert_one_line_error(result, 2, "--token", "--api-key")


def test_upload_with_a_bad_token_exits_1_with_one_line(
    live_server: LiveServer, photo_folder: Path
) -> None:
    result = iap("upload", str(photo_folder), "--server", live_server.url, "--token", "nonsense")
    assert_one_line_error(result, 1, "refused the credentials", "invalid_token")


def test_upload_to_an_unreachable_server_exits_1_with_one_line(photo_folder: Path) -> None:
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        result = iap("upload", str(photo_folder), "--server", url, "--token", "t")
    assert_one_line_error(result, 1, "cannot reach the iap server", url)


def test_upload_of_a_missing_path_exits_2(
    live_server: LiveServer, account: RemoteAccount, tmp_path: Path
) -> None:
    missing = tmp_path / "nope"
    result = iap(
        "upload", str(missing), "--server", live_server.url, "--token", account.access_token
    )
    assert_one_line_error(result, 2, "no such file or folder")


def test_upload_of_a_folder_without_images_exits_2(
    live_server: LiveServer, account: RemoteAccount, tmp_path: Path
) -> None:
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("x")
    result = iap(
        "upload", str(folder), "--server", live_server.url, "--token", account.access_token
    )
    assert_one_line_error(result, 2, "no image files found")
    assert listed(live_server, account.access_token) == {}


def test_upload_of_a_large_file_is_byte_exact(
    live_server: LiveServer, account: RemoteAccount, tmp_path: Path
) -> None:
    # Several MB of noise: crosses the client's streaming chunks (and S3's multipart threshold).
    from PIL import Image

    path = tmp_path / "noise.png"
    noise = Image.frombytes("RGB", (1800, 1800), os.urandom(1800 * 1800 * 3))
    noise.save(path, "PNG")
    assert path.stat().st_size > 8 * 1024 * 1024
    result = iap("upload", str(path), "--server", live_server.url, "--token", account.access_token)
    assert result.exit_code == 0, result.output
    [image_id] = printed_ids(result)
    with httpx.Client(
        base_url=live_server.url, headers={"Authorization": f"Bearer {account.access_token}"}
    ) as http:
        original = http.get(f"/image/download/{image_id}", follow_redirects=True).content
    assert original == path.read_bytes()


def test_upload_prints_image_ids_on_stdout_even_when_stderr_is_a_terminal(
    live_server: LiveServer, account: RemoteAccount, photo_folder: Path, tmp_path: Path
) -> None:
    # The interactive case: progress bar on the terminal, ids piped on (`iap upload . > ids`).
    import pty

    primary, secondary = pty.openpty()
    terminal: list[bytes] = []

    def drain() -> None:  # keep the terminal's buffer from filling and blocking the command
        while True:
            try:
                data = os.read(primary, 65536)
            except OSError:  # the command closed its end
                return
            if not data:
                return
            terminal.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IAP_")}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "iap", "upload", str(photo_folder), "--server", live_server.url],
            env=env | {"IAP_TOKEN": account.access_token},
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=secondary,
            timeout=120,
            check=False,
        )
    finally:
        os.close(secondary)
        reader.join(timeout=10)
        os.close(primary)
    assert done.returncode == 0, b"".join(terminal).decode(errors="replace")
    ids = [line.split()[0] for line in done.stdout.decode().splitlines() if line.strip()]
    assert len(ids) == len(IMAGES_IN_FOLDER), (
        "image ids went to the terminal instead of stdout: "
        + b"".join(terminal).decode(errors="replace")[-300:]
    )
    assert set(ids) == set(listed(live_server, account.access_token))


def test_create_user_with_nothing_to_ask_on_says_what_to_pass(tmp_path: Path) -> None:
    """No terminal and no input (a script, `docker exec` without -it): the prompt finds
    nothing to read, and the error says what to pass instead of click's bare "Aborted!"."""
    for args, fragments in (
        (["--email", "s@example.com"], ("password not given", "IAP_NEW_USER_PASSWORD")),
        ([], ("email not given", "--email")),
    ):
        result = iap("create-user", "scripted", *args, env=embedded_env(tmp_path))
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        assert "Aborted" not in result.output
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("error: "), result.stderr
        assert all(fragment in last for fragment in fragments), last


def test_create_user_takes_the_password_from_the_environment(tmp_path: Path) -> None:
    result = iap(
        "create-user",
        "from_env",
        "--email",
        "e@example.com",
        env=embedded_env(tmp_path) | {"IAP_NEW_USER_PASSWORD": PASSWORD},
    )
    assert result.exit_code == 0, result.output


# similar, duplicates ---------------------------------------------------------------------------


def _analysed_upload(server: LiveServer, token: str, path: Path) -> str:
    result = iap("upload", str(path), "--server", server.url, "--token", token)
    assert result.exit_code == 0, result.output
    [image_id] = printed_ids(result)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, headers=headers) as http:
        deadline = time.monotonic() + 60
        while http.get(f"/image/{image_id}").json()["analysis"]["status"] != "succeeded":
            assert time.monotonic() < deadline, "analysis did not finish"
            time.sleep(0.1)
    return image_id


def test_duplicates_lists_the_groups_and_deletes_the_copies_with_delete(
    live_server: LiveServer, account: RemoteAccount, tmp_path: Path
) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(image_bytes("JPEG", size=(300, 200)))
    other = tmp_path / "other.png"
    PILImage.fromarray(skimage_data.coffee()).resize((150, 100)).save(other)  # unrelated
    first, second = (_analysed_upload(live_server, account.access_token, photo) for _ in range(2))
    kept_apart = _analysed_upload(live_server, account.access_token, other)
    auth = ["--server", live_server.url, "--token", account.access_token]

    similar = iap("similar", first, *auth)
    assert similar.exit_code == 0, similar.output
    assert similar.stdout.splitlines() == [f"0\t{second}\tphoto.jpg"]

    listing = iap("duplicates", *auth)
    assert listing.exit_code == 0, listing.output
    rows = [line.split("\t") for line in listing.stdout.splitlines()]
    assert [(r[0], r[1], r[3]) for r in rows] == [("1", "keep", first), ("1", "copy", second)]
    assert "1 group(s) of exact duplicates, 1 copies" in listing.stderr

    deleted = iap("duplicates", "--kind", "near", "--delete", *auth)
    assert deleted.exit_code == 0, deleted.output
    assert "1 deleted" in deleted.stderr
    assert set(listed(live_server, account.access_token)) == {first, kept_apart}


def test_search_prints_a_line_per_hit_best_first(
    live_server: LiveServer, account: RemoteAccount, tmp_path: Path
) -> None:
    named = tmp_path / "lighthouse.png"
    named.write_bytes(image_bytes("PNG"))
    other = tmp_path / "other.png"
    other.write_bytes(image_bytes("PNG"))
    auth = ["--server", live_server.url, "--token", account.access_token]
    uploaded_ids = []
    for path, tags in ((other, ["lighthouse", "coast"]), (named, ["coast"])):
        result = iap("upload", str(path), *(f"--tag={tag}" for tag in tags), *auth)
        assert result.exit_code == 0, result.output
        uploaded_ids += printed_ids(result)
    tagged, by_name = uploaded_ids
    result = iap("search", "lighthouse", *auth)
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert rows == [
        [by_name, "lighthouse.png", "filename", "lighthouse.png"],
        [tagged, "other.png", "tags", "coast, lighthouse"],
    ]
    assert "2 hit(s) for 'lighthouse'" in result.stderr
    assert iap("search", "coast", "--limit", "1", *auth).stdout.count("\n") == 1
    refused = iap("search", '"*"', *auth)
    assert refused.exit_code == 1
    assert "(invalid_query)" in refused.stderr


def test_similar_of_someone_elses_image_exits_1_with_one_line(
    live_server: LiveServer, account: RemoteAccount, tmp_path: Path
) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(image_bytes("JPEG"))
    theirs = _analysed_upload(live_server, account.access_token, photo)
    stranger = remote_account(live_server)
    result = iap("similar", theirs, "--server", live_server.url, "--token", stranger.access_token)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: This image belongs to another user. (not_image_owner)"
    ]
    no_credentials = iap("duplicates", "--server", live_server.url, env={"IAP_TOKEN": None})
    assert no_credentials.exit_code == 2
