"""HTTP Range requests (RFC 9110 section 14) for downloads: one byte range, or the whole file."""

from __future__ import annotations

from iap.images.errors import RangeNotSatisfiable


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive ``(start, end)`` to send, or None for the whole file.

    Malformed or multi-range headers are ignored (the full body is a valid answer); a range
    that lies wholly past the end is a 416.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first == "":
            suffix = int(last)
            if suffix <= 0:
                raise _unsatisfiable(size)
            return max(0, size - suffix), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start < 0:
        return None
    if start >= size:
        raise _unsatisfiable(size)
    if end < start:
        return None
    return start, min(end, size - 1)


def _unsatisfiable(size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        f"The requested range lies outside the file ({size} bytes).",
        headers={"Content-Range": f"bytes */{size}"},
    )
