"""The handlers that turn errors into the API's one error shape (``iap.errors``)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from iap.errors import (
    HTTP_ERROR_CODES,
    OTHER_HTTP_ERROR,
    AppError,
    ClientDisconnected,
    DatabaseUnavailable,
    InternalError,
    ValidationFailed,
    error_body,
)

log = logging.getLogger("iap.errors")


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return JSONResponse(error_body(exc.detail, exc.code), exc.status, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_ERROR_CODES.get(exc.status_code, OTHER_HTTP_ERROR)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"There is no route {request.method} {request.url.path}."
    return JSONResponse(error_body(detail, code), exc.status_code, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = jsonable_encoder(exc.errors(), exclude={"input", "ctx", "url"})
    return JSONResponse(error_body(errors, ValidationFailed.code), ValidationFailed.status)


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    log.error("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    body = error_body(DatabaseUnavailable.detail, DatabaseUnavailable.code)
    return JSONResponse(body, DatabaseUnavailable.status, headers={"Retry-After": "5"})


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A driver error SQLAlchemy did not classify: a connection the server cut mid-query (a
    restart, a failover) is the database being unavailable; anything else is a bug."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return await _database_down(request, exc)
    return await _unexpected(request, exc)


async def _client_gone(request: Request, exc: Exception) -> JSONResponse:
    # Nobody is listening any more; the answer is for the access log only.
    body = error_body(ClientDisconnected.detail, ClientDisconnected.code)
    return JSONResponse(body, ClientDisconnected.status)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body(InternalError.detail, InternalError.code), InternalError.status)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for db_error in (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError):
        app.add_exception_handler(db_error, _database_down)
    app.add_exception_handler(sa_exc.DBAPIError, _database_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected)
