"""What an uploaded file really is, decided from its bytes, before anything is stored.

The order matters for hostile input: the format is identified from the header with only the
allowed decoders (Pillow never tries EPS, PSD or other risky parsers), the declared dimensions
are checked against the pixel and side limits before any pixel is decoded (decompression bombs
stop here), and only then is the image decoded once — at reduced scale where the codec allows
it — to prove that it is complete.
"""

from __future__ import annotations

import hashlib
import logging
import re
import warnings
from dataclasses import dataclass
from typing import BinaryIO

import pillow_heif
from PIL import Image, UnidentifiedImageError

from iap.images.errors import CorruptImage, EmptyFile, TooManyPixels, UnsupportedImageType

log = logging.getLogger(__name__)

pillow_heif.register_heif_opener()

# Pillow format name -> MIME type served back on download.
ALLOWED_FORMATS: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
    "BMP": "image/bmp",
    "HEIF": "image/heif",
    "AVIF": "image/avif",
}
_HASH_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ImageFacts:
    format: str
    mime_type: str
    width: int
    height: int
    frames: int
    file_size: int
    sha256: str


def inspect_image(source: BinaryIO, *, max_pixels: int, max_side: int) -> ImageFacts:
    """Identify, bound-check and decode ``source``; raise a 4xx ``AppError`` if it is unfit.

    Blocking (CPU and I/O): call it from a worker thread.
    """
    size, digest = _size_and_sha256(source)
    if size == 0:
        raise EmptyFile()
    source.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source, formats=list(ALLOWED_FORMATS)) as image:
                facts = _check_header(image, size, digest, max_pixels, max_side)
                _decode_reduced(image)
    except UnidentifiedImageError:
        raise UnsupportedImageType(
            "The file is not an image in a supported format "
            f"({', '.join(sorted(ALLOWED_FORMATS))}); the type is read from its content, "
            "not its name."
        ) from None
    except Image.DecompressionBombError as exc:
        # Pillow's own guard fired while reading the header (far over the limit).
        declared = re.search(r"\((\d+) pixels\)", str(exc))
        amount = f"{int(declared.group(1)):,}" if declared else f"more than {max_pixels:,}"
        raise TooManyPixels(
            f"The image declares {amount} pixels; the limit is {max_pixels:,}. "
            "It was refused before decoding."
        ) from None
    except (TooManyPixels, CorruptImage):
        raise
    except Exception as exc:  # any decoder failure on hostile bytes is the file's fault
        log.info("upload failed to decode: %s: %s", type(exc).__name__, exc)
        raise CorruptImage(
            f"The image data is damaged or incomplete and could not be decoded ({_reason(exc)})."
        ) from None
    return facts


def _size_and_sha256(source: BinaryIO) -> tuple[int, str]:
    source.seek(0)
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(_HASH_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def _check_header(
    image: Image.Image, size: int, digest: str, max_pixels: int, max_side: int
) -> ImageFacts:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise CorruptImage("The image declares zero width or height.")
    if width * height > max_pixels or width > max_side or height > max_side:
        raise TooManyPixels(
            f"The image is {width}x{height} pixels; the limit is {max_pixels:,} pixels "
            f"and {max_side} pixels a side. It was refused before decoding."
        )
    fmt = image.format or ""
    return ImageFacts(
        format=fmt,
        mime_type=ALLOWED_FORMATS[fmt],
        width=width,
        height=height,
        frames=int(getattr(image, "n_frames", 1)),
        file_size=size,
        sha256=digest,
    )


def _decode_reduced(image: Image.Image) -> None:
    """Decode the first frame fully enough to find truncation, as cheaply as the codec allows."""
    if image.format == "JPEG":
        # JPEG decodes at 1/8 scale (DCT scaling) yet still reads every byte of the scan.
        width, height = image.size
        image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
    image.load()


def _reason(exc: Exception) -> str:
    text = str(exc).strip().rstrip(".")
    return text[:200] if text else type(exc).__name__
