"""Nobody sees another user's image: every image route, called with another user's token, is a
403 that carries no data; an unknown id is a 404; no token is a 401."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import Account, image_bytes, metadata, uploaded
from tests.images.test_upload import assert_error

Call = Callable[[TestClient, str, dict[str, str]], Any]

ROUTES: dict[str, Call] = {
    "GET /image/{id}": lambda c, i, h: c.get(f"/image/{i}", headers=h),
    "PUT /image/{id}": lambda c, i, h: c.put(f"/image/{i}", headers=h, json={"tags": ["stolen"]}),
    "DELETE /image/{id}": lambda c, i, h: c.delete(f"/image/{i}", headers=h),
    "GET /image/download/{id}": lambda c, i, h: c.get(f"/image/download/{i}", headers=h),
    "GET /image/download/{id} (range)": lambda c, i, h: c.get(
        f"/image/download/{i}", headers={**h, "Range": "bytes=0-9"}
    ),
    "GET /image/{id}/analysis": lambda c, i, h: c.get(f"/image/{i}/analysis", headers=h),
    "POST /image/{id}/analyze": lambda c, i, h: c.post(f"/image/{i}/analyze", headers=h),
    "GET /image/{id}/thumbnail": lambda c, i, h: c.get(f"/image/{i}/thumbnail", headers=h),
}

UNKNOWN_ID = "6d0c6e0e-0000-4000-8000-00000000beef"


@pytest.mark.parametrize("route", ROUTES)
def test_other_user_gets_403_and_no_data(
    client: TestClient, alice: Account, bob: Account, route: str
) -> None:
    image = uploaded(
        client, alice, image_bytes("PNG"), filename="secret-plans.png", description="private"
    )
    response = ROUTES[route](client, image["id"], bob.headers)
    body = assert_error(response, 403, "not_image_owner")
    assert set(body) == {"detail", "code"}
    for secret in ("secret-plans", "private", image["sha256"], alice.id):
        assert secret not in response.text
    # and nothing changed for the owner
    after = client.get(f"/image/{image['id']}", headers=alice.headers)
    assert after.status_code == 200
    assert metadata(after.json()) == metadata(image)


@pytest.mark.parametrize("route", ROUTES)
def test_other_user_gets_403_even_when_metadata_is_cached(
    client: TestClient, alice: Account, bob: Account, route: str
) -> None:
    image = uploaded(client, alice)
    assert client.get(f"/image/{image['id']}", headers=alice.headers).status_code == 200
    assert_error(ROUTES[route](client, image["id"], bob.headers), 403, "not_image_owner")


@pytest.mark.parametrize("route", ROUTES)
def test_unknown_image_is_404(client: TestClient, alice: Account, route: str) -> None:
    assert_error(ROUTES[route](client, UNKNOWN_ID, alice.headers), 404, "image_not_found")


@pytest.mark.parametrize("route", ROUTES)
def test_no_token_is_401(client: TestClient, alice: Account, route: str) -> None:
    image = uploaded(client, alice)
    response = ROUTES[route](client, image["id"], {})
    assert_error(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"] == "Bearer"


def test_list_needs_authentication(client: TestClient) -> None:
    assert_error(client.get("/image/all"), 401, "not_authenticated")
