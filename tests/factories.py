"""Small builders for test data: accounts through the public API, images drawn with Pillow."""

from __future__ import annotations

import io
import secrets
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

PASSWORD = "correct horse battery staple"


@dataclass
class Account:
    id: str
    username: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def make_account(client: TestClient, password: str = PASSWORD) -> Account:
    username = f"user_{secrets.token_hex(5)}"
    email = f"{username}@example.com"
    response = client.post(
        "/signup", json={"username": username, "email": email, "password": password}
    )
    assert response.status_code == 201, response.text
    tokens = login(client, username, password)
    return Account(
        id=response.json()["id"],
        username=username,
        email=email,
        password=password,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
    )


def login(client: TestClient, username: str, password: str) -> dict[str, Any]:
    response = client.post("/login", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return dict(response.json())


def image_bytes(
    fmt: str = "JPEG",
    size: tuple[int, int] = (64, 48),
    color: tuple[int, int, int] = (200, 40, 40),
    **save: Any,
) -> bytes:
    """A small real image in ``fmt`` with some structure (so codecs have something to encode)."""
    mode = "RGB"
    image = Image.new(mode, size, color)
    draw = ImageDraw.Draw(image)
    draw.rectangle((size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2), fill=(20, 200, 60))
    draw.line((0, 0, size[0], size[1]), fill=(0, 0, 255), width=2)
    out = io.BytesIO()
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    image.save(out, format=fmt, **save)
    return out.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A tiny PNG that declares ``width`` x ``height`` pixels of zeros: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    body = b"".join(compressor.compress(row) for _ in range(min(height, 64))) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


def upload(
    client: TestClient,
    account: Account,
    data: bytes | None = None,
    filename: str = "photo.jpg",
    content_type: str = "image/jpeg",
    **fields: str,
) -> Any:
    data = image_bytes() if data is None else data
    return client.post(
        "/image/upload",
        headers=account.headers,
        files={"file": (filename, data, content_type)},
        data=fields,
    )


def uploaded(
    client: TestClient, account: Account, data: bytes | None = None, **kwargs: Any
) -> dict[str, Any]:
    response = upload(client, account, data, **kwargs)
    assert response.status_code == 201, response.text
    return dict(response.json())


def wait_for_analysis(
    client: TestClient, account: Account, image_id: str, want: set[str], timeout: float = 90
) -> dict[str, Any]:
    """Poll the image until its analysis status is one of ``want``; return the image."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        image = client.get(f"/image/{image_id}", headers=account.headers).json()
        if image["analysis"]["status"] in want:
            return dict(image)
        if time.monotonic() > deadline:
            raise AssertionError(
                f"analysis of {image_id} still {image['analysis']} after {timeout}s"
            )
        time.sleep(0.1)


def metadata(image: dict[str, Any]) -> dict[str, Any]:
    """An image body without its analysis state, which the worker moves on concurrently."""
    return {key: value for key, value in image.items() if key != "analysis"}
