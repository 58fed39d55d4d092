"""The error contract is published from the code: the code table of ``docs/api.md`` lists
exactly the codes the service can answer with, and the OpenAPI document gives every error
response the one error schema; every analyser's result has a named schema there too."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import iap.app  # noqa: F401 - imports every domain, and so defines every AppError subclass
from iap.analysis.analysers import ANALYSERS
from iap.errors import HTTP_ERROR_CODES, OTHER_HTTP_ERROR, AppError, ErrorOut, subclasses
from tests.auth.helpers import assert_error
from tests.factories import make_account

API_GUIDE = Path(__file__).parents[1] / "docs" / "api.md"
ROW = re.compile(r"^\| (?P<status>[^|]+?) \| (?P<codes>[^|]+?) \| [^|]+ \|$")


def documented_codes() -> dict[str, set[str]]:
    """Code -> the statuses the table of docs/api.md gives it."""
    text = API_GUIDE.read_text()
    table = text[text.index("## Errors") :]
    found: dict[str, set[str]] = {}
    for line in table.splitlines():
        match = ROW.match(line)
        if match is None or match["status"] == "status":
            continue
        for code in re.findall(r"`([a-z_]+)`", match["codes"]):
            found.setdefault(code, set()).add(match["status"])
    return found


def service_codes() -> dict[str, set[str]]:
    """Code -> the statuses the service answers it with."""
    codes: dict[str, set[str]] = {}
    for error in [AppError, *subclasses()]:
        codes.setdefault(error.code, set()).add(str(error.status))
    for status, code in HTTP_ERROR_CODES.items():
        codes.setdefault(code, set()).add(str(status))
    codes.setdefault(OTHER_HTTP_ERROR, set()).add("other")
    return codes


def test_the_table_parser_reads_the_table() -> None:
    documented = documented_codes()
    assert documented["image_not_found"] == {"404"}
    assert len(documented) > 30


def test_every_error_code_is_in_the_api_guide() -> None:
    missing = service_codes().keys() - documented_codes().keys()
    assert not missing, f"add these codes to the table in docs/api.md: {sorted(missing)}"


def test_the_api_guide_lists_no_code_that_no_longer_exists() -> None:
    stale = documented_codes().keys() - service_codes().keys()
    assert not stale, f"docs/api.md lists codes nothing raises: {sorted(stale)}"


def test_the_api_guide_gives_each_code_its_status() -> None:
    documented = documented_codes()
    wrong = {
        code: (sorted(statuses), sorted(documented.get(code, set())))
        for code, statuses in service_codes().items()
        if documented.get(code, set()) != statuses
    }
    assert not wrong, f"code: (status in the code, status in docs/api.md): {wrong}"


def test_every_subclass_has_a_stable_snake_case_code() -> None:
    for error in subclasses():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", error.code), error
        assert 400 <= error.status <= 599, error


@pytest.fixture(scope="module")
def spec(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _error_responses(spec: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    return [
        (path, method, status, response)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        for status, response in operation["responses"].items()
        if int(status) >= 400
    ]


def test_every_documented_error_response_has_the_error_schema(spec: dict[str, Any]) -> None:
    responses = _error_responses(spec)
    assert len(responses) > 50
    wrong = [
        (path, method, status)
        for path, method, status, response in responses
        if response.get("content", {}).get("application/json", {}).get("schema")
        != {"$ref": "#/components/schemas/ErrorOut"}
    ]
    assert wrong == []
    schema = spec["components"]["schemas"]["ErrorOut"]
    assert set(schema["required"]) == {"detail", "code"}
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_error_responses_name_their_codes(spec: dict[str, Any]) -> None:
    upload = spec["paths"]["/image/upload"]["post"]["responses"]
    assert "`file_too_large`" in upload["413"]["description"]
    assert "`rate_limited`" in upload["429"]["description"]
    owned = spec["paths"]["/image/{image_id}"]["get"]["responses"]
    assert "`not_image_owner`" in owned["403"]["description"]
    assert "`image_not_found`" in owned["404"]["description"]
    assert "`validation_error`" in owned["422"]["description"]


def test_a_real_error_body_matches_the_schema(client: TestClient) -> None:
    response = client.get("/image/not-a-uuid")
    ErrorOut.model_validate(response.json())
    response = client.get("/no/such/route")
    assert ErrorOut.model_validate(response.json()).code == "not_found"


def test_every_analyser_result_has_a_named_schema(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    results = schemas["AnalysisResults"]["properties"]
    assert list(results) == [analyser.name for analyser in ANALYSERS]
    for analyser in ANALYSERS:
        run = results[analyser.name]["anyOf"][0]["$ref"].rsplit("/", 1)[1]
        model = analyser.result_model.__name__
        assert schemas[run]["properties"]["result"]["anyOf"][0] == {
            "$ref": f"#/components/schemas/{model}"
        }
        assert set(schemas[model]["properties"]) == set(analyser.result_model.model_fields)
    analysis = spec["paths"]["/image/{image_id}/analysis"]["get"]["responses"]["200"]
    assert analysis["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AnalysisOut"
    }


def test_csrf_failed_is_documented_exactly_where_a_cookie_request_can_get_it(
    spec: dict[str, Any],
) -> None:
    """Signed-in routes that change state may refuse a session cookie without its CSRF token;
    the ones that only read never do."""
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if "401" not in responses or path in {"/login", "/token/refresh"}:
                continue
            documented = "`csrf_failed`" in responses.get("403", {}).get("description", "")
            assert documented is (method not in {"get", "head"}), (method, path)


def test_every_route_with_a_json_body_documents_the_400_for_one_that_does_not_parse(
    spec: dict[str, Any],
) -> None:
    with_json_body = [
        (path, method, operation["responses"])
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    ]
    assert len(with_json_body) > 8
    for path, method, responses in with_json_body:
        assert "`bad_request`" in responses.get("400", {}).get("description", ""), (method, path)
    signup = spec["paths"]["/signup"]["post"]["responses"]["400"]["description"]
    assert "`username_taken`" in signup
    assert "`bad_request`" in signup


def test_a_json_body_that_does_not_parse_is_the_documented_400(
    client: TestClient, spec: dict[str, Any]
) -> None:
    account = make_account(client)
    for path in ("/me/api-keys", "/token/refresh", "/logout"):
        response = client.post(
            path,
            content=b'\xff\xfe{"name"',
            headers={**account.headers, "Content-Type": "application/json"},
        )
        assert_error(response, 400, "bad_request")
        assert "400" in spec["paths"][path]["post"]["responses"], path
