"""Opaque keyset cursors: where the last page ended, in the order it was listed in.

A cursor is the URL-safe base64 of a small JSON array: the sort it belongs to, the last row's
sort value and its id. It is opaque to clients (its form may change between versions), and
it is no secret: it holds only what the page itself showed.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from iap.images.errors import InvalidCursor

# A cursor's length is bounded by the longest sort value (a 255-character filename).
MAX_CURSOR = 1_500


@dataclass(frozen=True)
class After:
    value: Any
    id: uuid.UUID


def encode(order: str, value: datetime | str | int, last_id: uuid.UUID) -> str:
    plain = value.isoformat() if isinstance(value, datetime) else value
    raw = json.dumps([order, plain, str(last_id)], separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(cursor: str, order: str, value_type: type) -> After:
    """The position ``cursor`` names, if it is one of ``order``'s; else ``InvalidCursor``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        kept_order, value, last_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidCursor() from None
    if kept_order != order:
        if not isinstance(kept_order, str):
            raise InvalidCursor()
        raise InvalidCursor(
            f"This cursor belongs to a list sorted by {kept_order[:40]!r}, not {order!r}: "
            "ask again with the same sort, or start from the first page."
        )
    try:
        return After(_typed(value, value_type), uuid.UUID(last_id))
    except (ValueError, TypeError, AttributeError):
        raise InvalidCursor() from None


def _typed(value: Any, value_type: type) -> Any:
    if value_type is datetime and isinstance(value, str):
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("a cursor's moment has its offset")
        return moment
    if value_type is int and isinstance(value, int) and not isinstance(value, bool):
        if not -(2**63) <= value < 2**63:  # the databases' BIGINT
            raise ValueError("out of range")
        return value
    if value_type is str and isinstance(value, str):
        return value
    if value_type is float and isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        return float(value)
    raise ValueError(f"expected a {value_type.__name__}")


def encode_position(order: str, *values: float | int) -> str:
    """A cursor for lists ordered by numbers (a search's score, then its index row)."""
    raw = json.dumps([order, *values], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_position(cursor: str, order: str, *types: type) -> tuple[Any, ...]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        kept_order, *values = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidCursor() from None
    if kept_order != order or len(values) != len(types):
        raise InvalidCursor()
    try:
        return tuple(_typed(value, kind) for value, kind in zip(values, types, strict=True))
    except (ValueError, TypeError, OverflowError):
        raise InvalidCursor() from None


def encode_key(order: str, key: str) -> str:
    """A cursor for lists whose entries have a unique string key (a duplicate group's)."""
    raw = json.dumps([order, key], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_key(cursor: str, order: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        kept_order, key = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidCursor() from None
    if kept_order != order or not isinstance(key, str):
        raise InvalidCursor()
    return key
