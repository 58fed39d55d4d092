"""Uploads: the type comes from the bytes, limits hold, hostile files get a clear 4xx, and a
refused upload leaves nothing behind."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import ClientFactory
from tests.factories import Account, image_bytes, make_account, png_bomb, upload, uploaded

FORMATS = [
    ("JPEG", "image/jpeg", "a.jpg", {}),
    ("PNG", "image/png", "a.png", {}),
    ("WEBP", "image/webp", "a.webp", {}),
    ("GIF", "image/gif", "a.gif", {}),
    ("TIFF", "image/tiff", "a.tif", {}),
    ("BMP", "image/bmp", "a.bmp", {}),
    ("HEIF", "image/heif", "a.heic", {}),
    ("AVIF", "image/avif", "a.avif", {}),
]


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return dict(body)


def image_count(client: TestClient, account: Account) -> int:
    return int(client.get("/image/all", headers=account.headers).json()["total"])


@pytest.mark.parametrize(("fmt", "mime", "name", "save"), FORMATS, ids=[f[0] for f in FORMATS])
def test_every_supported_format_is_accepted_and_described(
    client: TestClient, alice: Account, fmt: str, mime: str, name: str, save: dict[str, Any]
) -> None:
    data = image_bytes(fmt, size=(96, 64), **save)
    body = uploaded(client, alice, data, filename=name, content_type="application/octet-stream")
    assert body["file_type"] == mime
    assert body["format"] == fmt
    assert (body["width"], body["height"]) == (96, 64)
    assert body["file_size"] == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["original_filename"] == name
    assert body["user_id"] == alice.id
    assert body["analysis"]["status"] == "queued"


def test_tags_and_description_are_stored(client: TestClient, alice: Account) -> None:
    body = uploaded(client, alice, tags="Sea, holiday,sea", description="Boats at dusk")
    assert body["tags"] == ["holiday", "sea"]
    assert body["description"] == "Boats at dusk"


def test_type_is_decided_by_content_not_name_or_client_type(
    client: TestClient, alice: Account
) -> None:
    png = image_bytes("PNG")
    body = uploaded(client, alice, png, filename="holiday.jpg", content_type="image/jpeg")
    assert body["file_type"] == "image/png"
    assert body["format"] == "PNG"


def test_client_cannot_set_derived_fields(client: TestClient, alice: Account) -> None:
    data = image_bytes("JPEG", size=(40, 30))
    body = uploaded(client, alice, data, width="9999", height="1", file_size="1", sha256="0" * 64)
    assert (body["width"], body["height"], body["file_size"]) == (40, 30, len(data))
    assert body["sha256"] == hashlib.sha256(data).hexdigest()


def test_path_in_filename_is_stripped(client: TestClient, alice: Account) -> None:
    body = uploaded(client, alice, image_bytes("PNG"), filename="../../etc/passwd.png")
    assert body["original_filename"] == "passwd.png"


def test_text_file_with_image_extension_is_415(client: TestClient, alice: Account) -> None:
    before = image_count(client, alice)
    response = upload(client, alice, b"<html><script>alert(1)</script></html>", filename="x.jpg")
    assert_error(response, 415, "unsupported_image_type")
    assert image_count(client, alice) == before


@pytest.mark.parametrize(
    "data",
    [
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",  # EPS: never handed to Ghostscript
        b"\x00\x00\x01\x00\x01\x00\x10\x10\x00\x00\x01\x00\x20\x00",  # ICO header
        b"8BPS\x00\x01" + b"\x00" * 30,  # PSD header
        b'<svg xmlns="http://www.w3.org/2000/svg"/>',
    ],
    ids=["eps", "ico", "psd", "svg"],
)
def test_unsupported_formats_are_415(client: TestClient, alice: Account, data: bytes) -> None:
    assert_error(upload(client, alice, data, filename="x.png"), 415, "unsupported_image_type")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_truncated_image_is_422(client: TestClient, alice: Account, fmt: str) -> None:
    data = image_bytes(fmt, size=(300, 200))
    before = image_count(client, alice)
    body = assert_error(upload(client, alice, data[: len(data) * 2 // 3]), 422, "corrupt_image")
    assert "damaged or incomplete" in body["detail"]
    assert image_count(client, alice) == before


def test_header_only_file_is_rejected(client: TestClient, alice: Account) -> None:
    response = upload(client, alice, b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")
    assert response.status_code in (415, 422)
    assert response.json()["code"] in ("unsupported_image_type", "corrupt_image")


def test_empty_file_is_422(client: TestClient, alice: Account) -> None:
    assert_error(upload(client, alice, b""), 422, "empty_file")


def test_decompression_bomb_is_refused_before_decoding(client: TestClient, alice: Account) -> None:
    bomb = png_bomb(50_000, 50_000)  # 2.5 gigapixels in a few kilobytes
    assert len(bomb) < 200_000
    body = assert_error(upload(client, alice, bomb, filename="bomb.png"), 422, "too_many_pixels")
    assert "2,500,000,000" in body["detail"]


def test_image_wider_than_the_side_limit_is_refused(client: TestClient, alice: Account) -> None:
    assert_error(upload(client, alice, png_bomb(70_000, 1)), 422, "too_many_pixels")


def test_polyglot_is_stored_as_its_image_type_and_served_inert(
    client: TestClient, alice: Account
) -> None:
    # A valid JPEG with an HTML payload appended: stored byte-exact, but always served as
    # image/jpeg, as an attachment, with nosniff and a sandboxing CSP.
    data = image_bytes("JPEG") + b"<html><script>alert(document.cookie)</script></html>"
    body = uploaded(client, alice, data, filename="cat.html")
    assert body["file_type"] == "image/jpeg"
    response = client.get(f"/image/download/{body['id']}", headers=alice.headers)
    assert response.content == data
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-disposition"].startswith("attachment;")
    assert "sandbox" in response.headers["content-security-policy"]


def test_missing_file_field_is_422(client: TestClient, alice: Account) -> None:
    response = client.post(
        "/image/upload", headers=alice.headers, data={"tags": "x"}, files={"other": ("a", b"b")}
    )
    assert_error(response, 422, "file_required")


def test_json_body_is_415(client: TestClient, alice: Account) -> None:
    response = client.post("/image/upload", headers=alice.headers, json={"file": "abc"})
    assert_error(response, 415, "expected_multipart")


def test_garbled_multipart_is_400(client: TestClient, alice: Account) -> None:
    response = client.post(
        "/image/upload",
        headers={**alice.headers, "Content-Type": "multipart/form-data"},  # no boundary
        content=b"--x\r\nnonsense",
    )
    assert_error(response, 400, "invalid_multipart")


def test_too_many_tags_is_422(client: TestClient, alice: Account) -> None:
    tags = ",".join(f"t{i}" for i in range(51))
    assert_error(upload(client, alice, tags=tags), 422, "invalid_field")


def test_upload_needs_authentication(client: TestClient) -> None:
    response = client.post("/image/upload", files={"file": ("a.jpg", image_bytes())})
    assert_error(response, 401, "not_authenticated")


@pytest.fixture
def small_limits_client(client_with: ClientFactory) -> TestClient:
    return client_with(max_upload_bytes=20_000, max_image_pixels=10_000, upload_rate_limit="5/60")


def test_file_over_the_byte_limit_is_413(small_limits_client: TestClient) -> None:
    client = small_limits_client
    account = make_account(client)
    big = image_bytes("BMP", size=(100, 100))  # 30 kB of pixels: over 20 kB, under 10k pixels
    assert len(big) > 20_000
    body = assert_error(upload(client, account, big, filename="big.bmp"), 413, "file_too_large")
    assert "20,000" in body["detail"]
    assert image_count(client, account) == 0


def test_streamed_upload_without_length_is_cut_off_at_the_limit(
    small_limits_client: TestClient,
) -> None:
    client = small_limits_client
    account = make_account(client)
    boundary = "limitboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.bmp"\r\n'
        "Content-Type: image/bmp\r\n\r\n"
    ).encode()

    def body() -> Iterator[bytes]:  # chunked: the server cannot know the size up front
        yield head
        for _ in range(1000):  # 1 MB offered, far past the 20 kB limit
            yield b"\x00" * 1024
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(
        "/image/upload",
        headers={**account.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=body(),
    )
    assert_error(response, 413, "file_too_large")


def test_pixel_limit_is_configurable(small_limits_client: TestClient) -> None:
    client = small_limits_client
    account = make_account(client)
    data = image_bytes("PNG", size=(200, 100))  # 20k pixels, small file
    assert_error(upload(client, account, data, filename="a.png"), 422, "too_many_pixels")


def test_upload_rate_limit(small_limits_client: TestClient) -> None:
    client = small_limits_client
    account = make_account(client)
    for _ in range(5):
        assert upload(client, account, image_bytes(size=(20, 20))).status_code == 201
    response = upload(client, account, image_bytes(size=(20, 20)))
    assert_error(response, 429, "rate_limited")
    assert int(response.headers["retry-after"]) >= 1
