"""Downloads: byte-exact originals with type, name, ETag and Range support, on both stores."""

from __future__ import annotations

import hashlib
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from tests.factories import Account, image_bytes, uploaded
from tests.images.test_upload import FORMATS, assert_error


@pytest.mark.parametrize(("fmt", "mime", "name", "save"), FORMATS, ids=[f[0] for f in FORMATS])
def test_download_equals_upload_byte_for_byte(
    client: TestClient, alice: Account, fmt: str, mime: str, name: str, save: dict[str, object]
) -> None:
    data = image_bytes(fmt, size=(120, 90), **save)  # type: ignore[arg-type]
    image = uploaded(client, alice, data, filename=name)
    response = client.get(f"/image/download/{image['id']}", headers=alice.headers)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == mime
    assert response.headers["content-length"] == str(len(data))
    assert response.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert response.headers["accept-ranges"] == "bytes"
    assert f'filename="{name}"' in response.headers["content-disposition"]


def test_large_file_round_trips_exactly(client: TestClient, alice: Account) -> None:
    # Several megabytes of incompressible pixels: crosses chunk and multipart-upload boundaries.
    import os

    from PIL import Image

    noise = Image.frombytes("RGB", (1400, 1400), os.urandom(1400 * 1400 * 3))
    import io

    out = io.BytesIO()
    noise.save(out, "PNG")
    data = out.getvalue()
    assert len(data) > 5_000_000
    image = uploaded(client, alice, data, filename="noise.png")
    response = client.get(f"/image/download/{image['id']}", headers=alice.headers)
    assert hashlib.sha256(response.content).digest() == hashlib.sha256(data).digest()


def test_unicode_filename_is_kept_in_content_disposition(
    client: TestClient, alice: Account
) -> None:
    name = "Über café 東京.png"
    image = uploaded(client, alice, image_bytes("PNG"), filename=name)
    assert image["original_filename"] == name
    header = client.get(f"/image/download/{image['id']}", headers=alice.headers).headers[
        "content-disposition"
    ]
    assert f"filename*=UTF-8''{quote(name, safe='')}" in header
    assert header.isascii()


def test_quotes_and_newlines_in_filename_cannot_break_the_header(
    client: TestClient, alice: Account
) -> None:
    image = uploaded(client, alice, image_bytes("PNG"), filename='a"b\r\nX-Evil: 1.png')
    response = client.get(f"/image/download/{image['id']}", headers=alice.headers)
    assert "x-evil" not in response.headers
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=10-", 10, None),
        ("bytes=-5", -5, None),
        ("bytes=5-5", 5, 5),
        ("bytes=3-999999", 3, None),
    ],
)
def test_range_requests_get_206(
    client: TestClient, alice: Account, header: str, start: int, end: int | None
) -> None:
    data = image_bytes("PNG", size=(80, 80))
    image = uploaded(client, alice, data)
    response = client.get(
        f"/image/download/{image['id']}", headers={**alice.headers, "Range": header}
    )
    assert response.status_code == 206
    expected = data[start:] if end is None else data[start : end + 1]
    assert response.content == expected
    first = start if start >= 0 else len(data) + start
    assert (
        response.headers["content-range"]
        == f"bytes {first}-{first + len(expected) - 1}/{len(data)}"
    )
    assert response.headers["content-length"] == str(len(expected))


def test_range_past_the_end_is_416(client: TestClient, alice: Account) -> None:
    data = image_bytes("PNG")
    image = uploaded(client, alice, data)
    response = client.get(
        f"/image/download/{image['id']}", headers={**alice.headers, "Range": f"bytes={len(data)}-"}
    )
    assert_error(response, 416, "range_not_satisfiable")
    assert response.headers["content-range"] == f"bytes */{len(data)}"


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "items=0-1", "bytes=abc", "bytes=9-3"])
def test_unsupported_or_malformed_ranges_get_the_whole_file(
    client: TestClient, alice: Account, header: str
) -> None:
    data = image_bytes("PNG")
    image = uploaded(client, alice, data)
    response = client.get(
        f"/image/download/{image['id']}", headers={**alice.headers, "Range": header}
    )
    assert response.status_code == 200
    assert response.content == data


def test_if_none_match_gives_304(client: TestClient, alice: Account) -> None:
    image = uploaded(client, alice)
    etag = client.get(f"/image/download/{image['id']}", headers=alice.headers).headers["etag"]
    response = client.get(
        f"/image/download/{image['id']}", headers={**alice.headers, "If-None-Match": etag}
    )
    assert response.status_code == 304
    assert response.content == b""


def test_stale_if_range_gets_the_whole_file(client: TestClient, alice: Account) -> None:
    data = image_bytes("PNG")
    image = uploaded(client, alice, data)
    response = client.get(
        f"/image/download/{image['id']}",
        headers={**alice.headers, "Range": "bytes=0-3", "If-Range": '"stale"'},
    )
    assert response.status_code == 200
    assert response.content == data


def test_head_answers_like_get_without_the_body(
    client: TestClient, alice: Account, bob: Account
) -> None:
    data = image_bytes("PNG", size=(80, 80))
    image = uploaded(client, alice, data, filename="harbour.png")
    url = f"/image/download/{image['id']}"
    got = client.get(url, headers=alice.headers)
    head = client.head(url, headers=alice.headers)
    assert head.status_code == 200
    assert head.content == b""
    for name in ("content-type", "content-length", "etag", "content-disposition", "accept-ranges"):
        assert head.headers[name] == got.headers[name], name
    assert head.headers["content-length"] == str(len(data))
    part = client.head(url, headers={**alice.headers, "Range": "bytes=0-9"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 0-9/{len(data)}"
    assert part.headers["content-length"] == "10"
    assert client.head(url, headers=bob.headers).status_code == 403
    unknown = "/image/download/00000000-0000-4000-8000-000000000000"
    assert client.head(unknown, headers=alice.headers).status_code == 404


def test_the_document_gives_downloads_the_media_types_of_images(client: TestClient) -> None:
    operations = client.get("/openapi.json").json()["paths"]["/image/download/{image_id}"]
    assert set(operations) == {"get", "head"}
    for operation in operations.values():
        for status in ("200", "206"):
            content = operation["responses"][status]["content"]
            assert "application/json" not in content
            assert {mime for _, mime, _, _ in FORMATS} == set(content), status
            assert all(media["schema"]["format"] == "binary" for media in content.values())
