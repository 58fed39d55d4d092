"""Keyset paging of ``/image/all``: each page's ``next_cursor`` leads to the next one, in every
sort, through ties, changes and filters; a cursor that is not one the list gave is a 422."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import Account, image_bytes, make_account, uploaded
from tests.images.test_upload import assert_error

SORTS = ["-upload_date", "upload_date", "filename", "-filename", "file_size", "-file_size"]


def _walk(client: TestClient, owner: Account, query: str, limit: int) -> list[dict[str, Any]]:
    """Every page from the first (by number) through the cursors; asserts the pages' shape."""
    page = client.get(f"/image/all?{query}&limit={limit}", headers=owner.headers).json()
    assert isinstance(page["total"], int)
    pages = [page]
    while page["next_cursor"] is not None:
        assert len(page["data"]) == limit
        response = client.get(
            "/image/all",
            params={"cursor": page["next_cursor"], "limit": limit}
            | dict(p.split("=") for p in query.split("&") if p),
            headers=owner.headers,
        )
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["total"] is None  # no count on a cursor page
        pages.append(page)
    return pages


@pytest.fixture(scope="module")
def library(client: TestClient) -> tuple[Account, list[dict[str, Any]]]:
    """Seven images with ties on size, names that differ only in case and accents."""
    owner = make_account(client)
    same = image_bytes(size=(30, 30))
    names = ["b.jpg", "B.jpg", "Émile.jpg", "émile.jpg", "a.jpg", "zoé.jpg", "c.jpg"]
    images = [
        uploaded(client, owner, same if n % 2 else image_bytes(size=(40 + n, 30)), filename=name)
        for n, name in enumerate(names)
    ]
    return owner, images


@pytest.mark.parametrize("sort", SORTS)
def test_cursor_pages_list_everything_once_in_the_order_of_numbered_pages(
    client: TestClient, library: tuple[Account, list[dict[str, Any]]], sort: str
) -> None:
    owner, images = library
    pages = _walk(client, owner, f"sort={sort}", limit=2)
    by_cursor = [image["id"] for page in pages for image in page["data"]]
    by_number = [
        image["id"]
        for skip in range(1, 5)
        for image in client.get(
            f"/image/all?sort={sort}&skip={skip}&limit=2", headers=owner.headers
        ).json()["data"]
    ]
    assert by_cursor == by_number
    assert sorted(by_cursor) == sorted(image["id"] for image in images)
    assert pages[-1]["next_cursor"] is None
    assert len(pages) == 4


def test_the_last_full_page_has_no_next_cursor(client: TestClient) -> None:
    owner = make_account(client)
    for _ in range(2):
        uploaded(client, owner)
    page = client.get("/image/all?limit=2", headers=owner.headers).json()
    assert len(page["data"]) == 2
    assert page["next_cursor"] is None


def test_a_cursor_keeps_its_place_when_images_come_and_go(client: TestClient) -> None:
    """OFFSET pages shift when a row before them goes; a cursor page starts after the row it
    names, whatever happened before it."""
    owner = make_account(client)
    ids = [uploaded(client, owner, filename=f"{n}.jpg")["id"] for n in range(5)]
    first = client.get("/image/all?limit=2", headers=owner.headers).json()
    assert [i["id"] for i in first["data"]] == [ids[4], ids[3]]
    client.delete(f"/image/{ids[4]}", headers=owner.headers)
    client.delete(f"/image/{ids[3]}", headers=owner.headers)  # the cursor's own row
    newer = uploaded(client, owner, filename="new.jpg")["id"]
    after = client.get(
        "/image/all", params={"cursor": first["next_cursor"], "limit": 2}, headers=owner.headers
    ).json()
    assert [i["id"] for i in after["data"]] == [ids[2], ids[1]]
    assert newer not in [i["id"] for i in after["data"]]


def test_cursor_pages_keep_the_filters(client: TestClient) -> None:
    owner = make_account(client)
    wanted = [uploaded(client, owner, tags="keep")["id"] for _ in range(3)]
    for _ in range(3):
        uploaded(client, owner, tags="other")
    pages = _walk(client, owner, "tag=keep", limit=1)
    assert [i["id"] for p in pages for i in p["data"]] == list(reversed(wanted))


def test_a_cursor_shows_only_the_callers_images(
    client: TestClient, library: tuple[Account, list[dict[str, Any]]]
) -> None:
    """A cursor is a position, not a permission: another user's cursor lists the caller's own
    images after that position, never the owner's."""
    owner, images = library
    cursor = client.get("/image/all?limit=1", headers=owner.headers).json()["next_cursor"]
    stranger = make_account(client)
    mine = uploaded(client, stranger)["id"]
    page = client.get("/image/all", params={"cursor": cursor}, headers=stranger.headers).json()
    theirs = {image["id"] for image in images}
    assert not theirs & {image["id"] for image in page["data"]}
    assert mine not in {image["id"] for image in page["data"]}  # uploaded after the position


def _forged(*parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


ID = "00000000-0000-4000-8000-000000000000"


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        "!!!!",
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        _forged("-upload_date", "yesterday", ID),
        _forged("-upload_date", "2026-01-01T00:00:00", ID),  # no offset
        _forged("-upload_date", "2026-01-01T00:00:00+00:00", "not-an-id"),
        _forged("-upload_date", "2026-01-01T00:00:00+00:00"),
        _forged("file_size", "12", ID),
        _forged("file_size", True, ID),
        _forged("filename", "a.jpg", ID),  # a cursor of another sort
        _forged({"a": 1}),
        "",
    ],
)
def test_a_cursor_the_list_did_not_give_is_422(
    client: TestClient, alice: Account, cursor: str
) -> None:
    response = client.get("/image/all", params={"cursor": cursor}, headers=alice.headers)
    assert_error(response, 422, "invalid_cursor")


def test_a_cursor_of_another_sort_says_so(client: TestClient, alice: Account) -> None:
    cursor = _forged("filename", "a.jpg", ID)
    response = client.get("/image/all", params={"cursor": cursor}, headers=alice.headers)
    assert "sorted by 'filename'" in assert_error(response, 422, "invalid_cursor")["detail"]


def test_cursor_and_page_number_together_is_422(client: TestClient, alice: Account) -> None:
    cursor = _forged("-upload_date", "2026-01-01T00:00:00+00:00", ID)
    response = client.get("/image/all", params={"cursor": cursor, "skip": 2}, headers=alice.headers)
    assert_error(response, 422, "invalid_cursor")


def test_an_over_long_cursor_is_422(client: TestClient, alice: Account) -> None:
    response = client.get("/image/all", params={"cursor": "a" * 5000}, headers=alice.headers)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
