"""Similar images and duplicate groups, through the API, on both deployments: resized and
recompressed copies are found, unrelated photos are not, byte-identical uploads group, and
nothing of another user's ever appears."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from skimage import data

from iap.finding.likeness import band_values, bands, distance, to_int
from tests.factories import Account, make_account, uploaded, wait_for_analysis
from tests.images.test_upload import assert_error


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def _photo(name: str, side: int = 320) -> Image.Image:
    image = Image.fromarray(np.asarray(getattr(data, name)())).convert("RGB")
    image.thumbnail((side, side))
    return image


def _analysed(client: TestClient, owner: Account, blob: bytes, name: str) -> str:
    image_id = str(uploaded(client, owner, blob, filename=name)["id"])
    wait_for_analysis(client, owner, image_id, {"succeeded"})
    return image_id


@pytest.fixture(scope="module")
def album(client: TestClient) -> tuple[Account, dict[str, str]]:
    """One owner's photos: an original, copies of it, and unrelated photos."""
    owner = make_account(client)
    astronaut = _photo("astronaut")
    w, h = astronaut.size
    blobs = {
        "original": _jpeg(astronaut),
        "half": _jpeg(astronaut.resize((w // 2, h // 2))),
        "recompressed": _jpeg(astronaut, quality=25),
        "copy": _jpeg(astronaut),  # the same bytes as the original
        "coffee": _jpeg(_photo("coffee")),
        "rocket": _jpeg(_photo("rocket")),
        "camera": _jpeg(_photo("camera")),
    }
    return owner, {
        name: _analysed(client, owner, blob, f"{name}.jpg") for name, blob in blobs.items()
    }


def _similar(client: TestClient, owner: Account, image_id: str, **params: Any) -> Any:
    response = client.get(f"/image/{image_id}/similar", params=params, headers=owner.headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_similar_finds_resized_and_recompressed_copies_nearest_first(
    client: TestClient, album: tuple[Account, dict[str, str]]
) -> None:
    owner, ids = album
    page = _similar(client, owner, ids["original"])
    found = {hit["image"]["id"]: hit["distance"] for hit in page["data"]}
    names = {image_id: name for name, image_id in ids.items()}
    assert {names[i] for i in found} == {"half", "recompressed", "copy"}
    assert found[ids["copy"]] == 0
    assert all(d <= 4 for d in found.values())
    distances = [hit["distance"] for hit in page["data"]]
    assert distances == sorted(distances)
    assert page["max_distance"] == 10
    assert ids["original"] not in found  # not itself


def test_similar_reaches_unrelated_photos_only_far_away(
    client: TestClient, album: tuple[Account, dict[str, str]]
) -> None:
    owner, ids = album
    near = _similar(client, owner, ids["coffee"])
    assert near["data"] == []
    far = _similar(client, owner, ids["coffee"], max_distance=16, limit=100)
    assert all(hit["distance"] > 10 for hit in far["data"])


def test_similar_limit_keeps_the_nearest(
    client: TestClient, album: tuple[Account, dict[str, str]]
) -> None:
    owner, ids = album
    everything = _similar(client, owner, ids["original"])["data"]
    page = _similar(client, owner, ids["original"], limit=1)
    assert page["data"] == everything[:1]
    assert page["data"][0]["distance"] == 0


def test_similar_never_shows_another_users_images(
    client: TestClient, album: tuple[Account, dict[str, str]]
) -> None:
    owner, ids = album
    stranger = make_account(client)
    theirs = _analysed(client, stranger, _jpeg(_photo("astronaut")), "mine.jpg")
    assert theirs not in {
        h["image"]["id"] for h in _similar(client, owner, ids["original"])["data"]
    }
    assert _similar(client, stranger, theirs)["data"] == []  # the owner's copies stay theirs
    response = client.get(f"/image/{ids['original']}/similar", headers=stranger.headers)
    assert_error(response, 403, "not_image_owner")
    assert "data" not in response.json()


def test_similar_of_an_unknown_image_is_404_and_bad_bounds_are_422(
    client: TestClient, alice: Account
) -> None:
    unknown = "/image/00000000-0000-4000-8000-000000000000/similar"
    assert_error(client.get(unknown, headers=alice.headers), 404, "image_not_found")
    image_id = uploaded(client, alice)["id"]
    for params in ({"max_distance": 17}, {"max_distance": -1}, {"limit": 0}, {"limit": 101}):
        response = client.get(f"/image/{image_id}/similar", params=params, headers=alice.headers)
        assert response.status_code == 422, params
    assert client.get(f"/image/{image_id}/similar").status_code == 401


def test_similar_before_the_hashes_exist_is_409(client_with: Any) -> None:
    client = client_with(disabled_analysers="text,hashes")
    owner = make_account(client)
    image_id = _analysed(client, owner, _jpeg(_photo("coffee")), "coffee.jpg")
    response = client.get(f"/image/{image_id}/similar", headers=owner.headers)
    assert_error(response, 409, "hashes_not_ready")


def _duplicates(client: TestClient, owner: Account, **params: Any) -> Any:
    response = client.get("/image/duplicates", params=params, headers=owner.headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_exact_duplicates_group_byte_identical_uploads_and_keep_one(
    client: TestClient, album: tuple[Account, dict[str, str]]
) -> None:
    owner, ids = album
    page = _duplicates(client, owner)
    assert page["kind"] == "exact"
    assert page["next_cursor"] is None
    [group] = page["data"]
    members = [member["image"]["id"] for member in group["images"]]
    assert sorted(members) == sorted([ids["original"], ids["copy"]])
    assert group["keep"] == ids["original"]  # same size: the older upload
    assert members[0] == group["keep"]
    assert all(member["same_bytes"] for member in group["images"])


def test_near_duplicates_group_the_copies_not_the_unrelated(
    client: TestClient, album: tuple[Account, dict[str, str]]
) -> None:
    owner, ids = album
    page = _duplicates(client, owner, kind="near")
    [group] = page["data"]
    members = {member["image"]["id"]: member for member in group["images"]}
    assert set(members) == {ids["original"], ids["half"], ids["recompressed"], ids["copy"]}
    assert group["keep"] in (ids["original"], ids["copy"])  # the most pixels, oldest
    assert members[ids["half"]]["same_bytes"] is False
    assert members[ids["copy"]]["distance"] == 0
    assert all(member["distance"] <= 4 for member in members.values())


def test_deleting_a_duplicate_takes_it_out_of_its_groups(client: TestClient) -> None:
    owner = make_account(client)
    blob = _jpeg(_photo("rocket"))
    first, second = (_analysed(client, owner, blob, f"r{n}.jpg") for n in range(2))
    assert len(_duplicates(client, owner, kind="near")["data"]) == 1
    client.delete(f"/image/{second}", headers=owner.headers)
    assert _duplicates(client, owner)["data"] == []
    assert _duplicates(client, owner, kind="near")["data"] == []
    assert _similar(client, owner, first)["data"] == []


def test_duplicate_pages_follow_their_cursor_and_stay_the_owners(client: TestClient) -> None:
    owner = make_account(client)
    stranger = make_account(client)
    groups_made = []
    for name in ("coffee", "rocket", "camera"):
        blob = _jpeg(_photo(name))
        groups_made.append({_analysed(client, owner, blob, f"{name}{n}.jpg") for n in range(2)})
        _analysed(client, stranger, blob, f"{name}.jpg")  # one each: no group of theirs
    for kind in ("exact", "near"):
        seen, cursor = [], None
        while True:
            page = _duplicates(
                client, owner, kind=kind, limit=1, **({"cursor": cursor} if cursor else {})
            )
            seen.extend({m["image"]["id"] for m in g["images"]} for g in page["data"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(map(sorted, seen)) == sorted(map(sorted, groups_made)), kind
        assert _duplicates(client, stranger, kind=kind)["data"] == []
    bad = client.get(
        "/image/duplicates", params={"kind": "near", "cursor": "nope"}, headers=owner.headers
    )
    assert_error(bad, 422, "invalid_cursor")
    assert (
        client.get("/image/duplicates", params={"kind": "x"}, headers=owner.headers).status_code
        == 422
    )


# The arithmetic behind the lookups ---------------------------------------------------------


def test_hashes_become_signed_64_bit_integers_and_back_into_bands() -> None:
    assert to_int("0000000000000001") == 1
    assert to_int("ffffffffffffffff") == -1
    assert to_int("8000000000000000") == -(1 << 63)
    assert bands(to_int("0123456789abcdef")) == (0xCDEF, 0x89AB, 0x4567, 0x0123)
    for bad in ("", "123", "0123456789abcdefff", "zz23456789abcdef"):
        with pytest.raises(ValueError, match=r"64-bit hash|invalid literal"):
            to_int(bad)


def test_every_hash_within_the_distance_shares_a_looked_up_band_value() -> None:
    rng = np.random.default_rng(7)
    for most in (0, 3, 4, 7, 10, 16):
        for _ in range(200):
            value = int(rng.integers(0, 1 << 63)) - (1 << 62)
            flipped = value
            for bit in rng.choice(64, size=most, replace=False):
                flipped ^= 1 << int(bit)
            flipped = to_int(f"{flipped & ((1 << 64) - 1):016x}")
            assert distance(value, flipped) == most
            wanted = band_values(value, most)
            assert any(b in wanted[n] for n, b in enumerate(bands(flipped)))
