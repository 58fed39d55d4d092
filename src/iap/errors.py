"""The one error shape of the API and the handlers that produce it.

Every 4xx/5xx body is ``{"detail": "<human sentence>", "code": "<stable_snake_case>"}``.
Domains raise ``AppError`` subclasses; the mapping to HTTP happens here, once.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

log = logging.getLogger(__name__)


class AppError(Exception):
    """A failure the client can act on. Subclasses set ``status`` and ``code``."""

    status: int = 400
    code: str = "bad_request"
    detail: str = "The request could not be processed."

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        self.detail = detail or self.detail
        self.headers = headers
        super().__init__(self.detail)


class NotFound(AppError):
    status = 404
    code = "not_found"
    detail = "Not found."


class Forbidden(AppError):
    status = 403
    code = "forbidden"
    detail = "You do not have access to this resource."


class RateLimited(AppError):
    status = 429
    code = "rate_limited"
    detail = "Too many requests; retry later."


_STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    411: "length_required",
    413: "request_too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "validation_error",
    429: "rate_limited",
}


def error_body(detail: Any, code: str) -> dict[str, Any]:
    return {"detail": detail, "code": code}


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return JSONResponse(error_body(exc.detail, exc.code), exc.status, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"There is no route {request.method} {request.url.path}."
    return JSONResponse(error_body(detail, code), exc.status_code, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = jsonable_encoder(exc.errors(), exclude={"input", "ctx", "url"})
    return JSONResponse(error_body(errors, "validation_error"), 422)


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    log.error("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    body = error_body("The database is unavailable; retry shortly.", "database_unavailable")
    return JSONResponse(body, 503, headers={"Retry-After": "5"})


async def _client_gone(request: Request, exc: Exception) -> JSONResponse:
    # Nobody is listening any more; the answer is for the access log only.
    return JSONResponse(error_body("The client disconnected.", "client_disconnected"), 400)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(
        error_body("Internal server error; the failure was logged.", "internal_error"), 500
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for db_error in (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError):
        app.add_exception_handler(db_error, _database_down)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected)
