"""The Jinja2 environment of the pages: autoescaped, with a few filters for people."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from fastapi.templating import Jinja2Templates

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"

templates = Jinja2Templates(directory=HERE / "templates")


def file_size(value: int | float | None) -> str:
    """1536 -> '1.5 KB' (decimal units, as file managers show them)."""
    if value is None:
        return "—"
    size = float(value)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover - the loop returns first


def when(value: datetime | str | None) -> str:
    """A timestamp as people read it, in UTC: '2026-01-31 12:00 UTC'."""
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def percent(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def exposure(seconds: float | None) -> str:
    """0.004 -> '1/250 s'."""
    if not seconds:
        return "—"
    if seconds >= 1:
        return f"{seconds:g} s"
    return f"1/{round(1 / seconds)} s"


templates.env.filters.update(file_size=file_size, when=when, percent=percent, exposure=exposure)
