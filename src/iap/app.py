"""The FastAPI application: its lifespan (services, the in-process worker), middleware and
routers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from iap import __version__
from iap.admin.router import router as admin_router
from iap.analysis.pass_pool import PassPool, child_config
from iap.analysis.router import router as analysis_router
from iap.analysis.schemas import document_runnable_analysers
from iap.auth.router import router as auth_router
from iap.config import Settings, load_settings
from iap.error_handlers import install_error_handlers
from iap.errors import error_responses, publish_error_schema
from iap.events.router import router as events_router
from iap.events.router import webhooks as webhooks_router
from iap.finding.router import router as finding_router
from iap.images import service as image_service
from iap.images.router import router as images_router
from iap.observability import activity
from iap.observability.middleware import RequestObservability
from iap.observability.router import router as observability_router
from iap.people.router import router as people_router
from iap.readiness import NotReady, check_ready
from iap.routing import install_method_answers
from iap.services import Services, build_services, close_services
from iap.web.router import router as web_router
from iap.web.templating import STATIC_DIR
from iap.worker import WorkerRuntime, drain_timeout_ms

log = logging.getLogger(__name__)

ORPHAN_GRACE = timedelta(hours=1)

DESCRIPTION = """
Upload images, have them analysed, and find them again.

Authenticate with `POST /login` (OAuth2 password form) and send
`Authorization: Bearer <access_token>`, or create an API key at `POST /me/api-keys` and send it
as `X-API-Key`. Every error body is `{"detail": "...", "code": "..."}`.
"""


async def _sweep_orphans(services: Services) -> None:
    try:
        async with services.sessions() as session:
            await image_service.sweep_storage(session, services.storage, older_than=ORPHAN_GRACE)
    except Exception:
        log.exception("orphan blob sweep failed; it runs again at the next start")


class SecurityHeaders:
    """Adds ``X-Content-Type-Options: nosniff`` everywhere: browsers must never guess a type."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-content-type-options", b"nosniff"))
                headers.append((b"referrer-policy", b"no-referrer"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _prefers_html(accept: str) -> bool:
    """True when ``Accept`` ranks text/html above JSON (as browsers' navigations do)."""
    ranks: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranks[media.lower()] = max(quality, ranks.get(media.lower(), 0.0))
    html = ranks.get("text/html", 0.0)
    return html > 0 and html > ranks.get("application/json", 0.0)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. Without ``settings`` they are read from the environment."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await build_services(settings)
        app.state.services = services
        tasks: list[asyncio.Task[None]] = []
        # One process owns an embedded install, so it tidies up at start; scaled deployments
        # run `iap gc` on a schedule instead of every replica listing the bucket at each start.
        if settings.is_sqlite:
            tasks.append(asyncio.create_task(_sweep_orphans(services)))
        worker = None
        if services.queue.in_process:
            if settings.analysis_processes > 0:
                # Started in the background: the API serves at once, and a pass asked for
                # before a child is ready waits for it.
                services.analysis_pool = PassPool(
                    settings.analysis_processes,
                    child_config(
                        settings.log_level,
                        settings.log_format,
                        settings.disabled_analyser_names,
                        settings.analysis_processes,
                    ),
                    serving=activity.serving,
                )
                services.analysis_pool.start()
            runtime = WorkerRuntime(services, asyncio.get_running_loop())
            runtime.install()
            worker = services.queue.worker(settings.worker_threads)
            worker.start()
            # The in-memory broker starts empty: hand it every unfinished job first.
            tasks.append(asyncio.create_task(runtime.reconcile_forever(first_everything=True)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            if worker is not None:
                # In a thread: in-flight jobs still need this loop to record their results.
                await to_thread.run_sync(worker.stop, drain_timeout_ms(services.queue))
            if services.analysis_pool is not None:
                await to_thread.run_sync(services.analysis_pool.close)
            await close_services(services)

    app = FastAPI(
        title="iap — Image Analysis Platform",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(SecurityHeaders)
    # Added last, so it wraps the other middleware: it times all of a request's handling.
    app.add_middleware(RequestObservability)
    app.include_router(auth_router)
    app.include_router(finding_router)  # before /image/{image_id} reads "duplicates" as an id
    app.include_router(images_router)
    app.include_router(analysis_router)
    app.include_router(people_router)
    app.include_router(admin_router)
    app.include_router(events_router)
    app.include_router(webhooks_router)
    app.include_router(web_router)
    app.include_router(observability_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    framework_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's document, with iap's error body on every error response and the analysers
        this server runs."""
        if app.openapi_schema is None:
            spec = publish_error_schema(framework_openapi())
            document_runnable_analysers(spec, settings.disabled_analyser_names)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get(
        "/",
        tags=["service"],
        responses={303: {"description": "To the web UI, for requests that prefer HTML"}},
    )
    async def service_info(request: Request) -> Any:
        """What this service is, its version and where its docs are. Browsers (requests whose
        `Accept` prefers `text/html`) are sent on to the web UI instead."""
        if _prefers_html(request.headers.get("accept", "")):
            return RedirectResponse("/gallery", status_code=303)
        return {
            "name": "iap",
            "description": "Image Analysis Platform",
            "version": __version__,
            "docs": "/docs",
        }

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, str]:
        """Alive: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["service"], responses=error_responses(NotReady))
    async def readyz(request: Request) -> Any:
        """Ready: the database, storage and cache answer."""
        return await check_ready(request.app.state.services)

    install_method_answers(app)
    return app
