"""Readiness: each dependency answers within a short timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from anyio import to_thread
from fastapi.responses import JSONResponse
from sqlalchemy import text

from iap.errors import AppError
from iap.services import Services

TIMEOUT_SECONDS = 2.0


class NotReady(AppError):
    """``GET /readyz``'s answer when a dependency is down (returned, not raised)."""

    status = 503
    code = "not_ready"
    detail = "A dependency is not answering."


async def check_ready(services: Services) -> JSONResponse:
    async def database() -> None:
        async with services.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def broker() -> None:
        await to_thread.run_sync(services.queue.check)

    checks: dict[str, Callable[[], Awaitable[Any]]] = {
        "database": database,
        "storage": services.storage.check,
        "cache": services.cache.check,
        "broker": broker,
    }
    results = await asyncio.gather(*(_run(fn) for fn in checks.values()))
    report = dict(zip(checks, results, strict=True))
    ready = all(value == "ok" for value in report.values())
    body: dict[str, Any] = {"status": "ready" if ready else "not_ready", "checks": report}
    if not ready:
        body |= {"detail": NotReady.detail, "code": NotReady.code}
    return JSONResponse(body, status_code=200 if ready else NotReady.status)


async def _run(check: Callable[[], Awaitable[Any]]) -> str:
    try:
        await asyncio.wait_for(check(), TIMEOUT_SECONDS)
    except TimeoutError:
        return "timeout"
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"
