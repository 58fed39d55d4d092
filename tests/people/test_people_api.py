"""People through the API, on both deployments: real photos of one person are grouped as one
person and another person's are not; people are named, hidden, merged, searched for, and
lose faces; deleting images and accounts removes faces and empty people; nobody sees another
user's people."""

from __future__ import annotations

import io
import time
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.analysis.face_photos import photo
from tests.factories import Account, make_account, uploaded, wait_for_analysis
from tests.images.test_upload import assert_error

# Long side of the uploads: the faces stay 100 px or more, and analysis stays quick.
SIDE = 720


def _jpeg(name: str, *, mirror: bool = False) -> bytes:
    image = Image.open(io.BytesIO(photo(name))).convert("RGB")
    image.thumbnail((SIDE, SIDE))
    if mirror:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=88)
    return out.getvalue()


def faces_of(client: TestClient, owner: Account, image_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/image/{image_id}/faces", headers=owner.headers)
    assert response.status_code == 200, response.text
    return list(response.json())


def wait_for_people(
    client: TestClient, owner: Account, image_id: str, timeout: float = 60
) -> list[dict[str, Any]]:
    """The image's faces once each has a person (grouping runs after the analysis)."""
    deadline = time.monotonic() + timeout
    while True:
        faces = faces_of(client, owner, image_id)
        if faces and all(face["person"] for face in faces):
            return faces
        if time.monotonic() > deadline:
            raise AssertionError(f"the faces of {image_id} were not grouped: {faces}")
        time.sleep(0.1)


def add_photo(client: TestClient, owner: Account, name: str, **options: Any) -> str:
    image_id = str(uploaded(client, owner, _jpeg(name, **options), filename=name)["id"])
    wait_for_analysis(client, owner, image_id, {"succeeded"})
    return image_id


def person_of(client: TestClient, owner: Account, image_id: str) -> str:
    (face,) = wait_for_people(client, owner, image_id)
    return str(face["person"]["id"])


def people(client: TestClient, owner: Account, **params: Any) -> dict[str, Any]:
    response = client.get("/people", headers=owner.headers, params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture(scope="module")
def album(client: TestClient) -> tuple[Account, dict[str, str]]:
    """One owner's photos: three different photos of one man, one of another."""
    owner = make_account(client)
    ids = {name: add_photo(client, owner, f"{name}.jpg") for name in ("obama", "obama2", "biden")}
    ids["obama3"] = add_photo(client, owner, "obama3.jpg")
    for image_id in ids.values():
        wait_for_people(client, owner, image_id)
    return owner, ids


def test_photos_of_one_person_are_one_person_and_another_is_not(
    client: TestClient, album: tuple[Account, dict[str, str]]
) -> None:
    owner, ids = album
    obama = {person_of(client, owner, ids[name]) for name in ("obama", "obama2", "obama3")}
    assert len(obama) == 1
    biden = person_of(client, owner, ids["biden"])
    assert biden not in obama
    listed = people(client, owner)
    assert listed["total"] == 2
    first, second = listed["data"]
    # The person in the most images first.
    assert (first["id"], first["image_count"], first["face_count"]) == (obama.pop(), 3, 3)
    assert (second["id"], second["image_count"]) == (biden, 1)
    assert first["name"] is None
    assert first["hidden"] is False


def test_a_persons_images_have_their_faces(
    client: TestClient, album: tuple[Account, dict[str, str]]
) -> None:
    owner, ids = album
    person = person_of(client, owner, ids["obama"])
    response = client.get(f"/people/{person}/images", headers=owner.headers)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["total"] == 3
    assert {item["image"]["id"] for item in page["data"]} == {
        ids["obama"],
        ids["obama2"],
        ids["obama3"],
    }
    for item in page["data"]:
        (face,) = item["faces"]
        assert face["image_id"] == item["image"]["id"]
        assert face["box"]["width"] > 50
    # Newest upload first.
    assert next(item["image"]["id"] for item in page["data"]) == ids["obama3"]


def test_person_and_face_thumbnails_are_webp_faces(
    client: TestClient, album: tuple[Account, dict[str, str]]
) -> None:
    owner, ids = album
    person = person_of(client, owner, ids["biden"])
    shown = client.get(f"/people/{person}", headers=owner.headers).json()
    response = client.get(shown["thumbnail_url"], headers=owner.headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(response.content)).size == (160, 160)
    (face,) = faces_of(client, owner, ids["biden"])
    assert face["id"] == shown["cover_face_id"]
    alone = client.get(face["thumbnail_url"], headers=owner.headers)
    assert alone.status_code == 200
    assert alone.content == response.content
    # Asked again with its ETag: not modified (the thumbnail is checked at each use).
    again = client.get(
        shown["thumbnail_url"],
        headers={**owner.headers, "If-None-Match": response.headers["etag"]},
    )
    assert again.status_code == 304
    assert response.headers["cache-control"] == "private, no-cache"
    head = client.head(shown["thumbnail_url"], headers=owner.headers)
    assert head.status_code == 200
    assert head.content == b""


def test_naming_a_person_makes_their_images_searchable_by_name(
    client: TestClient, album: tuple[Account, dict[str, str]]
) -> None:
    owner, ids = album
    person = person_of(client, owner, ids["obama2"])
    response = client.patch(f"/people/{person}", headers=owner.headers, json={"name": "Barack"})
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Barack"
    assert client.get(f"/people/{person}", headers=owner.headers).json()["name"] == "Barack"
    (face,) = faces_of(client, owner, ids["obama"])
    assert face["person"]["name"] == "Barack"
    found = client.get("/image/search", headers=owner.headers, params={"q": "barack"}).json()
    assert {hit["image"]["id"] for hit in found["data"]} == {
        ids["obama"],
        ids["obama2"],
        ids["obama3"],
    }
    assert all(any(match["field"] == "person" for match in hit["matches"]) for hit in found["data"])
    assert client.get("/image/search", headers=owner.headers, params={"q": "bar*"}).json()["data"]
    assert people(client, owner, name="BARACK")["total"] == 1
    assert people(client, owner, name="joe")["total"] == 0
    # A name with nothing to look for is refused, as a search is.
    nothing = client.get("/people", headers=owner.headers, params={"name": "?!"})
    assert_error(nothing, 422, "invalid_query")


def test_names_are_checked(client: TestClient, album: tuple[Account, dict[str, str]]) -> None:
    owner, ids = album
    person = person_of(client, owner, ids["biden"])
    for bad in (
        {"name": "a\x00b"},
        {"name": ""},
        {"name": "x" * 101},
        {"age": 3},
        {"hidden": None},
        {"hidden": "maybe"},
    ):
        response = client.patch(f"/people/{person}", headers=owner.headers, json=bad)
        assert response.status_code == 422, bad
        assert "code" in response.json()
    assert client.get(f"/people/{person}", headers=owner.headers).json()["name"] is None


def test_hidden_people_are_left_out_unless_asked_for(client: TestClient) -> None:
    owner = make_account(client)
    person = person_of(client, owner, add_photo(client, owner, "biden.jpg"))
    response = client.patch(f"/people/{person}", headers=owner.headers, json={"hidden": True})
    assert response.status_code == 200
    assert response.json()["hidden"] is True
    assert people(client, owner)["total"] == 0
    assert [p["id"] for p in people(client, owner, include_hidden=True)["data"]] == [person]
    cleared = client.patch(f"/people/{person}", headers=owner.headers, json={"hidden": False})
    assert cleared.json()["hidden"] is False
    assert people(client, owner)["total"] == 1


def test_merging_moves_the_faces_and_the_name_and_removes_the_merged_person(
    client: TestClient,
) -> None:
    owner = make_account(client)
    first = person_of(client, owner, add_photo(client, owner, "obama.jpg"))
    second = person_of(client, owner, add_photo(client, owner, "biden.jpg"))
    assert first != second
    client.patch(f"/people/{second}", headers=owner.headers, json={"name": "Joe"})
    response = client.post(f"/people/{second}/merge", headers=owner.headers, json={"into": first})
    assert response.status_code == 200, response.text
    merged = response.json()
    assert (merged["id"], merged["name"], merged["face_count"]) == (first, "Joe", 2)
    assert_error(client.get(f"/people/{second}", headers=owner.headers), 404, "person_not_found")
    assert people(client, owner)["total"] == 1
    itself = client.post(f"/people/{first}/merge", headers=owner.headers, json={"into": first})
    assert_error(itself, 422, "merge_into_itself")
    nobody = client.post(
        f"/people/{first}/merge", headers=owner.headers, json={"into": str(uuid.uuid4())}
    )
    assert_error(nobody, 404, "person_not_found")


def test_a_face_taken_out_stays_out_and_the_empty_person_goes(client: TestClient) -> None:
    owner = make_account(client)
    one = add_photo(client, owner, "obama.jpg")
    two = add_photo(client, owner, "obama2.jpg")
    person = person_of(client, owner, one)
    assert person_of(client, owner, two) == person
    (face,) = faces_of(client, owner, two)
    url = f"/people/{person}/faces/{face['id']}"
    assert client.delete(url, headers=owner.headers).status_code == 204
    assert faces_of(client, owner, two)[0]["person"] is None
    assert client.get(f"/people/{person}", headers=owner.headers).json()["face_count"] == 1
    assert_error(client.delete(url, headers=owner.headers), 404, "face_not_found")
    # Another photo of him is grouped later: the face taken out stays out.
    three = add_photo(client, owner, "obama3.jpg")
    assert person_of(client, owner, three) == person
    assert faces_of(client, owner, two)[0]["person"] is None
    # Taking out the person's last faces removes the person.
    for image_id in (one, three):
        (face,) = faces_of(client, owner, image_id)
        response = client.delete(f"/people/{person}/faces/{face['id']}", headers=owner.headers)
        assert response.status_code == 204
    assert_error(client.get(f"/people/{person}", headers=owner.headers), 404, "person_not_found")
    assert people(client, owner)["total"] == 0


def test_deleting_images_removes_their_faces_and_people_left_without_any(
    client: TestClient,
) -> None:
    owner = make_account(client)
    one = add_photo(client, owner, "obama.jpg")
    two = add_photo(client, owner, "obama2.jpg")
    person = person_of(client, owner, one)
    (face,) = faces_of(client, owner, one)
    assert client.delete(f"/image/{one}", headers=owner.headers).status_code == 204
    assert_error(client.get(face["thumbnail_url"], headers=owner.headers), 404, "face_not_found")
    shown = client.get(f"/people/{person}", headers=owner.headers).json()
    assert (shown["face_count"], shown["image_count"]) == (1, 1)
    assert client.delete(f"/image/{two}", headers=owner.headers).status_code == 204
    assert_error(client.get(f"/people/{person}", headers=owner.headers), 404, "person_not_found")
    assert people(client, owner)["total"] == 0


def test_analysing_again_keeps_the_faces_and_their_person(client: TestClient) -> None:
    owner = make_account(client)
    image_id = add_photo(client, owner, "biden.jpg")
    person = person_of(client, owner, image_id)
    client.patch(f"/people/{person}", headers=owner.headers, json={"name": "Joe"})
    (before,) = faces_of(client, owner, image_id)
    response = client.post(
        f"/image/{image_id}/analyze", headers=owner.headers, json={"analysers": ["faces"]}
    )
    assert response.status_code == 202, response.text
    wait_for_analysis(client, owner, image_id, {"succeeded"})
    (after,) = wait_for_people(client, owner, image_id)
    assert after["id"] == before["id"]
    assert after["person"] == {"id": person, "name": "Joe", "hidden": False}
    assert people(client, owner)["total"] == 1


def test_deleting_the_account_removes_its_people_and_faces(
    client: TestClient, bob: Account
) -> None:
    owner = make_account(client)
    image_id = add_photo(client, owner, "biden.jpg")
    person = person_of(client, owner, image_id)
    (face,) = faces_of(client, owner, image_id)
    assert client.delete("/me", headers=owner.headers).status_code == 204
    # Gone, not someone else's: unknown to anyone now.
    assert_error(client.get(f"/people/{person}", headers=bob.headers), 404, "person_not_found")
    assert_error(
        client.get(f"/faces/{face['id']}/thumbnail", headers=bob.headers), 404, "face_not_found"
    )


# Owner checks: every route, another user's person or face is 403, an unknown one 404 -----


def _routes(person: str, face: str, image: str, other_person: str) -> list[tuple[str, str, Any]]:
    return [
        ("GET", f"/people/{person}", None),
        ("PATCH", f"/people/{person}", {"name": "Mallory"}),
        ("POST", f"/people/{person}/merge", {"into": other_person}),
        ("DELETE", f"/people/{person}/faces/{face}", None),
        ("GET", f"/people/{person}/images", None),
        ("GET", f"/people/{person}/thumbnail", None),
        ("HEAD", f"/people/{person}/thumbnail", None),
        ("GET", f"/faces/{face}/thumbnail", None),
        ("HEAD", f"/faces/{face}/thumbnail", None),
        ("GET", f"/image/{image}/faces", None),
    ]


def test_every_route_refuses_another_users_people_and_faces(
    client: TestClient, album: tuple[Account, dict[str, str]]
) -> None:
    owner, ids = album
    mallory = make_account(client)
    theirs = person_of(client, mallory, add_photo(client, mallory, "biden.jpg"))
    person = person_of(client, owner, ids["obama"])
    (face,) = faces_of(client, owner, ids["obama"])
    before = client.get(f"/people/{person}", headers=owner.headers).json()
    for method, url, body in _routes(person, face["id"], ids["obama"], theirs):
        response = client.request(method, url, headers=mallory.headers, json=body)
        assert response.status_code == 403, (method, url, response.text)
        if method != "HEAD":
            # The error and nothing else: no field of the owner's person or face.
            assert set(response.json()) == {"detail", "code"}, (method, url)
            assert response.json()["code"] in {
                "not_person_owner",
                "not_face_owner",
                "not_image_owner",
            }, (method, url)
    # Their own person, with the owner's face: the face is refused.
    response = client.delete(f"/people/{theirs}/faces/{face['id']}", headers=mallory.headers)
    assert_error(response, 403, "not_face_owner")
    # Their own person, merged into the owner's: refused as well, and nothing moved.
    response = client.post(
        f"/people/{theirs}/merge", headers=mallory.headers, json={"into": person}
    )
    assert_error(response, 403, "not_person_owner")
    assert client.get(f"/people/{person}", headers=owner.headers).json() == before
    assert people(client, mallory)["total"] == 1
    # Nothing of the owner's in their lists and searches, the owner's names included.
    assert {p["id"] for p in people(client, mallory, include_hidden=True)["data"]} == {theirs}
    client.patch(f"/people/{person}", headers=owner.headers, json={"name": "Barack"})
    found = client.get("/image/search", headers=mallory.headers, params={"q": "barack"})
    assert found.json()["data"] == []
    assert people(client, mallory, name="barack")["total"] == 0


def test_every_route_answers_404_for_unknown_people_and_faces(
    client: TestClient, album: tuple[Account, dict[str, str]]
) -> None:
    owner, ids = album
    person = person_of(client, owner, ids["obama"])
    unknown = str(uuid.uuid4())
    for method, url, body in _routes(unknown, unknown, unknown, person):
        response = client.request(method, url, headers=owner.headers, json=body)
        assert response.status_code == 404, (method, url, response.text)
        if method != "HEAD":
            assert response.json()["code"] in {
                "person_not_found",
                "face_not_found",
                "image_not_found",
            }, (method, url)
    # A known person with an unknown face.
    response = client.delete(f"/people/{person}/faces/{unknown}", headers=owner.headers)
    assert_error(response, 404, "face_not_found")


def test_people_routes_need_signing_in(client: TestClient) -> None:
    unknown = str(uuid.uuid4())
    for method, url, body in [
        ("GET", "/people", None),
        *_routes(unknown, unknown, unknown, unknown),
    ]:
        response = client.request(method, url, json=body)
        assert response.status_code == 401, (method, url)
