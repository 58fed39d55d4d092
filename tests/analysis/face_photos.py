"""Real photos of the same people, for the faces accuracy set (``tests/analysis/accuracy.py``).

They are the test pictures of the ``face_recognition`` package (MIT licence, copyright 2017
Adam Geitgey): three photos of Barack Obama, one of Joe Biden, and two crops of the first
Obama photo with half the face cut off. They are taken from the package's source archive on
PyPI, pinned by URL and SHA-256, into ``.cache/face-photos/`` (git-ignored), each JPEG checked
against its own pinned SHA-256.

``python -m tests.analysis.face_photos`` fetches them, and ``make pytest`` runs it before the
tests; it downloads nothing when every photo is already there and intact. Nothing is
downloaded while the tests run: ``photo`` only reads the cache, and says how to fill it.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

ARCHIVE_URL = (
    "https://files.pythonhosted.org/packages/6c/49/"
    "75dda409b94841f01cbbc34114c9b67ec618265084e4d12d37ab838f4fd3/"
    "face_recognition-1.3.0.tar.gz"
)
ARCHIVE_SHA256 = "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec"
ARCHIVE_FOLDER = "face_recognition-1.3.0/tests/test_images/"
# Each photo's SHA-256, as it is in the archive.
PHOTOS = {
    "obama.jpg": "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6",
    "obama2.jpg": "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6",
    "obama3.jpg": "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3",
    "obama_partial_face.jpg": "c2d1f09e7ef3042352b41e41286e6eb0522f64f88308be13886991b95db52117",
    "obama_partial_face2.jpg": "9a812347f97633542b8cd9992de22def11b74f79d82056bc3ee830f13878e028",
    "biden.jpg": "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c",
}
CACHE = Path(__file__).resolve().parents[2] / ".cache" / "face-photos"
FETCH_COMMAND = ".venv/bin/python -m tests.analysis.face_photos"
DOWNLOAD_TIMEOUT_SECONDS = 120

Download = Callable[[str], bytes]


class PhotoMissing(FileNotFoundError):
    """A photo is not in the cache, or not the pinned one."""


class ArchiveMismatch(ValueError):
    """The downloaded archive, or a photo in it, is not the pinned one."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _intact(name: str, cache: Path) -> bytes | None:
    """The bytes of ``name`` in ``cache`` if they are the pinned ones."""
    try:
        data = (cache / name).read_bytes()
    except FileNotFoundError:
        return None
    return data if sha256(data) == PHOTOS[name] else None


def missing(cache: Path = CACHE) -> list[str]:
    """The photos that are absent from ``cache`` or differ from the pinned ones."""
    return [name for name in PHOTOS if _intact(name, cache) is None]


def photo(name: str, cache: Path = CACHE) -> bytes:
    """The JPEG bytes of the photo ``name`` (a key of ``PHOTOS``), read from ``cache``."""
    if name not in PHOTOS:
        raise KeyError(f"no photo {name!r}: the photos are {', '.join(PHOTOS)}")
    data = _intact(name, cache)
    if data is None:
        state = "differs from the pinned one" if (cache / name).exists() else "is missing"
        raise PhotoMissing(
            f"the face photo {cache / name} {state}: run `{FETCH_COMMAND}` (`make pytest` "
            "runs it) to fetch the photos"
        )
    return data


def extract(archive: bytes, cache: Path = CACHE) -> list[str]:
    """Check ``archive`` against the pinned SHA-256 and write the photos it holds that
    ``cache`` lacks. Returns the names written."""
    if sha256(archive) != ARCHIVE_SHA256:
        raise ArchiveMismatch(
            f"the archive's SHA-256 is {sha256(archive)}, not the pinned {ARCHIVE_SHA256}"
        )
    wanted = missing(cache)
    cache.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for name in wanted:
            # Read by exact name, never extracted as the archive says: no path escapes cache.
            member = tar.extractfile(ARCHIVE_FOLDER + name)
            if member is None:
                raise ArchiveMismatch(f"{ARCHIVE_FOLDER + name} is not a file in the archive")
            data = member.read()
            if sha256(data) != PHOTOS[name]:
                raise ArchiveMismatch(f"{name} in the archive is not the pinned photo")
            partial = cache / f".{name}.partial"
            partial.write_bytes(data)
            os.replace(partial, cache / name)
    return wanted


def download(url: str) -> bytes:
    if not url.startswith("https://"):
        raise ValueError(f"not an https URL: {url}")
    # The scheme is checked above: urlopen would open file: URLs too.
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:  # noqa: S310
        data: bytes = response.read()
    return data


def fetch(cache: Path = CACHE, get: Download = download) -> list[str]:
    """Make sure every photo is in ``cache`` and intact, downloading the archive only when one
    is not. Returns the names written."""
    if not missing(cache):
        return []
    return extract(get(ARCHIVE_URL), cache)


def main() -> None:
    try:
        written = fetch()
    except (OSError, ArchiveMismatch) as exc:
        sys.exit(f"face photos: cannot fetch them from {ARCHIVE_URL}: {exc}")
    if written:
        print(f"face photos: wrote {', '.join(written)} to {CACHE}")
    else:
        print(f"face photos: all {len(PHOTOS)} already in {CACHE}")


if __name__ == "__main__":
    main()
