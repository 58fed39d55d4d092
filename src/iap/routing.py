"""What the router answers for a method a path does not have: ``405`` with an ``Allow`` header
listing every method of that path, and ``OPTIONS`` with ``204`` and the same ``Allow``.

Starlette's router gets this wrong in two ways. Its 405 names the methods of the first route
that matched the path only (``Allow: POST`` on ``/me/api-keys``, which also has ``GET``), and a
method that a literal path lacks falls through to a parametrised sibling that has it:
``PUT /image/all`` reached ``PUT /image/{image_id}`` and answered 422 about the UUID.

So, once every router is included, each path gets one more route, for every other method, that
answers for it: a literal path's first of all (it only ever matches that exact path, for methods
no route of that path has, so it only takes requests a parametrised sibling would have
misread), a parametrised path's last of all (after every real route).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request, Response, status
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.routing import Match, Mount, Route
from starlette.types import Scope


def allow_header(methods: set[str]) -> str:
    """The ``Allow`` value for a path with ``methods`` (OPTIONS is always answered)."""
    return ", ".join(sorted(methods | {"OPTIONS"}))


def _answer(path: str, allowed: str) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    async def other_method(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=status.HTTP_204_NO_CONTENT, headers={"Allow": allowed})
        raise HTTPException(
            status.HTTP_405_METHOD_NOT_ALLOWED,
            f"{request.method} is not a method of {path}; it allows {allowed}.",
            headers={"Allow": allowed},
        )

    return other_method


class _OtherMethods(Route):
    """Matches ``path`` for any method but ``allowed`` (made-up ones too)."""

    def __init__(self, path: str, allowed: set[str]) -> None:
        super().__init__(path, _answer(path, allow_header(allowed)), include_in_schema=False)
        self.allowed = frozenset(allowed)
        self.methods = None  # Starlette gives function endpoints GET otherwise

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and scope["method"] in self.allowed:
            return Match.NONE, {}
        match, child_scope = super().matches(scope)
        if match != Match.NONE:
            child_scope["route"] = self  # for the access log and metrics: the path's template
        return match, child_scope


def install_method_answers(app: FastAPI) -> None:
    """Give every path of ``app`` its 405 and OPTIONS answers (call after adding every route)."""
    methods: dict[str, set[str]] = {}
    literal: dict[str, bool] = {}
    for route in iter_route_contexts(app.router.routes):
        if isinstance(route.original_route, Mount) or not route.path or not route.methods:
            continue
        methods.setdefault(route.path, set()).update(route.methods)
        literal[route.path] = not route.param_convertors
    first: list[Route] = []
    last: list[Route] = []
    for path, allowed in methods.items():
        (first if literal[path] else last).append(_OtherMethods(path, allowed))
    app.router.routes[:0] = first
    app.router.routes.extend(last)
