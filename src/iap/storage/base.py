"""The object-storage contract every backend honours."""

from __future__ import annotations

import abc
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from iap.errors import AppError

CHUNK_SIZE = 256 * 1024
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


class StorageUnavailable(AppError):
    status = 503
    code = "storage_unavailable"
    detail = "The image store is unavailable; retry shortly."


class BlobNotFound(AppError):
    status = 404
    code = "blob_not_found"
    detail = "The stored file for this image is missing."


@dataclass(frozen=True)
class BlobInfo:
    key: str
    size: int
    modified: datetime


def check_key(key: str) -> str:
    """Keys are relative, slash-separated names with no '..' or empty parts."""
    if not _KEY.fullmatch(key) or ".." in key.split("/"):
        raise ValueError(f"invalid storage key {key!r}")
    return key


class BlobStorage(abc.ABC):
    """Byte-exact blobs under string keys."""

    @abc.abstractmethod
    async def put(self, key: str, source: BinaryIO, content_type: str) -> None:
        """Store ``source`` (from its start) under ``key``; readers never see a partial blob."""

    @abc.abstractmethod
    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Yield the bytes ``start..end`` (inclusive) of the blob, in chunks."""

    async def read_all(self, key: str) -> bytes:
        """The whole blob (for small ones: thumbnails, an original being analysed)."""
        return b"".join([chunk async for chunk in self.read(key)])

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the blob; removing a missing blob is not an error."""

    @abc.abstractmethod
    async def exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def list(self, prefix: str) -> AsyncIterator[BlobInfo]:
        """Every blob whose key starts with ``prefix``."""

    async def sweep_leftovers(self, older_than: datetime) -> int:
        """Remove what interrupted writes left behind before ``older_than`` (never a blob):
        partial files, emptied folders, abandoned multipart uploads. Returns how many."""
        return 0

    @abc.abstractmethod
    async def check(self) -> None:
        """Raise ``StorageUnavailable`` if the store cannot be used."""

    def presigned_url(
        self, key: str, *, filename_header: str, content_type: str, ttl_seconds: int
    ) -> str | None:
        """A short-lived direct download URL, where the backend has such a thing."""
        return None

    async def close(self) -> None:
        return None
