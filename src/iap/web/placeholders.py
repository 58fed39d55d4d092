"""Blurhash placeholders, decoded on the server into tiny PNG data URIs.

A card shows its placeholder at once, with no script and no extra request; the browser scales
the few pixels up smoothly, which is the blur. Decoding 8 px wide costs well under a millisecond,
and the results are kept.
"""

from __future__ import annotations

import base64
import io
from functools import lru_cache

import blurhash
from PIL import Image

WIDTH = 8


@lru_cache(maxsize=4096)
def placeholder_uri(hash_: str, aspect: float) -> str | None:
    """A PNG data URI for ``hash_`` at ``aspect`` (width / height), or None if it is malformed."""
    height = max(1, min(32, round(WIDTH / aspect))) if aspect > 0 else WIDTH
    try:
        rows = blurhash.decode(hash_, WIDTH, height)
    except (ValueError, IndexError, TypeError):
        return None
    pixels = bytes(
        max(0, min(255, int(channel))) for row in rows for pixel in row for channel in pixel[:3]
    )
    buffer = io.BytesIO()
    Image.frombytes("RGB", (WIDTH, height), pixels).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
