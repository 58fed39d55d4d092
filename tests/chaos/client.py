"""A small HTTP client for the chaos tests: an account on a running ``iap serve``, uploads,
and the analysis state of images, over a real socket."""

from __future__ import annotations

import io
import random
import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image

from tests.factories import PASSWORD, image_bytes


@dataclass
class Api:
    http: httpx.Client
    headers: dict[str, str]

    @classmethod
    def signed_up(cls, url: str, timeout: float = 30) -> Api:
        http = httpx.Client(base_url=url, timeout=timeout)
        username = f"chaos_{secrets.token_hex(5)}"
        body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
        signup = http.post("/signup", json=body)
        assert signup.status_code == 201, signup.text
        tokens = http.post("/login", data={"username": username, "password": PASSWORD})
        assert tokens.status_code == 200, tokens.text
        return cls(http, {"Authorization": f"Bearer {tokens.json()['access_token']}"})

    def get(self, path: str) -> httpx.Response:
        return self.http.get(path, headers=self.headers)

    def upload(self, data: bytes, filename: str) -> httpx.Response:
        kind = "image/jpeg" if filename.endswith(".jpg") else "image/png"
        files = {"file": (filename, data, kind)}
        return self.http.post("/image/upload", headers=self.headers, files=files)

    def uploaded(self, data: bytes, filename: str) -> dict[str, Any]:
        response = self.upload(data, filename)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def status(self, image_id: str) -> str:
        response = self.get(f"/image/{image_id}")
        assert response.status_code == 200, response.text
        return str(response.json()["analysis"]["status"])

    def wait_for(self, image_id: str, want: set[str], timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while (status := self.status(image_id)) not in want:
            assert time.monotonic() < deadline, f"{image_id} still {status} after {timeout}s"
            time.sleep(0.1)
        return status

    def close(self) -> None:
        self.http.close()


def distinct_png(n: int) -> bytes:
    """The ``n``-th of a series of small valid PNGs, no two alike (own colours and size)."""
    colour = ((n * 37) % 256, (n * 91 + 64) % 256, (n * 53 + 128) % 256)
    size = (96 + n % 61, 72 + (n * 7) % 53)
    return image_bytes("PNG", size=size, color=colour)


def busy_jpeg(rng: random.Random, side: int = 640) -> bytes:
    """A JPEG of random pixels (from ``rng``, so that a seed replays it): every one distinct,
    and slow enough to analyse (about half a second) for a kill to land in the middle of it."""
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3)).save(out, "JPEG")
    return out.getvalue()
