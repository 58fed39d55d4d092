"""Reading, listing, editing and deleting images."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from tests.factories import (
    Account,
    image_bytes,
    make_account,
    metadata,
    uploaded,
    wait_for_analysis,
)
from tests.images.test_upload import assert_error


def test_get_returns_the_uploaded_metadata(client: TestClient, alice: Account) -> None:
    image = uploaded(client, alice, tags="a")
    response = client.get(f"/image/{image['id']}", headers=alice.headers)
    assert response.status_code == 200
    assert metadata(response.json()) == metadata(image)


def test_unknown_image_is_404(client: TestClient, alice: Account) -> None:
    response = client.get("/image/00000000-0000-4000-8000-000000000000", headers=alice.headers)
    assert_error(response, 404, "image_not_found")


def test_malformed_id_is_422_with_error_code(client: TestClient, alice: Account) -> None:
    response = client.get("/image/not-a-uuid", headers=alice.headers)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


def test_list_is_paginated_with_one_based_pages_and_a_total(client: TestClient) -> None:
    owner = make_account(client)
    ids = [uploaded(client, owner, filename=f"{i}.jpg")["id"] for i in range(5)]
    first = client.get("/image/all?skip=1&limit=2", headers=owner.headers).json()
    second = client.get("/image/all?skip=2&limit=2", headers=owner.headers).json()
    third = client.get("/image/all?skip=3&limit=2", headers=owner.headers).json()
    beyond = client.get("/image/all?skip=4&limit=2", headers=owner.headers).json()
    assert first["total"] == second["total"] == 5
    assert (first["skip"], first["limit"]) == (1, 2)
    seen = [img["id"] for page in (first, second, third) for img in page["data"]]
    assert seen == list(reversed(ids))  # newest first, no overlap, nothing skipped
    assert beyond["data"] == []


def test_list_order_is_stable_for_identical_sort_keys(client: TestClient) -> None:
    owner = make_account(client)
    data = image_bytes(size=(30, 30))
    for _ in range(6):
        uploaded(client, owner, data)  # same size: ties on file_size
    pages = [
        client.get(f"/image/all?sort=file_size&skip={p}&limit=2", headers=owner.headers).json()
        for p in (1, 2, 3)
    ]
    ids = [img["id"] for page in pages for img in page["data"]]
    assert len(set(ids)) == 6
    again = [
        client.get(f"/image/all?sort=file_size&skip={p}&limit=2", headers=owner.headers).json()
        for p in (1, 2, 3)
    ]
    assert ids == [img["id"] for page in again for img in page["data"]]


@pytest.mark.parametrize("query", ["skip=0", "limit=0", "limit=101", "sort=size", "status=done"])
def test_bad_list_parameters_are_422(client: TestClient, alice: Account, query: str) -> None:
    response = client.get(f"/image/all?{query}", headers=alice.headers)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


def test_list_filters(client: TestClient) -> None:
    owner = make_account(client)
    sea = uploaded(client, owner, image_bytes("PNG"), filename="Harbour.png", tags="sea,boat")
    cat = uploaded(
        client,
        owner,
        image_bytes("JPEG"),
        filename="cat.jpg",
        tags="pet",
        description="A sleepy CAT on a sofa",
    )
    boat = uploaded(client, owner, image_bytes("WEBP"), filename="b.webp", tags="boat")

    def ids(query: str) -> set[str]:
        response = client.get(f"/image/all?{query}", headers=owner.headers)
        assert response.status_code == 200, response.text
        return {img["id"] for img in response.json()["data"]}

    assert ids("tag=boat") == {sea["id"], boat["id"]}
    assert ids("tag=boat&tag=sea") == {sea["id"]}
    assert ids("tag=BOAT") == {sea["id"], boat["id"]}
    assert ids("format=png") == {sea["id"]}
    assert ids("format=image/jpeg") == {cat["id"]}
    assert ids("format=jpg") == {cat["id"]}
    assert ids("q=harb") == {sea["id"]}
    assert ids("q=sleepy cat") == {cat["id"]}
    assert ids("q=pet") == {cat["id"]}
    assert ids("q=%25") == set()  # LIKE wildcards are matched literally
    for image in (sea, cat, boat):
        wait_for_analysis(client, owner, image["id"], {"succeeded"})
    assert ids("status=succeeded") == {sea["id"], cat["id"], boat["id"]}
    assert ids("status=queued") == set()
    assert ids("status=failed") == set()
    now = datetime.now(UTC)
    after = (now - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    before = (now + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert ids(f"uploaded_after={after}&uploaded_before={before}") == {
        sea["id"],
        cat["id"],
        boat["id"],
    }
    assert ids(f"uploaded_after={before}") == set()


def test_upload_date_filters_take_rfc_3339_date_times_and_dates(client: TestClient) -> None:
    owner = make_account(client)
    image = uploaded(client, owner)
    today = datetime.now(UTC).date()
    tomorrow = today + timedelta(days=1)
    in_an_hour = (datetime.now(UTC) + timedelta(hours=1)).astimezone(timezone(timedelta(hours=2)))

    def ids(query: str | dict[str, str]) -> list[str]:
        response = client.get("/image/all", params=query, headers=owner.headers)
        assert response.status_code == 200, response.text
        return [img["id"] for img in response.json()["data"]]

    assert ids(f"uploaded_after={today}&uploaded_before={tomorrow}") == [image["id"]]
    assert ids(f"uploaded_after={tomorrow}") == []
    assert ids(f"uploaded_before={today}") == []
    offset = in_an_hour.isoformat(timespec="seconds")
    assert offset.endswith("+02:00")
    assert ids({"uploaded_before": offset}) == [image["id"]]
    assert ids({"uploaded_after": offset}) == []


@pytest.mark.parametrize(
    "value",
    [
        "0.5",  # a Unix timestamp, once read as 1970-01-01T00:00:00.5Z
        "1767225600",
        "2026-01-31T12:00:00",  # no offset: whose noon?
        "2026-01-31 12:00:00Z",
        "2026-13-01",
        "31/01/2026",
        "yesterday",
        "",
    ],
)
def test_upload_date_filters_refuse_what_is_not_a_date(
    client: TestClient, alice: Account, value: str
) -> None:
    for name in ("uploaded_after", "uploaded_before"):
        response = client.get("/image/all", params={name: value}, headers=alice.headers)
        assert response.status_code == 422, (name, value, response.text)
        body = response.json()
        assert body["code"] == "validation_error"
        assert body["detail"][0]["loc"] == ["query", name]


def test_list_sorting(client: TestClient) -> None:
    owner = make_account(client)
    small = uploaded(client, owner, image_bytes(size=(10, 10)), filename="b.jpg")
    large = uploaded(client, owner, image_bytes(size=(200, 200)), filename="A.jpg")

    def order(sort: str) -> list[str]:
        data = client.get(f"/image/all?sort={sort}", headers=owner.headers).json()["data"]
        return [img["id"] for img in data]

    assert order("file_size") == [small["id"], large["id"]]
    assert order("-file_size") == [large["id"], small["id"]]
    assert order("filename") == [large["id"], small["id"]]  # case-insensitive: A before b
    assert order("upload_date") == [small["id"], large["id"]]


def test_list_shows_only_the_callers_images(
    client: TestClient, alice: Account, bob: Account
) -> None:
    mine = uploaded(client, alice)
    uploaded(client, bob)
    data = client.get("/image/all", headers=alice.headers).json()
    assert [img["id"] for img in data["data"]] == [mine["id"]]
    assert data["total"] == 1


def test_edit_user_fields(client: TestClient, alice: Account) -> None:
    image = uploaded(client, alice, tags="old", description="before")
    response = client.put(
        f"/image/{image['id']}",
        headers=alice.headers,
        json={"original_filename": "renamed.jpg", "tags": ["New", "second", "new"]},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["original_filename"] == "renamed.jpg"
    assert body["tags"] == ["new", "second"]
    assert body["description"] == "before"  # omitted: unchanged
    assert body["last_modified"] > image["last_modified"]
    assert body["upload_date"] == image["upload_date"]
    current = client.get(f"/image/{image['id']}", headers=alice.headers).json()
    assert metadata(current) == metadata(body)
    cleared = client.put(f"/image/{image['id']}", headers=alice.headers, json={"description": None})
    assert cleared.json()["description"] is None


@pytest.mark.parametrize(
    "field", ["width", "height", "file_size", "file_type", "sha256", "user_id"]
)
def test_derived_fields_cannot_be_edited(client: TestClient, alice: Account, field: str) -> None:
    image = uploaded(client, alice)
    response = client.put(
        f"/image/{image['id']}", headers=alice.headers, json={field: 1, "tags": ["x"]}
    )
    body = assert_error(response, 422, "read_only_field")
    assert field in body["detail"]
    current = client.get(f"/image/{image['id']}", headers=alice.headers).json()
    assert metadata(current) == metadata(image)


def test_unknown_edit_field_is_422(client: TestClient, alice: Account) -> None:
    image = uploaded(client, alice)
    response = client.put(f"/image/{image['id']}", headers=alice.headers, json={"colour": "red"})
    assert_error(response, 422, "unknown_field")


def test_the_document_says_an_edit_takes_no_other_field(client: TestClient) -> None:
    """Extra fields are refused, so the schema must not allow them (it did, by default)."""
    schema = client.get("/openapi.json").json()["components"]["schemas"]["ImageUpdate"]
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"original_filename", "tags", "description"}


@pytest.mark.parametrize(
    "body",
    [
        {"tags": "notalist"},
        {"original_filename": ""},
        {"description": "x" * 10_001},
        {"tags": ["x" * 51]},
    ],
)
def test_invalid_edit_values_are_422(
    client: TestClient, alice: Account, body: dict[str, object]
) -> None:
    image = uploaded(client, alice)
    response = client.put(f"/image/{image['id']}", headers=alice.headers, json=body)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


def test_delete_removes_the_image_and_its_file(client: TestClient, alice: Account) -> None:
    image = uploaded(client, alice)
    client.get(f"/image/{image['id']}", headers=alice.headers)  # now cached
    assert client.delete(f"/image/{image['id']}", headers=alice.headers).status_code == 204
    assert_error(client.get(f"/image/{image['id']}", headers=alice.headers), 404, "image_not_found")
    assert_error(
        client.get(f"/image/download/{image['id']}", headers=alice.headers), 404, "image_not_found"
    )
    assert_error(
        client.delete(f"/image/{image['id']}", headers=alice.headers), 404, "image_not_found"
    )
    storage = client.app.state.services.storage  # type: ignore[attr-defined]
    assert not client.portal.call(storage.exists, f"originals/{image['id']}")  # type: ignore[union-attr]
