"""A small synchronous client for the iap REST API, built on httpx.

with IapClient("http://127.0.0.1:8000") as iap:
    iap.login("alice", "correct horse battery")
    image = iap.upload("harbour.jpg", tags=["sea"])
    print(iap.get_image(image["id"])["analysis"]["status"])
    for person in iap.iter_people():
        print(person["name"], person["image_count"])
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, overload

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
        target, into_folder = _destination(destination)
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

    # people
    def list_people(
        self,
        page: int = 1,
        limit: int = 50,
        *,
        include_hidden: bool = False,
        name: str | None = None,
    ) -> dict[str, Any]:
        """One page of your people (faces grouped by who they are), those in the most images
        first, with the ``total``. Hidden people are left out unless ``include_hidden``;
        ``name`` keeps those whose name holds these words (``ada*`` for a prefix). Raises
        ``IapError`` 422 ``invalid_query`` for a name with no words."""
        params: dict[str, Any] = {"skip": page, "limit": limit, "include_hidden": include_hidden}
        if name is not None:
            params["name"] = name
        return dict(self._call("GET", "/people", params=params).json())

    def iter_people(
        self, limit: int = 200, *, include_hidden: bool = False, name: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every person ``list_people`` would list, page after page."""
        return self._pages(
            lambda page: self.list_people(page, limit, include_hidden=include_hidden, name=name)
        )

    def get_person(self, person_id: str) -> dict[str, Any]:
        """One of your people. Raises ``IapError`` 404 ``person_not_found`` for an id no
        person has (any more: a merged person is gone), 403 ``not_person_owner`` for
        another user's."""
        return dict(self._call("GET", f"/people/{person_id}").json())

    def update_person(self, person_id: str, **fields: Any) -> dict[str, Any]:
        """Change ``name`` (``None`` forgets it) and/or ``hidden``; returns the person."""
        return dict(self._call("PATCH", f"/people/{person_id}", json=fields).json())

    def name_person(self, person_id: str, name: str | None) -> dict[str, Any]:
        """Give a person a name (their images are then found by it), or forget it with
        ``None``. Raises ``IapError`` 422 for an empty or over-long name."""
        return self.update_person(person_id, name=name)

    def hide_person(self, person_id: str) -> dict[str, Any]:
        """Leave a person out of ``list_people`` (unless it includes hidden ones)."""
        return self.update_person(person_id, hidden=True)

    def unhide_person(self, person_id: str) -> dict[str, Any]:
        return self.update_person(person_id, hidden=False)

    def merge_person(self, person_id: str, into: str) -> dict[str, Any]:
        """Two people who are one: ``person_id``'s faces join ``into``, and ``person_id`` is
        gone. Returns the person who stays (who takes the merged one's name if it had none).
        Raises ``IapError`` 422 ``merge_into_itself`` when both are the same person."""
        return dict(self._call("POST", f"/people/{person_id}/merge", json={"into": into}).json())

    def remove_face(self, person_id: str, face_id: str) -> None:
        """Take a wrongly grouped face out of a person; it then belongs to nobody, and a
        person left without faces is gone. Raises ``IapError`` 404 ``face_not_found`` for a
        face that is not this person's."""
        self._call("DELETE", f"/people/{person_id}/faces/{face_id}")

    def person_images(self, person_id: str, page: int = 1, limit: int = 20) -> dict[str, Any]:
        """One page of the images a person is in, newest upload first: each ``image`` with
        the person's ``faces`` in it, and the ``total``."""
        params = {"skip": page, "limit": limit}
        return dict(self._call("GET", f"/people/{person_id}/images", params=params).json())

    def iter_person_images(self, person_id: str, limit: int = 100) -> Iterator[dict[str, Any]]:
        """Every image a person is in, page after page."""
        return self._pages(lambda page: self.person_images(person_id, page, limit))

    def image_faces(self, image_id: str) -> list[dict[str, Any]]:
        """Who is in an image: its faces, each with its ``box``, ``confidence`` and
        ``person`` (``None`` until grouped, or once taken out). Empty until analysed."""
        return list(self._call("GET", f"/image/{image_id}/faces").json())

    @overload
    def person_thumbnail(self, person_id: str) -> bytes: ...
    @overload
    def person_thumbnail(self, person_id: str, destination: str | Path) -> Path: ...
    def person_thumbnail(
        self, person_id: str, destination: str | Path | None = None
    ) -> bytes | Path:
        """The person's face (their cover face's thumbnail: WebP, 160 px square): its bytes,
        or saved to ``destination`` (a file, or a folder as ``download`` takes one, where it
        is named ``<person_id>.webp``) and where it went."""
        data = self._call("GET", f"/people/{person_id}/thumbnail").content
        return data if destination is None else _save(data, destination, f"{person_id}.webp")

    @overload
    def face_thumbnail(self, face_id: str) -> bytes: ...
    @overload
    def face_thumbnail(self, face_id: str, destination: str | Path) -> Path: ...
    def face_thumbnail(self, face_id: str, destination: str | Path | None = None) -> bytes | Path:
        """One face's thumbnail, as ``person_thumbnail`` gives a person's. Raises ``IapError``
        404 ``face_not_found`` for an unknown face, 403 ``not_face_owner`` for another
        user's."""
        data = self._call("GET", f"/faces/{face_id}/thumbnail").content
        return data if destination is None else _save(data, destination, f"{face_id}.webp")

    def _pages(self, fetch: Callable[[int], dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """The items of numbered pages 1, 2, ... until ``total`` are seen or a page is empty."""
        seen, page = 0, 1
        while True:
            body = fetch(page)
            yield from body["data"]
            seen += len(body["data"])
            if not body["data"] or seen >= body["total"]:
                return
            page += 1


def _destination(destination: str | Path) -> tuple[Path, bool]:
    """The path given, and whether it names a folder: an existing one, or a string ending
    with a path separator (``"copies/"``)."""
    text = os.fspath(destination)
    target = Path(text)
    return target, target.is_dir() or text.endswith((os.sep, "/"))


def _save(data: bytes, destination: str | Path, name_in_folder: str) -> Path:
    """Write ``data`` to ``destination`` (a file, or a folder to put ``name_in_folder`` in),
    complete or not at all, and return where it went."""
    target, into_folder = _destination(destination)
    if into_folder:
        target = target / name_in_folder
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    try:
        partial.write_bytes(data)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target
