"""Control characters (NUL above all, which PostgreSQL refuses in text) never reach the
database: they get a 4xx on both deployments, never a 500."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.factories import Account, upload, uploaded


def test_login_with_nul_in_username_is_an_ordinary_failure(client: TestClient) -> None:
    response = client.post("/login", data={"username": "ali\x00ce", "password": "whatever1"})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"


def test_list_filters_with_control_characters_are_422(client: TestClient, alice: Account) -> None:
    for query in ("q=a%00b", "tag=x%00", "format=png%00", "q=%1b[31m"):
        response = client.get(f"/image/all?{query}", headers=alice.headers)
        assert response.status_code == 422, query
        assert response.json()["code"] == "validation_error"


def test_edits_with_control_characters_are_422(client: TestClient, alice: Account) -> None:
    image = uploaded(client, alice)
    for body in ({"tags": ["a\x00b"]}, {"description": "nul\x00here"}):
        response = client.put(f"/image/{image['id']}", headers=alice.headers, json=body)
        assert response.status_code == 422, body
    multiline = client.put(
        f"/image/{image['id']}", headers=alice.headers, json={"description": "line one\n\tline two"}
    )
    assert multiline.status_code == 200
    assert multiline.json()["description"] == "line one\n\tline two"


def test_upload_fields_with_control_characters_are_422(client: TestClient, alice: Account) -> None:
    assert upload(client, alice, tags="ok,bad\x00tag").json()["code"] == "invalid_field"
    assert upload(client, alice, description="x\x00y").json()["code"] == "invalid_field"
    assert client.get("/image/all", headers=alice.headers).json()["total"] == 0


def test_api_key_name_with_control_characters_is_422(client: TestClient, alice: Account) -> None:
    response = client.post("/me/api-keys", headers=alice.headers, json={"name": "ci\x00"})
    assert response.status_code == 422


def test_the_document_says_which_fields_refuse_control_characters(client: TestClient) -> None:
    """Each field above refuses them, so its schema carries the rule as a ``pattern``: a client
    reading the document learns it before a 422 tells it."""
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    line = schemas["ApiKeyIn"]["properties"]["name"]["pattern"]
    edit = schemas["ImageUpdate"]["properties"]
    tag = edit["tags"]["anyOf"][0]["items"]["pattern"]
    prose = edit["description"]["anyOf"][0]["pattern"]
    upload = spec["paths"]["/image/upload"]["post"]["requestBody"]["content"]
    form = upload["multipart/form-data"]["schema"]["properties"]
    listed = {p["name"]: p for p in spec["paths"]["/image/all"]["get"]["parameters"]}
    assert listed["tag"]["schema"]["anyOf"][0]["items"]["pattern"] == line
    assert form["tags"]["pattern"] == tag == line
    assert form["description"]["pattern"] == prose
    assert re.fullmatch(line, "a tag")
    assert not re.fullmatch(line, "a\x00b")
    assert not re.fullmatch(line, "two\nlines")
    assert re.fullmatch(prose, "line one\n\tline two")
    assert not re.fullmatch(prose, "nul\x00here")
