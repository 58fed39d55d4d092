"""Blobs as files under one directory (the embedded default)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from anyio import to_thread

from iap.storage.base import (
    CHUNK_SIZE,
    BlobInfo,
    BlobNotFound,
    BlobStorage,
    StorageUnavailable,
    check_key,
)

# A blob being written, under a name no key can have (keys never start with a dot).
PARTIAL_PREFIX = ".tmp-"


def _older(path: Path, cutoff: datetime) -> bool:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC) < cutoff
    except FileNotFoundError:
        return False


class LocalStorage(BlobStorage):
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put(self, key: str, source: BinaryIO, content_type: str) -> None:
        await to_thread.run_sync(self._put, self._path(key), source)

    @staticmethod
    def _put(target: Path, source: BinaryIO) -> None:
        # Copy to a temporary name beside the target, flush it to disk, then rename:
        # a crash leaves either no blob or the whole blob, never a torn one (and a partial
        # file that ``sweep_leftovers`` removes).
        for _ in range(3):  # a delete may remove the folder as it empties: make it again
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=PARTIAL_PREFIX)
                break
            except FileNotFoundError:
                continue
        else:
            raise FileNotFoundError(f"the folder of {target.name} kept disappearing")
        try:
            with os.fdopen(fd, "wb") as out:
                source.seek(0)
                shutil.copyfileobj(source, out, CHUNK_SIZE)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            handle = await to_thread.run_sync(path.open, "rb")
        except FileNotFoundError:
            raise BlobNotFound() from None
        try:
            await to_thread.run_sync(handle.seek, start)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                size = CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining)
                chunk = await to_thread.run_sync(handle.read, size)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            await to_thread.run_sync(handle.close)

    async def read_all(self, key: str) -> bytes:
        # One read into one buffer: joining chunks would hold the blob twice at the end.
        try:
            return await to_thread.run_sync(self._path(key).read_bytes)
        except FileNotFoundError:
            raise BlobNotFound() from None

    async def delete(self, key: str) -> None:
        await to_thread.run_sync(self._delete, self._path(key))

    def _delete(self, path: Path) -> None:
        """Remove the file, then the folders it leaves empty (an image's derivatives folder)."""
        path.unlink(missing_ok=True)
        folder = path.parent
        # The top folders (originals/, derivatives/) stay; the ones below them go when empty.
        while folder.parent != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:  # not empty (or already gone): the folders above are in use
                return
            folder = folder.parent

    async def exists(self, key: str) -> bool:
        return await to_thread.run_sync(self._path(key).is_file)

    async def list(self, prefix: str) -> AsyncIterator[BlobInfo]:
        # Walk only the folder the prefix names (derivatives/<id>/ is one small folder), not
        # the whole store.
        start = self.root / prefix.rpartition("/")[0] if "/" in prefix else self.root

        def scan() -> list[BlobInfo]:
            # A folder that a delete empties goes at once; one that went mid-walk ends the
            # walk with FileNotFoundError: walk again (what went had no blobs left).
            for _ in range(5):
                try:
                    return walk()
                except FileNotFoundError:
                    continue
            return walk()

        def walk() -> list[BlobInfo]:
            found = []
            for path in start.rglob("*"):
                if not path.is_file() or path.name.startswith(PARTIAL_PREFIX):
                    continue
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    stat = path.stat()
                    modified = datetime.fromtimestamp(stat.st_mtime, UTC)
                    found.append(BlobInfo(key, stat.st_size, modified))
            return found

        for info in await to_thread.run_sync(scan):
            yield info

    async def sweep_leftovers(self, older_than: datetime) -> int:
        def sweep() -> int:
            removed = 0
            if not self.root.is_dir():
                return 0
            # Deepest first, so that a folder emptied here is removed in the same sweep. Empty
            # folders (an image's, once its files went) are removed but not counted.
            for folder, _, files in os.walk(self.root, topdown=False):
                here = Path(folder)
                # Judged before we touch it; the top folders (originals/, ...) stay.
                idle = self.root in here.parents[1:] and _older(here, older_than)
                for name in files:
                    path = here / name
                    if name.startswith(PARTIAL_PREFIX) and _older(path, older_than):
                        path.unlink(missing_ok=True)
                        removed += 1
                if idle:
                    with contextlib.suppress(OSError):  # not empty: in use
                        here.rmdir()
            return removed

        return await to_thread.run_sync(sweep)

    async def check(self) -> None:
        def probe() -> None:
            self.root.mkdir(parents=True, exist_ok=True)
            if not os.access(self.root, os.W_OK):
                raise PermissionError(f"{self.root} is not writable")

        try:
            await to_thread.run_sync(probe)
        except OSError as exc:
            raise StorageUnavailable(f"The image directory cannot be used: {exc}") from exc
