"""A small synchronous client for the iap REST API, built on httpx.

with IapClient("http://127.0.0.1:8000") as iap:
    iap.login("alice", "correct horse battery")
    image = iap.upload("harbour.jpg", tags=["sea"])
    print(iap.get_image(image["id"])["analysis"]["status"])
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import httpx

Progress = Callable[[int], None]


class IapError(Exception):
    """An error answer from the server, with its HTTP status and stable ``code``."""

    def __init__(self, status: int, code: str, detail: Any) -> None:
        self.status, self.code, self.detail = status, code, detail
        super().__init__(f"{status} {code}: {detail}")


class _ProgressReader:
    """A file wrapper that reports each chunk httpx reads from it."""

    def __init__(self, handle: BinaryIO, on_read: Progress) -> None:
        self._handle, self._on_read = handle, on_read

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        if chunk:
            self._on_read(len(chunk))
        return chunk

    def __getattr__(self, name: str) -> Any:  # seek, tell, fileno, ... go to the file
        return getattr(self._handle, name)


class IapClient:
    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), timeout=timeout, transport=transport
        )
        self.refresh_token: str | None = None
        if token:
            self._http.headers["Authorization"] = f"Bearer {token}"
        if api_key:
            self._http.headers["X-API-Key"] = api_key

    def __enter__(self) -> IapClient:
        return self

    def __exit__(self, *exc: object | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, url, **kwargs)
        if response.is_error:
            try:
                body = response.json()
                raise IapError(response.status_code, body.get("code", "error"), body.get("detail"))
            except ValueError:
                raise IapError(response.status_code, "http_error", response.text[:500]) from None
        return response

    # accounts
    def signup(self, username: str, email: str, password: str) -> dict[str, Any]:
        body = {"username": username, "email": email, "password": password}
        return dict(self._call("POST", "/signup", json=body).json())

    def login(self, username: str, password: str) -> dict[str, Any]:
        """Log in and use the access token for the next calls."""
        tokens = dict(
            self._call("POST", "/login", data={"username": username, "password": password}).json()
        )
        self._http.headers["Authorization"] = f"Bearer {tokens['access_token']}"
        self.refresh_token = tokens["refresh_token"]
        return tokens

    def me(self) -> dict[str, Any]:
        return dict(self._call("GET", "/me").json())

    def create_api_key(self, name: str) -> dict[str, Any]:
        return dict(self._call("POST", "/me/api-keys", json={"name": name}).json())

    # images
    def upload(
        self,
        path: str | Path,
        *,
        tags: Iterable[str] = (),
        description: str | None = None,
        on_progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Upload one file, streaming it from disk; ``on_progress`` gets each chunk's size."""
        path = Path(path)
        data: dict[str, str] = {}
        if tags:
            data["tags"] = ",".join(tags)
        if description:
            data["description"] = description
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        with path.open("rb") as handle:
            body: Any = _ProgressReader(handle, on_progress) if on_progress else handle
            response = self._call(
                "POST", "/image/upload", files={"file": (path.name, body, mime)}, data=data
            )
        return dict(response.json())

    def list_images(
        self, page: int = 1, limit: int = 20, cursor: str | None = None, **filters: Any
    ) -> dict[str, Any]:
        """One page: page number ``page`` (with the ``total``), or the page after ``cursor``
        (a page's ``next_cursor``). ``filters``: ``status``, ``tag``, ``format``, ``q``,
        ``sort``, ``uploaded_after``, ``uploaded_before``, as ``GET /image/all`` takes them."""
        where = {"cursor": cursor} if cursor is not None else {"skip": page}
        params = where | {"limit": limit} | {k: v for k, v in filters.items() if v is not None}
        return dict(self._call("GET", "/image/all", params=params).json())

    def iter_images(self, limit: int = 100, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every image matching ``filters``, page after page by cursor (no page is counted
        twice, none skipped, however many there are)."""
        page = self.list_images(limit=limit, **filters)
        while True:
            yield from page["data"]
            if page["next_cursor"] is None:
                return
            page = self.list_images(limit=limit, cursor=page["next_cursor"], **filters)

    def search(
        self, q: str, limit: int = 20, cursor: str | None = None, **filters: Any
    ) -> dict[str, Any]:
        """One page of your images matching the words ``q``, best first, each hit with its
        ``score`` and ``matches`` (field and snippet). ``filters``: ``status``, ``tag``,
        ``format``, ``uploaded_after``, ``uploaded_before``, as ``GET /image/search`` takes
        them. Raises ``IapError`` 422 ``invalid_query`` for a query with no words."""
        params = {"q": q, "limit": limit} | {k: v for k, v in filters.items() if v is not None}
        if cursor is not None:
            params["cursor"] = cursor
        return dict(self._call("GET", "/image/search", params=params).json())

    def iter_search(self, q: str, limit: int = 100, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every hit of a search, best first, page after page by cursor."""
        page = self.search(q, limit, **filters)
        while True:
            yield from page["data"]
            if page["next_cursor"] is None:
                return
            page = self.search(q, limit, page["next_cursor"], **filters)

    def similar(
        self, image_id: str, limit: int = 20, max_distance: int | None = None
    ) -> dict[str, Any]:
        """Your images that look like ``image_id`` (perceptual hash), nearest first, each with
        its ``distance``. Raises ``IapError`` 409 ``hashes_not_ready`` before its analysis."""
        params: dict[str, Any] = {"limit": limit}
        if max_distance is not None:
            params["max_distance"] = max_distance
        return dict(self._call("GET", f"/image/{image_id}/similar", params=params).json())

    def duplicates(
        self, kind: str = "exact", limit: int = 20, cursor: str | None = None
    ) -> dict[str, Any]:
        """One page of your duplicate groups: ``exact`` (same bytes) or ``near`` (look-alikes)."""
        params: dict[str, Any] = {"kind": kind, "limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        return dict(self._call("GET", "/image/duplicates", params=params).json())

    def iter_duplicates(self, kind: str = "exact", limit: int = 100) -> Iterator[dict[str, Any]]:
        """Every duplicate group of ``kind``, page after page."""
        page = self.duplicates(kind, limit)
        while True:
            yield from page["data"]
            if page["next_cursor"] is None:
                return
            page = self.duplicates(kind, limit, page["next_cursor"])

    def get_image(self, image_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/image/{image_id}").json())

    def update_image(self, image_id: str, **fields: Any) -> dict[str, Any]:
        return dict(self._call("PUT", f"/image/{image_id}", json=fields).json())

    def delete_image(self, image_id: str) -> None:
        self._call("DELETE", f"/image/{image_id}")

    def download(self, image_id: str, destination: str | Path) -> Path:
        """Save the original to ``destination`` and return where it went.

        ``destination`` is a folder (the file keeps its original name there) when it is an
        existing folder or a string ending with a path separator (``"copies/"``); a missing
        folder is created. Anything else is the file to write. The file appears complete or
        not at all: it is written beside its target first and renamed when the last byte is in.
        """
        text = os.fspath(destination)
        target = Path(text)
        into_folder = target.is_dir() or text.endswith((os.sep, "/"))
        with self._http.stream(
            "GET", f"/image/download/{image_id}", follow_redirects=True
        ) as response:
            if response.is_error:
                response.read()
                body = response.json()
                raise IapError(response.status_code, body.get("code", "error"), body.get("detail"))
            if into_folder:
                target = target / self.get_image(image_id)["original_filename"]
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.part")
            try:
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
                partial.replace(target)
            finally:
                partial.unlink(missing_ok=True)
        return target
