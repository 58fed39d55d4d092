"""The archive format: a self-describing folder that another iap install can load.

::

    manifest.json          format and version, schema revision, counts and checksums
    tables/<table>.jsonl   the rows of one table, one JSON object per line, columns by name
    blobs.jsonl            the stored files, one per line: key, size, sha256, content type
    blobs/<key>            the files: originals/<image id>, derivatives/<image id>/<name>

The manifest is written last, so a folder without one is an export that did not finish. It
carries the sha256 of every table file and of the blob index, and the index carries the sha256
of every file, so one tampered or truncated byte anywhere is found before anything is loaded.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any, BinaryIO, Literal, TextIO

from anyio import to_thread
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import Table, TypeDecorator

from iap.storage.base import check_key
from iap.transfer.errors import ArchiveInvalid, ArchiveNotFound, UnsupportedFormat

FORMAT = "iap-archive"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
BLOB_INDEX = "blobs.jsonl"
TABLES_DIR = "tables"
BLOBS_DIR = "blobs"
LINES_PER_BATCH = 500
_READ_CHUNK = 1024 * 1024

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class TableEntry(BaseModel):
    name: str = Field(pattern=r"^[a-z_][a-z0-9_]*$")
    rows: int = Field(ge=0)
    sha256: Sha256
    columns: list[str]


class BlobSet(BaseModel):
    count: int = Field(ge=0)
    bytes: int = Field(ge=0)
    sha256: Sha256


class Manifest(BaseModel):
    """``manifest.json``: what the archive holds and what it was written from."""

    format: Literal["iap-archive"]
    format_version: int
    iap_version: str
    schema_revision: str
    created_at: datetime
    source_database: str
    tables: list[TableEntry]
    blobs: BlobSet

    def table(self, name: str) -> TableEntry | None:
        return next((entry for entry in self.tables if entry.name == name), None)


class BlobEntry(BaseModel):
    """One line of ``blobs.jsonl``."""

    key: str
    size: int = Field(ge=0)
    sha256: Sha256
    content_type: str


def table_file(root: Path, name: str) -> Path:
    return root / TABLES_DIR / f"{name}.jsonl"


def blob_file(root: Path, key: str) -> Path:
    """Where the file stored under ``key`` lives in the archive (keys never climb out of it)."""
    return root / BLOBS_DIR / check_key(key)


def read_manifest(root: Path) -> Manifest:
    """The archive's manifest, checked: the folder exists, the manifest is there and readable,
    and its format version is one this iap reads."""
    if not root.is_dir():
        raise ArchiveNotFound(f"{root}: no such folder")
    path = root / MANIFEST
    if not path.is_file():
        raise ArchiveInvalid(
            f"{root} has no {MANIFEST}: it is not an iap archive, or its export did not finish"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArchiveInvalid(f"{path} cannot be read: {exc}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ArchiveInvalid(f"{path} is not the manifest of an iap archive")
    # The version is checked before the rest: a newer format may have other fields.
    if raw.get("format_version") != FORMAT_VERSION:
        raise UnsupportedFormat(
            f"{path}: archive format version {raw.get('format_version')!r} is not supported "
            f"(this iap reads version {FORMAT_VERSION})"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ArchiveInvalid(f"{path}: {where}: {first['msg']}") from None


def write_manifest(root: Path, manifest: Manifest) -> None:
    """Write the manifest under a temporary name and rename it: it appears whole or not at all."""
    tmp = root / f".{MANIFEST}.tmp"
    tmp.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, root / MANIFEST)


def read_blob_entry(line: str, where: str) -> BlobEntry:
    try:
        entry = BlobEntry.model_validate_json(line)
        check_key(entry.key)
    except (ValidationError, ValueError) as exc:
        raise ArchiveInvalid(f"{where}: not a valid blob entry ({exc})") from None
    return entry


# Rows ------------------------------------------------------------------------------------------


def _jsonable(value: object) -> object:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"a {type(value).__name__} value cannot be written to an archive")


def encode_row(row: Mapping[Any, Any]) -> str:
    """One JSON line (with its newline). Column values as the database hands them to Python:
    UUIDs and timestamps as text (ISO 8601, with their zone), JSON columns as JSON."""
    return (
        json.dumps(dict(row), default=_jsonable, ensure_ascii=False, separators=(",", ":")) + "\n"
    )


def _same(value: Any) -> Any:
    return value


def _converter(table: Table, name: str) -> Callable[[Any], Any]:
    """How a column's JSON value turns back into what the column's type binds."""
    column_type = table.c[name].type
    if isinstance(column_type, TypeDecorator):  # its python_type is 'object'; the impl's is not
        column_type = column_type.impl_instance
    try:
        kind = column_type.python_type
    except NotImplementedError:
        return _same
    parse: Callable[[Any], Any] = _same
    if kind is uuid.UUID:
        parse = uuid.UUID
    elif kind is datetime:
        parse = datetime.fromisoformat
    elif isinstance(kind, type) and issubclass(kind, enum.Enum):
        parse = kind
    if parse is _same:
        return _same
    return lambda value: None if value is None else parse(value)


class RowDecoder:
    """Turns an archive line of ``table`` back into bind values for an insert."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.columns = {column.name: _converter(table, column.name) for column in table.columns}

    def __call__(self, line: str, where: str) -> dict[str, Any]:
        try:
            raw = json.loads(line)
            if not isinstance(raw, dict) or raw.keys() != self.columns.keys():
                raise ValueError(f"the columns are not those of {self.table.name}")
            return {name: parse(raw[name]) for name, parse in self.columns.items()}
        except (ValueError, TypeError) as exc:
            raise ArchiveInvalid(f"{where}: not a valid {self.table.name} row ({exc})") from None


# Files -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileFacts:
    sha256: str
    size: int
    lines: int


def file_facts(path: Path) -> FileFacts:
    """sha256, size and line count of a file, read in chunks (blocking: call it in a thread)."""
    digest = hashlib.sha256()
    size = lines = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_READ_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            lines += chunk.count(b"\n")
    return FileFacts(digest.hexdigest(), size, lines)


class HashingWriter:
    """A new file written from async code, hashed and measured as it is written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.digest = hashlib.sha256()
        self.size = 0
        self._handle: BinaryIO | None = None

    async def __aenter__(self) -> HashingWriter:
        def open_new() -> BinaryIO:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return self.path.open("xb")  # never overwrite: the archive folder started empty

        self._handle = await to_thread.run_sync(open_new)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            await to_thread.run_sync(self._handle.close)

    async def write(self, data: bytes) -> None:
        assert self._handle is not None, "write() outside of 'async with'"
        self.digest.update(data)
        self.size += len(data)
        await to_thread.run_sync(self._handle.write, data)

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()


async def read_lines(path: Path, batch: int = LINES_PER_BATCH) -> AsyncIterator[list[str]]:
    """The file's lines, ``batch`` at a time (one thread hop per batch, not per line)."""

    def take(handle: TextIO) -> list[str]:
        lines = []
        for line in handle:
            lines.append(line)
            if len(lines) >= batch:
                break
        return lines

    handle: TextIO = await to_thread.run_sync(lambda: path.open(encoding="utf-8", newline="\n"))
    try:
        while lines := await to_thread.run_sync(take, handle):
            yield lines
    finally:
        await to_thread.run_sync(handle.close)
