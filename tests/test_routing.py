"""Methods a path does not have: 405 with an ``Allow`` header naming all of the path's
methods, in the error format, and OPTIONS answered with that same ``Allow``."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.auth.helpers import assert_error
from tests.factories import Account

SOME_IMAGE = "/image/00000000-0000-4000-8000-000000000000"


def allowed(response: object) -> set[str]:
    header = response.headers["allow"]  # type: ignore[attr-defined]
    return {method.strip() for method in header.split(",")}


def test_405_names_every_method_of_the_path(client: TestClient, alice: Account) -> None:
    response = client.patch("/me/api-keys", headers=alice.headers)
    assert_error(response, 405, "method_not_allowed")
    assert allowed(response) == {"GET", "POST", "OPTIONS"}


def test_a_method_a_literal_path_lacks_is_405_not_a_request_to_its_parametrised_sibling(
    client: TestClient, alice: Account
) -> None:
    """``PUT /image/all`` is not ``PUT /image/{image_id}`` with the id "all"."""
    for method, path, methods in [
        ("PUT", "/image/all", {"GET", "OPTIONS"}),
        ("DELETE", "/image/upload", {"POST", "OPTIONS"}),
        ("GET", "/image/upload", {"POST", "OPTIONS"}),
    ]:
        response = client.request(method, path, headers=alice.headers)
        body = assert_error(response, 405, "method_not_allowed")
        assert allowed(response) == methods, (method, path)
        assert method in body["detail"]
        assert path in body["detail"]


def test_a_parametrised_path_still_reads_its_parameter(client: TestClient, alice: Account) -> None:
    assert client.get("/image/all", headers=alice.headers).status_code == 200
    assert_error(client.get(SOME_IMAGE, headers=alice.headers), 404, "image_not_found")
    assert_error(client.post(SOME_IMAGE, headers=alice.headers), 405, "method_not_allowed")


def test_options_answers_with_the_methods_of_the_path(client: TestClient) -> None:
    response = client.options(SOME_IMAGE)
    assert response.status_code == 204
    assert response.content == b""
    assert allowed(response) == {"GET", "PUT", "DELETE", "OPTIONS"}
    assert allowed(client.options("/me/api-keys")) == {"GET", "POST", "OPTIONS"}
