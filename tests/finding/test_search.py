"""Full-text search through the API, on both deployments: every field is found (the text read
from the image and the camera's EXIF included), ranked, with snippets; words, prefixes and
phrases, case and accents folded; the index follows edits and deletes; hostile queries get
results or a 422, never a 500; nothing of another user's ever appears."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from iap.app import create_app
from iap.images import pagination
from tests.analysis.factories import with_text
from tests.conftest import settings_for
from tests.factories import Account, image_bytes, make_account, uploaded, wait_for_analysis
from tests.images.test_upload import assert_error


@pytest.fixture(scope="module")
def client(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """An app that reads text in images (the suite at large runs without OCR)."""
    folder = tmp_path_factory.mktemp("search")
    settings = settings_for(backend, request, folder, disabled_analysers="")
    with TestClient(create_app(settings)) as reader:
        yield reader


def _sign(word: str) -> bytes:
    """A photo-sized picture of a printed word, for the text analyser to read."""
    image, _ = with_text(word, (640, 240), 64, (40, 80))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _with_camera(make: str, model: str, lens: str) -> bytes:
    image = Image.open(io.BytesIO(image_bytes())).convert("RGB")
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = make, model
    exif.get_ifd(0x8769)[0xA434] = lens  # LensModel, in the EXIF IFD
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


def search(client: TestClient, owner: Account, q: str, **params: Any) -> Any:
    response = client.get("/image/search", params={"q": q, **params}, headers=owner.headers)
    assert response.status_code == 200, response.text
    return response.json()


def _names(page: dict[str, Any]) -> list[str]:
    return [hit["image"]["original_filename"] for hit in page["data"]]


@pytest.fixture(scope="module")
def shelf(client: TestClient) -> tuple[Account, dict[str, str]]:
    """One owner's images, each findable by a different field."""
    owner = make_account(client)
    ids = {
        "named": uploaded(client, owner, filename="bakery_front.jpg")["id"],
        "sign": uploaded(client, owner, _sign("BAKERY"), filename="street.png")["id"],
        "tagged": uploaded(client, owner, filename="a.jpg", tags="bakery,morning")["id"],
        "described": uploaded(
            client,
            owner,
            filename="b.jpg",
            description="Café au lait in Zürich, before the Überlingen trip",
        )["id"],
        "camera": uploaded(
            client,
            owner,
            _with_camera("Canon", "Canon EOS R6", "RF24-105mm F4 L IS USM"),
            filename="c.jpg",
        )["id"],
        "numbered": uploaded(client, owner, filename="IMG_9912.JPG")["id"],
    }
    for image_id in ids.values():
        wait_for_analysis(client, owner, image_id, {"succeeded"})
    return owner, ids


def test_every_field_is_found_ranked_filename_first(
    client: TestClient, shelf: tuple[Account, dict[str, str]]
) -> None:
    owner, ids = shelf
    page = search(client, owner, "bakery")
    found = [hit["image"]["id"] for hit in page["data"]]
    assert set(found) == {ids["named"], ids["sign"], ids["tagged"]}
    # Filename above tags above the text read from the image.
    assert found == [ids["named"], ids["tagged"], ids["sign"]]
    scores = [hit["score"] for hit in page["data"]]
    assert scores == sorted(scores, reverse=True)
    fields = {hit["image"]["id"]: [m["field"] for m in hit["matches"]] for hit in page["data"]}
    assert fields == {ids["named"]: ["filename"], ids["tagged"]: ["tags"], ids["sign"]: ["text"]}
    assert page["next_cursor"] is None


def test_snippets_mark_the_matching_words(
    client: TestClient, shelf: tuple[Account, dict[str, str]]
) -> None:
    owner, ids = shelf
    (hit,) = search(client, owner, "zurich")["data"]
    assert hit["image"]["id"] == ids["described"]
    (match,) = hit["matches"]
    assert match["field"] == "description"
    assert match["snippet"] == "Café au lait in Zürich, before the Überlingen trip"
    assert "".join(part["text"] for part in match["parts"]) == match["snippet"]
    assert [part["text"] for part in match["parts"] if part["highlight"]] == ["Zürich"]
    sign = search(client, owner, "bakery")["data"][-1]
    assert [p["text"] for p in sign["matches"][0]["parts"] if p["highlight"]] == ["BAKERY"]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("ZÜRICH", True),  # case and accents folded
        ("uberlingen", True),
        ("cafe", True),
        ("zur*", True),  # prefix
        ("zur", False),  # a word is whole without the star
        ('"au lait"', True),  # phrase
        ('"lait au"', False),  # words in that order only
        ("zurich trip", True),  # every word, anywhere in the field
        ("zurich bakery", False),  # every word must match
        ('"au lait', True),  # an unclosed quote runs to the end
    ],
)
def test_words_prefixes_and_phrases(
    client: TestClient, shelf: tuple[Account, dict[str, str]], q: str, expected: bool
) -> None:
    owner, ids = shelf
    found = [hit["image"]["id"] for hit in search(client, owner, q)["data"]]
    assert found == ([ids["described"]] if expected else [])


def test_camera_and_lens_from_exif(
    client: TestClient, shelf: tuple[Account, dict[str, str]]
) -> None:
    owner, ids = shelf
    (hit,) = search(client, owner, "eos r6")["data"]
    assert hit["image"]["id"] == ids["camera"]
    assert hit["matches"][0]["field"] == "camera"
    assert hit["matches"][0]["snippet"] == "Canon EOS R6 · RF24-105mm F4 L IS USM"
    assert [h["image"]["id"] for h in search(client, owner, "rf24*")["data"]] == [ids["camera"]]


def test_a_piece_of_a_filename_finds_it(
    client: TestClient, shelf: tuple[Account, dict[str, str]]
) -> None:
    owner, ids = shelf
    for q in ("mg_99", "9912", "IMG_9912.jpg", "g_991"):
        page = search(client, owner, q)
        assert [hit["image"]["id"] for hit in page["data"]] == [ids["numbered"]], q
        (match,) = page["data"][0]["matches"]
        assert match["field"] == "filename"
        assert any(part["highlight"] for part in match["parts"])
    assert search(client, owner, "99")["data"] == []  # under 3 characters: whole words only


def test_filters_and_cursor_paging(
    client: TestClient, shelf: tuple[Account, dict[str, str]]
) -> None:
    owner, _ = shelf
    assert _names(search(client, owner, "bakery", tag="morning")) == ["a.jpg"]
    assert _names(search(client, owner, "bakery", format="png")) == ["street.png"]
    everything = [hit["image"]["id"] for hit in search(client, owner, "bakery")["data"]]
    paged: list[str] = []
    cursor = None
    while True:
        params = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        page = search(client, owner, "bakery", **params)
        paged += [hit["image"]["id"] for hit in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == everything
    # A cursor belongs to its search.
    first = search(client, owner, "bakery", limit=1)["next_cursor"]
    response = client.get(
        "/image/search", params={"q": "morning", "cursor": first}, headers=owner.headers
    )
    assert_error(response, 422, "invalid_cursor")
    assert pagination.decode_position(first, _order_of(first), float, int)  # a real one decodes
    for forged in ("nonsense", *(_forged(first, value) for value in FORGED)):
        response = client.get(
            "/image/search", params={"q": "bakery", "cursor": forged}, headers=owner.headers
        )
        assert_error(response, 422, "invalid_cursor")


def test_pages_and_scores_stand_while_others_upload(
    client: TestClient, alice: Account, bob: Account
) -> None:
    """A score is the image's own: other users' uploads change neither it nor the pages."""
    for n in range(4):
        uploaded(client, alice, filename=f"sea_{n}.jpg", tags="sea" if n % 2 else "")
    first = search(client, alice, "sea", limit=2)
    for n in range(6):
        uploaded(client, bob, filename=f"sea sea {n}.jpg", description="sea", tags="sea")
    rest = search(client, alice, "sea", limit=2, cursor=first["next_cursor"])
    ids = [hit["image"]["id"] for hit in first["data"] + rest["data"]]
    assert len(set(ids)) == 4
    again = search(client, alice, "sea")
    assert [hit["image"]["id"] for hit in again["data"]] == ids
    assert [hit["score"] for hit in again["data"]] == [
        hit["score"] for hit in first["data"] + rest["data"]
    ]
    # Filename and tags above the filename alone; equal scores, newest first.
    names = [hit["image"]["original_filename"] for hit in again["data"]]
    assert names == ["sea_3.jpg", "sea_1.jpg", "sea_2.jpg", "sea_0.jpg"]


def test_words_may_be_in_different_fields_but_a_phrase_is_in_one(
    client: TestClient, alice: Account
) -> None:
    uploaded(client, alice, filename="q.jpg", tags="bakery")
    assert _names(search(client, alice, "jpg bakery")) == ["q.jpg"]
    assert search(client, alice, '"jpg bakery"')["data"] == []


# Positions no page gives: past the databases' integers, not numbers, not finite.
FORGED = [[1.5, 10**30], [1.5, -(10**30)], ["x", 1], [1.5, 1.5], [float("nan"), 1], [1e999, 1]]


def _order_of(cursor: str) -> str:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    return str(json.loads(raw)[0])


def _forged(cursor: str, values: list[Any]) -> str:
    raw = json.dumps([_order_of(cursor), *values]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_the_index_follows_edits_and_deletes(client: TestClient, alice: Account) -> None:
    image = uploaded(client, alice, filename="first.jpg", description="lighthouse at dusk")
    assert _names(search(client, alice, "lighthouse")) == ["first.jpg"]
    response = client.put(
        f"/image/{image['id']}",
        json={"description": "harbour at dawn", "tags": ["boats"], "original_filename": "x.jpg"},
        headers=alice.headers,
    )
    assert response.status_code == 200, response.text
    assert search(client, alice, "lighthouse")["data"] == []
    assert search(client, alice, "first")["data"] == []
    for q in ("harbour", "boats", "x"):
        assert _names(search(client, alice, q)) == ["x.jpg"], q
    wait_for_analysis(client, alice, image["id"], {"succeeded"})
    assert _names(search(client, alice, "harbour")) == ["x.jpg"]  # analysis keeps the edit
    assert client.delete(f"/image/{image['id']}", headers=alice.headers).status_code == 204
    assert search(client, alice, "harbour")["data"] == []


def test_other_users_images_never_appear(
    client: TestClient, shelf: tuple[Account, dict[str, str]], bob: Account
) -> None:
    owner, _ = shelf
    mine = uploaded(client, bob, filename="bakery_front.jpg", description="zurich")["id"]
    assert [hit["image"]["id"] for hit in search(client, bob, "bakery")["data"]] == [mine]
    assert [hit["image"]["id"] for hit in search(client, bob, "zurich")["data"]] == [mine]
    assert mine not in {hit["image"]["id"] for hit in search(client, owner, "bakery")["data"]}
    assert search(client, bob, "eos")["data"] == []


HOSTILE = [
    '"',
    '""',
    "*",
    "**",
    "bakery*",
    "*bakery",
    "ba*kery",
    "NEAR",
    "NEAR(bakery zurich)",
    "bakery NEAR zurich",
    "-bakery",
    "bakery -zurich",
    "bakery AND OR NOT",
    "AND",
    '"unclosed',
    'unclosed"',
    "'",
    "bakery'; DROP TABLE images; --",
    "filename:bakery",
    "{filename tags}: bakery",
    "^bakery",
    "bakery + zurich",
    "(bakery",
    "bakery)",
    "%",
    "_",
    "\\",
    "a%b_c",
    "#bakery",
    "😀 bakery",
    "日本語",
    "x" * 200,
    "ß",
    "İstanbul",
]


@pytest.mark.parametrize("q", HOSTILE)
def test_hostile_queries_get_results_or_a_clear_422(
    client: TestClient, shelf: tuple[Account, dict[str, str]], q: str
) -> None:
    owner, _ = shelf
    response = client.get("/image/search", params={"q": q}, headers=owner.headers)
    if response.status_code == 422:
        assert_error(response, 422, "invalid_query")
    else:
        assert response.status_code == 200, response.text
        assert all(hit["image"]["user_id"] == owner.id for hit in response.json()["data"])


def test_operators_are_only_words(
    client: TestClient, shelf: tuple[Account, dict[str, str]]
) -> None:
    owner, ids = shelf
    # "-" does not exclude, NEAR and OR are words the images do not have.
    assert ids["described"] in {h["image"]["id"] for h in search(client, owner, "-zurich")["data"]}
    assert search(client, owner, "bakery OR zurich")["data"] == []
    assert search(client, owner, "NEAR(bakery)")["data"] == []


@pytest.mark.parametrize(
    ("q", "code"),
    [
        ("", "validation_error"),
        ("x" * 201, "validation_error"),
        ("   ", "invalid_query"),
        ('"*-"', "invalid_query"),
        (" ".join(f"w{n}" for n in range(17)), "invalid_query"),
    ],
)
def test_empty_and_over_long_queries_are_422(
    client: TestClient, alice: Account, q: str, code: str
) -> None:
    response = client.get("/image/search", params={"q": q}, headers=alice.headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code


def test_search_needs_a_login(client: TestClient) -> None:
    assert_error(client.get("/image/search", params={"q": "x"}), 401, "not_authenticated")
