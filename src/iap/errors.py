"""The one error shape of the API.

Every 4xx/5xx body is ``{"detail": "<human sentence>", "code": "<stable_snake_case>"}``.
Domains raise ``AppError`` subclasses; ``iap.error_handlers`` maps them (and the framework's
and the database's errors) to HTTP, once. This module does not import the web framework:
workers, which raise and catch these errors too, do not load it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AppError(Exception):
    """A failure the client can act on. Subclasses set ``status`` and ``code``."""

    status: int = 400
    code: str = "bad_request"
    detail: str = "The request could not be processed."

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        self.detail = detail or self.detail
        self.headers = headers
        super().__init__(self.detail)


def subclasses() -> list[type[AppError]]:
    """Every ``AppError`` subclass defined so far (import a module to count its errors)."""
    found: list[type[AppError]] = []
    stack: list[type[AppError]] = [AppError]
    while stack:
        for sub in stack.pop().__subclasses__():
            found.append(sub)
            stack.append(sub)
    return found


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


# The errors the handlers below answer with: declared like any other, so that their codes are
# in the published contract, though nothing raises them.


class ValidationFailed(AppError):
    """A parameter or body field is invalid (``detail`` is then FastAPI's list of problems)."""

    status = 422
    code = "validation_error"
    detail = "A parameter or body field is invalid."


class UnreadableBody(AppError):
    """FastAPI's answer to a JSON body it cannot even decode, on every route that takes one
    (JSON that decodes but does not parse is a 422 `validation_error`)."""

    status = 400
    code = "bad_request"
    detail = "The request body could not be read: it is not UTF-8 text."


class ClientDisconnected(AppError):
    status = 400
    code = "client_disconnected"
    detail = "The client disconnected."


class DatabaseUnavailable(AppError):
    status = 503
    code = "database_unavailable"
    detail = "The database is unavailable; retry shortly."


class InternalError(AppError):
    status = 500
    code = "internal_error"
    detail = "Internal server error; the failure was logged."


class ValidationProblem(BaseModel):
    loc: list[str | int] = Field(description='Where: e.g. ["query", "limit"].')
    msg: str = Field(description="What is wrong, for people.")
    type: str = Field(description="Pydantic's error type, for programs.")


class ErrorOut(BaseModel):
    """The body of every error response."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"detail": "No image has that id.", "code": "image_not_found"}]
        }
    )

    detail: str | list[ValidationProblem] = Field(
        description="What happened and what to do, for people; for `validation_error`, the "
        "list of invalid parameters and fields."
    )
    code: str = Field(description="Stable snake_case code for programs (the table in docs/api.md).")


# Statuses raised by the framework itself (routing, method checks), and the codes they get.
HTTP_ERROR_CODES = {
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


# Any other framework status.
OTHER_HTTP_ERROR = "http_error"


def error_body(detail: Any, code: str) -> dict[str, Any]:
    return {"detail": detail, "code": code}


def error_responses(*errors: type[AppError]) -> dict[int | str, dict[str, Any]]:
    """A route's OpenAPI ``responses`` for the errors it can answer with: per status, the
    error schema and each code (with its sentence, where the error has one of its own)."""
    by_status: dict[int, list[str]] = {}
    for error in errors:
        own = "detail" in vars(error)
        line = f"- `{error.code}`: {error.detail}" if own else f"- `{error.code}`"
        lines = by_status.setdefault(error.status, [])
        if line not in lines:
            lines.append(line)
    return {
        status: {"model": ErrorOut, "description": "\n".join(lines)}
        for status, lines in sorted(by_status.items())
    }


def publish_error_schema(spec: dict[str, Any]) -> dict[str, Any]:
    """Give every error response of an OpenAPI document the ``ErrorOut`` schema: the ones
    routes document, and FastAPI's automatic 422, whose body iap replaces by its own."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in _schemas_of(ErrorOut):
        schemas.setdefault(name, schema)
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    reference = {"$ref": "#/components/schemas/ErrorOut"}
    for operation in _operations(spec):
        if "application/json" in operation.get("requestBody", {}).get("content", {}):
            _document_unreadable_body(operation.setdefault("responses", {}))
        for status, response in operation.get("responses", {}).items():
            if not str(status).isdigit() or int(status) < 400:
                continue
            if int(status) == 422 and "validation_error" not in response["description"]:
                extra = f"- `{ValidationFailed.code}`: {ValidationFailed.detail}"
                described = response["description"]
                response["description"] = (
                    extra if described == "Validation Error" else f"{described}\n{extra}"
                )
            response["content"] = {"application/json": {"schema": reference}}
    return spec


def _document_unreadable_body(responses: dict[str, Any]) -> None:
    line = f"- `{UnreadableBody.code}`: {UnreadableBody.detail}"
    described = responses.get("400", {}).get("description")
    if described is None:
        responses["400"] = {"description": line}
    elif line not in described:
        responses["400"]["description"] = f"{described}\n{line}"


def _schemas_of(model: type[BaseModel]) -> Iterable[tuple[str, dict[str, Any]]]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    yield from schema.pop("$defs", {}).items()
    yield model.__name__, schema


def _operations(spec: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for path in spec.get("paths", {}).values():
        for method, operation in path.items():
            if method in {"get", "put", "post", "delete", "patch", "head", "options", "trace"}:
                yield operation
