"""The request middleware: request id in, request id out, one log line and the HTTP metrics for
every request, and the count of requests in flight (``activity``). Pure ASGI (no
``BaseHTTPMiddleware``): streamed responses stay streamed and the log context reaches the
endpoint."""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from iap.observability import activity, metrics
from iap.observability.context import (
    REQUEST_ID_HEADER,
    accepted_request_id,
    bind_request_id,
    new_request_id,
    unbind,
)

log = logging.getLogger("iap.access")

UNMATCHED_ROUTE = "<unmatched>"
UPLOAD_ROUTE = ("POST", "/image/upload")
# Probes and scrapes arrive every few seconds: their lines are kept for debug level.
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
_HEADER = REQUEST_ID_HEADER.lower().encode("latin-1")


def route_template(scope: Scope) -> str:
    """The matched route's template (``/image/{image_id}``), never the raw path: the label must
    take a bounded set of values, and paths carry ids."""
    route = scope.get("route")
    if isinstance(route, Mount):
        return f"{route.path}/{{path}}"
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == _HEADER:
            return accepted_request_id(value.decode("latin-1"))
    return None


class RequestObservability:
    """Gives each HTTP request an id (the caller's ``X-Request-ID`` when it is safe, else a new
    one), binds it to the log context, echoes it in the response, then logs one line and records
    the request's duration (and, for uploads, its body size)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or new_request_id()
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (_HEADER, request_id.encode("latin-1")),
                ]
            await send(message)

        bound = bind_request_id(request_id)
        counted = scope["path"] not in activity.LONG_LIVED_PATHS
        if counted:
            activity.request_started()
        try:
            await self.app(scope, counting_receive, send_with_id)
        finally:
            if counted:
                activity.request_ended()
            _record(scope, status, time.perf_counter() - started, received)
        # Only on success: after an error the id stays bound, because the outermost error
        # handler logs the traceback once this middleware has returned, in the same task (which
        # ends with the request, and its context with it).
        unbind(bound)


def _record(scope: Scope, status: int, seconds: float, received: int) -> None:
    route = route_template(scope)
    method = scope["method"]
    metrics.observe_request(route, method, status, seconds)
    if (method, route) == UPLOAD_ROUTE:
        metrics.observe_upload(status, received)
    fields: dict[str, Any] = {
        "method": method,
        "route": route,
        "path": scope["path"],
        "status": status,
        "duration_ms": round(seconds * 1000, 1),
    }
    # Set by the authentication dependency once it knows who is calling.
    user_id = scope.get("state", {}).get("user_id")
    if user_id is not None:
        fields["user_id"] = str(user_id)
    client = scope.get("client")
    if client:
        fields["client"] = client[0]
    level = logging.DEBUG if route in QUIET_ROUTES else logging.INFO
    log.log(level, "request", extra=fields)
