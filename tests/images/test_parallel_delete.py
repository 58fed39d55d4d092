"""Parallel deletes of one image: exactly one is the delete (204); the others find nothing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.factories import image_bytes
from tests.live_server import LiveServer, remote_account


def test_parallel_deletes_of_one_image_answer_one_204_and_404s(live_server: LiveServer) -> None:
    account = remote_account(live_server)
    headers = {"Authorization": f"Bearer {account.access_token}"}
    with httpx.Client(base_url=live_server.url, headers=headers, timeout=60) as http:
        files = {"file": ("a.png", image_bytes("PNG"), "image/png")}
        image_id = http.post("/image/upload", files=files).json()["id"]

        def delete(_: int) -> int:
            return http.delete(f"/image/{image_id}").status_code

        with ThreadPoolExecutor(6) as pool:
            answers = sorted(pool.map(delete, range(6)))
        assert answers == [204, 404, 404, 404, 404, 404]
        assert http.get(f"/image/{image_id}").status_code == 404
