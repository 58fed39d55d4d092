"""Moving an install's data: ``export_install`` writes an archive, ``import_install`` loads it.

Export reads every table in one snapshot of the source database (one read transaction), so the
rows agree with each other; the originals of the exported images and the derivatives of those
images are copied beside them. Import checks the whole archive (every checksum) before it
writes anything, stores the files, then inserts every row in one transaction: rows never point
at files that are missing, and a failed import leaves no rows behind.

Both stream: rows go through in batches and files in chunks, whatever the size of the install.
"""

from __future__ import annotations

import mimetypes
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic.runtime.migration import MigrationContext
from anyio import to_thread
from sqlalchemy import JSON, Insert, Table, bindparam, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from iap import __version__, migrations
from iap.analysis.models import AnalysisJob, JobStatus
from iap.db import Base, utcnow
from iap.errors import AppError
from iap.finding.indexing import index_missing, unindexed
from iap.images.models import Image
from iap.images.service import DERIVATIVES
from iap.models import load_all_models
from iap.storage import BlobNotFound, BlobStorage
from iap.transfer.archive import (
    BLOB_INDEX,
    FORMAT,
    FORMAT_VERSION,
    LINES_PER_BATCH,
    BlobEntry,
    BlobSet,
    FileFacts,
    HashingWriter,
    Manifest,
    RowDecoder,
    TableEntry,
    blob_file,
    encode_row,
    file_facts,
    read_blob_entry,
    read_lines,
    read_manifest,
    table_file,
    write_manifest,
)
from iap.transfer.errors import (
    ArchiveFolderNotEmpty,
    ArchiveInvalid,
    ChecksumMismatch,
    SchemaMismatch,
    TargetNotEmpty,
    TransferFailed,
)
from iap.transfer.progress import NO_PROGRESS, TransferProgress


@dataclass(frozen=True)
class TransferSummary:
    """What moved: rows per table (in dependency order) and the stored files."""

    rows: dict[str, int]
    files: int
    bytes: int

    def describe(self) -> str:
        tables = ", ".join(f"{table} {count}" for table, count in self.rows.items())
        return f"rows: {tables}; files: {self.files} ({self.bytes:,} bytes)"


@dataclass(frozen=True)
class Archive:
    """An archive folder whose manifest has been read and matches this iap's schema."""

    root: Path
    manifest: Manifest


def schema_tables() -> list[Table]:
    """Every table of the schema, parents before children (the order rows can be inserted),
    but those derived from the others (the search index), which an import rebuilds."""
    load_all_models()
    return [table for table in Base.metadata.sorted_tables if not table.info.get("derived")]


# Export ----------------------------------------------------------------------------------------


async def export_install(
    engine: AsyncEngine,
    storage: BlobStorage,
    directory: Path,
    progress: TransferProgress = NO_PROGRESS,
) -> TransferSummary:
    """Write the install's rows and stored files into ``directory`` (new, or empty) as an
    archive; the manifest goes last, once everything it describes is on disk."""
    await to_thread.run_sync(_prepare_folder, directory)
    async with engine.connect() as conn:
        await _begin_snapshot(conn)
        revision = await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )
        _check_code_revision(revision, "the source database")
        tables = [
            await _export_table(conn, table, directory, progress) for table in schema_tables()
        ]
        blobs = await _export_blobs(conn, storage, directory, progress)
        await conn.rollback()
    manifest = Manifest(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        iap_version=__version__,
        schema_revision=str(revision),
        created_at=utcnow(),
        source_database=engine.dialect.name,
        tables=tables,
        blobs=blobs,
    )
    await to_thread.run_sync(write_manifest, directory, manifest)
    return TransferSummary({t.name: t.rows for t in tables}, blobs.count, blobs.bytes)


def _prepare_folder(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise ArchiveFolderNotEmpty(f"{directory} exists and is not a folder")
    if directory.is_dir() and any(directory.iterdir()):
        raise ArchiveFolderNotEmpty(f"{directory} is not empty: export into a new or empty folder")
    directory.mkdir(parents=True, exist_ok=True)


async def _begin_snapshot(conn: AsyncConnection) -> None:
    """Start a read transaction in which every query sees the same state of the database."""
    if conn.dialect.name == "sqlite":
        # The SQLite driver only opens a transaction before a write; without this BEGIN each
        # SELECT would see the database as it is at that moment.
        await conn.exec_driver_sql("BEGIN")
    else:
        await conn.execution_options(isolation_level="REPEATABLE READ")
        await conn.begin()


def _check_code_revision(revision: str | None, what: str) -> None:
    head = migrations.head_revision()
    if revision != head:
        raise SchemaMismatch(
            f"{what} is at schema revision {revision or 'none'} but this iap needs {head}: "
            "run `iap migrate` on it first"
        )


async def _export_table(
    conn: AsyncConnection, table: Table, root: Path, progress: TransferProgress
) -> TableEntry:
    total = await conn.scalar(select(func.count()).select_from(table))
    progress.stage(f"exporting {table.name}", total, "rows")
    rows = 0
    async with HashingWriter(table_file(root, table.name)) as out:
        result = await conn.stream(select(table).order_by(*table.primary_key.columns))
        async for batch in result.mappings().partitions(LINES_PER_BATCH):
            await out.write("".join(encode_row(row) for row in batch).encode("utf-8"))
            rows += len(batch)
            progress.advance(len(batch))
    return TableEntry(
        name=table.name, rows=rows, sha256=out.sha256, columns=[c.name for c in table.columns]
    )


async def _export_blobs(
    conn: AsyncConnection, storage: BlobStorage, root: Path, progress: TransferProgress
) -> BlobSet:
    """Copy the originals of the exported images and their derivatives; index each file."""
    images = Image.__table__
    count = size = 0
    async with HashingWriter(root / BLOB_INDEX) as index:

        async def copy(key: str, content_type: str, advance: Callable[[int], None]) -> None:
            nonlocal count, size
            entry = await _copy_out(storage, key, content_type, root, advance)
            await index.write(entry.model_dump_json().encode("utf-8") + b"\n")
            count += 1
            size += entry.size

        total = await conn.scalar(select(func.coalesce(func.sum(images.c.file_size), 0)))
        progress.stage("exporting originals", total, "bytes")
        originals = await conn.stream(
            select(images.c.storage_key, images.c.file_type).order_by(images.c.id)
        )
        async for key, file_type in originals:
            await copy(key, file_type, progress.advance)

        progress.stage("exporting derivatives", None, "files")
        async for key in _derivatives_of_exported_images(conn, storage):
            await copy(key, _content_type(key), _ignore)
            progress.advance()
    return BlobSet(count=count, bytes=size, sha256=index.sha256)


def _ignore(amount: int) -> None:
    return None


def _content_type(key: str) -> str:
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


async def _copy_out(
    storage: BlobStorage,
    key: str,
    content_type: str,
    root: Path,
    advance: Callable[[int], None],
) -> BlobEntry:
    async with HashingWriter(blob_file(root, key)) as out:
        try:
            async for chunk in storage.read(key):
                await out.write(chunk)
                advance(len(chunk))
        except BlobNotFound:
            raise TransferFailed(
                f"the stored file {key} is missing from the source storage; was the source "
                "still running? Stop it and export again"
            ) from None
        except AppError as exc:
            raise TransferFailed(f"reading {key} from the source storage failed: {exc}") from None
    return BlobEntry(key=key, size=out.size, sha256=out.sha256, content_type=content_type)


async def _derivatives_of_exported_images(
    conn: AsyncConnection, storage: BlobStorage, batch: int = LINES_PER_BATCH
) -> AsyncIterator[str]:
    """Derivative keys (``derivatives/<image id>/<name>``) of images in the snapshot; those of
    deleted images (left for ``iap gc``) stay behind."""
    candidates: dict[str, uuid.UUID] = {}
    async for blob in storage.list(DERIVATIVES):
        image_id = _image_of_derivative(blob.key)
        if image_id is not None:
            candidates[blob.key] = image_id
        if len(candidates) >= batch:
            for key in await _keys_of_known_images(conn, candidates):
                yield key
            candidates = {}
    for key in await _keys_of_known_images(conn, candidates):
        yield key


def _image_of_derivative(key: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(key.removeprefix(DERIVATIVES).split("/", 1)[0])
    except ValueError:
        return None


async def _keys_of_known_images(
    conn: AsyncConnection, candidates: dict[str, uuid.UUID]
) -> list[str]:
    if not candidates:
        return []
    images = Image.__table__
    known = set(
        await conn.scalars(select(images.c.id).where(images.c.id.in_(set(candidates.values()))))
    )
    return sorted(key for key, image_id in candidates.items() if image_id in known)


# Import ----------------------------------------------------------------------------------------


def open_archive(directory: Path) -> Archive:
    """Read and check an archive's manifest: its format version, and that it was written from
    the schema this iap has (same revision, same tables and columns)."""
    manifest = read_manifest(directory)
    head = migrations.head_revision()
    if manifest.schema_revision != head:
        raise SchemaMismatch(
            f"the archive was written at schema revision {manifest.schema_revision} but this "
            f"iap is at {head}: export and import with the same iap version"
        )
    expected = {table.name: sorted(c.name for c in table.columns) for table in schema_tables()}
    found = {entry.name: sorted(entry.columns) for entry in manifest.tables}
    if found != expected:
        differing = sorted(set(expected) ^ set(found)) or sorted(
            name for name in expected if expected[name] != found[name]
        )
        raise SchemaMismatch(
            f"the archive's tables do not match this iap's schema (differing: "
            f"{', '.join(differing)})"
        )
    return Archive(directory, manifest)


async def import_install(
    engine: AsyncEngine,
    storage: BlobStorage,
    archive: Archive,
    progress: TransferProgress = NO_PROGRESS,
    *,
    merge: bool = False,
) -> TransferSummary:
    """Load ``archive`` into the install behind ``engine`` and ``storage``.

    The target must be at the archive's schema revision and, unless ``merge``, hold no rows at
    all: importing twice is refused. With ``merge``, rows whose primary key the target already
    has and files it already stores are left as they are, and only the rest is added (so
    running it again adds nothing). Returns the rows added per table and the files stored."""
    target_revision = await migrations.current_revision(engine)
    if target_revision != archive.manifest.schema_revision:
        raise SchemaMismatch(
            f"the target database is at schema revision {target_revision or 'none'} but the "
            f"archive was written at {archive.manifest.schema_revision}: run `iap migrate` on "
            "the target first"
        )
    before = await _row_counts(engine)
    if not merge and any(before.values()):
        held = ", ".join(f"{table} {count}" for table, count in before.items() if count)
        raise TargetNotEmpty(
            f"the target already holds data ({held}); import into a new, migrated install, "
            "or merge (iap import --merge) to add only what it lacks"
        )
    await verify_archive(archive, progress)
    files, size = await _import_blobs(storage, archive, progress, keep_existing=merge)
    await _import_rows(engine, archive, progress, merge=merge)
    async with AsyncSession(engine, expire_on_commit=False) as session:
        progress.stage("indexing for search", await unindexed(session), "rows")
        await index_missing(session, progress.advance)
    after = await _row_counts(engine)
    return TransferSummary({name: after[name] - before[name] for name in after}, files, size)


async def _row_counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {
            table.name: int(await conn.scalar(select(func.count()).select_from(table)) or 0)
            for table in schema_tables()
        }


async def verify_archive(archive: Archive, progress: TransferProgress = NO_PROGRESS) -> None:
    """Check every table file and every stored file against its sha256 (and the counts against
    the manifest); raise ``ChecksumMismatch`` or ``ArchiveInvalid`` at the first difference."""
    root, manifest = archive.root, archive.manifest
    table_bytes = sum(await to_thread.run_sync(_sizes, root, manifest))
    progress.stage("verifying archive", table_bytes + manifest.blobs.bytes, "bytes")
    for entry in manifest.tables:
        facts = await _facts(table_file(root, entry.name))
        _check_digest(table_file(root, entry.name), facts, entry.sha256)
        if facts.lines != entry.rows:
            raise ArchiveInvalid(
                f"{table_file(root, entry.name)} has {facts.lines} rows, the manifest says "
                f"{entry.rows}"
            )
        progress.advance(facts.size)
    index = root / BLOB_INDEX
    facts = await _facts(index)
    _check_digest(index, facts, manifest.blobs.sha256)
    progress.advance(facts.size)
    count = size = 0
    async for blob in _blob_entries(root):
        path = blob_file(root, blob.key)
        facts = await _facts(path)
        _check_digest(path, facts, blob.sha256)
        count += 1
        size += facts.size
        progress.advance(facts.size)
    if (count, size) != (manifest.blobs.count, manifest.blobs.bytes):
        raise ArchiveInvalid(
            f"{index} lists {count} files ({size} bytes), the manifest says "
            f"{manifest.blobs.count} ({manifest.blobs.bytes} bytes)"
        )


def _sizes(root: Path, manifest: Manifest) -> list[int]:
    paths = [table_file(root, entry.name) for entry in manifest.tables] + [root / BLOB_INDEX]
    return [path.stat().st_size if path.is_file() else 0 for path in paths]


async def _facts(path: Path) -> FileFacts:
    try:
        return await to_thread.run_sync(file_facts, path)
    except OSError as exc:
        raise ArchiveInvalid(f"{path} cannot be read: {exc.strerror or exc}") from None


def _check_digest(path: Path, facts: FileFacts, expected: str) -> None:
    if facts.sha256 != expected:
        raise ChecksumMismatch(
            f"{path} does not match its sha256 checksum: the archive was changed or damaged"
        )


async def _blob_entries(root: Path) -> AsyncIterator[BlobEntry]:
    number = 0
    async for lines in read_lines(root / BLOB_INDEX):
        for line in lines:
            number += 1
            yield read_blob_entry(line, f"{root / BLOB_INDEX} line {number}")


async def _import_blobs(
    storage: BlobStorage, archive: Archive, progress: TransferProgress, *, keep_existing: bool
) -> tuple[int, int]:
    """Store every file of the archive; returns how many were stored and their bytes."""
    progress.stage("storing files", archive.manifest.blobs.bytes, "bytes")
    files = size = 0
    async for entry in _blob_entries(archive.root):
        try:
            if not (keep_existing and await storage.exists(entry.key)):
                await _put(storage, blob_file(archive.root, entry.key), entry)
                files += 1
                size += entry.size
        except AppError as exc:
            raise TransferFailed(f"storing {entry.key} in the target failed: {exc}") from None
        progress.advance(entry.size)
    return files, size


async def _put(storage: BlobStorage, path: Path, entry: BlobEntry) -> None:
    handle = await to_thread.run_sync(path.open, "rb")
    try:
        await storage.put(entry.key, handle, entry.content_type)
    finally:
        await to_thread.run_sync(handle.close)


async def _import_rows(
    engine: AsyncEngine, archive: Archive, progress: TransferProgress, *, merge: bool
) -> None:
    """Insert every table's rows, parents first, in one transaction."""
    async with engine.begin() as conn:
        for table in schema_tables():
            entry = archive.manifest.table(table.name)
            assert entry is not None, "open_archive() checked the archive's tables"
            progress.stage(f"importing {table.name}", entry.rows, "rows")
            path = table_file(archive.root, table.name)
            statement = _insert_statement(table, conn.dialect.name, merge=merge)
            decode = RowDecoder(table)
            number = 0
            async for lines in read_lines(path):
                batch = []
                for line in lines:
                    number += 1
                    row = _ready_for_target(table, decode(line, f"{path} line {number}"))
                    batch.append({_param(name): value for name, value in row.items()})
                try:
                    await conn.execute(statement, batch)
                except StatementError as exc:
                    reason = str(exc.orig or exc).splitlines()[0]
                    raise TransferFailed(
                        f"the target refused a row of {table.name} ({reason}); no row was imported"
                    ) from None
                progress.advance(len(batch))


def _param(column: str) -> str:
    # A bound parameter may not share its name with a column of the inserted table.
    return f"archive_{column}"


def _insert_statement(table: Table, dialect: str, *, merge: bool) -> Insert:
    # JSON columns: an absent value is written as SQL NULL (the JSON type's default would be
    # the JSON text 'null'); iap reads both as None, and NULL is what an omitted value gives.
    values: dict[str, Any] = {
        column.name: bindparam(
            _param(column.name),
            type_=JSON(none_as_null=True) if isinstance(column.type, JSON) else column.type,
        )
        for column in table.columns
    }
    if not merge:
        return insert(table).values(values)
    keys = list(table.primary_key.columns)
    if dialect == "postgresql":
        return postgresql.insert(table).values(values).on_conflict_do_nothing(index_elements=keys)
    if dialect == "sqlite":
        return sqlite.insert(table).values(values).on_conflict_do_nothing(index_elements=keys)
    raise TransferFailed(f"merging into a {dialect} database is not supported")


def _ready_for_target(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """Analyses the source had not finished are queued again: no worker of the target holds
    them, and a job never handed to the broker is one the target's reconciler sends at once."""
    if table.name == AnalysisJob.__tablename__ and row["status"] in {
        JobStatus.QUEUED,
        JobStatus.RUNNING,
    }:
        row["status"] = JobStatus.QUEUED
        row["enqueued_at"] = None
    return row
