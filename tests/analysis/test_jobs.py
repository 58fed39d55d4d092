"""Every upload is analysed by the worker (in-process here, on both deployments), results and
thumbnails are served to the owner, and re-analysis works."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw, ImageFont

from iap.config import ConfigError, Settings
from iap.services import build_services
from tests.conftest import ClientFactory
from tests.factories import Account, image_bytes, make_account, uploaded, wait_for_analysis
from tests.images.test_upload import assert_error

BASELINE = {"properties", "exif", "colours", "quality", "hashes", "derivatives"}


def test_upload_reaches_succeeded_with_every_baseline_result(
    client: TestClient, alice: Account
) -> None:
    image = uploaded(client, alice, image_bytes("JPEG", size=(640, 480)))
    done = wait_for_analysis(client, alice, image["id"], {"succeeded", "failed"})
    assert done["analysis"]["status"] == "succeeded", done["analysis"]
    assert done["analysis"]["attempts"] == 1
    assert done["analysis"]["finished_at"] >= done["analysis"]["started_at"]
    analysis = client.get(f"/image/{image['id']}/analysis", headers=alice.headers).json()
    assert analysis["job"]["status"] == "succeeded"
    results = analysis["results"]
    assert set(results) >= BASELINE
    for name in BASELINE:
        assert results[name]["status"] == "succeeded", (name, results[name])
        assert results[name]["result"], name
        assert results[name]["duration_ms"] >= 0
    assert results["properties"]["result"]["width"] == 640
    for name, outcome in results.items():  # model-based ones ran or say why they could not
        assert outcome["status"] in {"succeeded", "unavailable"}, (name, outcome)
        if outcome["status"] == "unavailable":
            assert outcome["error"]


def test_thumbnails_are_webp_and_never_upscaled(client: TestClient, alice: Account) -> None:
    image = uploaded(client, alice, image_bytes("PNG", size=(1600, 900)))
    wait_for_analysis(client, alice, image["id"], {"succeeded"})
    for size, expected in ((256, (256, 144)), (1024, (1024, 576))):
        response = client.get(f"/image/{image['id']}/thumbnail?size={size}", headers=alice.headers)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/webp"
        thumb = Image.open(io.BytesIO(response.content))
        assert thumb.format == "WEBP"
        assert thumb.size == expected
    small = uploaded(client, alice, image_bytes("PNG", size=(100, 50)))
    wait_for_analysis(client, alice, small["id"], {"succeeded"})
    response = client.get(f"/image/{small['id']}/thumbnail?size=1024", headers=alice.headers)
    assert Image.open(io.BytesIO(response.content)).size == (100, 50)


def test_thumbnail_head_answers_like_get_without_the_body(
    client: TestClient, alice: Account
) -> None:
    image = uploaded(client, alice, image_bytes("PNG", size=(600, 300)))
    wait_for_analysis(client, alice, image["id"], {"succeeded"})
    url = f"/image/{image['id']}/thumbnail?size=256"
    got = client.get(url, headers=alice.headers)
    head = client.head(url, headers=alice.headers)
    assert head.status_code == 200
    assert head.content == b""
    for name in ("content-type", "etag", "cache-control"):
        assert head.headers[name] == got.headers[name], name
    assert head.headers["content-length"] == str(len(got.content))
    thumbnail = client.get("/openapi.json").json()["paths"]["/image/{image_id}/thumbnail"]
    assert set(thumbnail) == {"get", "head"}
    assert thumbnail["head"]["responses"]["200"]["content"] == {
        "image/webp": {"schema": {"type": "string", "format": "binary"}}
    }


def test_thumbnail_size_must_be_offered(client: TestClient, alice: Account) -> None:
    image = uploaded(client, alice)
    response = client.get(f"/image/{image['id']}/thumbnail?size=300", headers=alice.headers)
    assert response.status_code == 422


def test_reanalysis_with_named_analysers(client: TestClient, alice: Account) -> None:
    image = uploaded(client, alice)
    wait_for_analysis(client, alice, image["id"], {"succeeded"})
    response = client.post(
        f"/image/{image['id']}/analyze", headers=alice.headers, json={"analysers": ["colours"]}
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] in {"queued", "running", "succeeded"}
    done = wait_for_analysis(client, alice, image["id"], {"succeeded", "failed"})
    assert done["analysis"]["status"] == "succeeded"
    assert done["analysis"]["job_id"] == image["analysis"]["job_id"]


def test_reanalysis_of_everything_without_a_body(client: TestClient, alice: Account) -> None:
    image = uploaded(client, alice)
    wait_for_analysis(client, alice, image["id"], {"succeeded"})
    assert client.post(f"/image/{image['id']}/analyze", headers=alice.headers).status_code == 202
    assert wait_for_analysis(client, alice, image["id"], {"succeeded"})["analysis"]["attempts"] == 1


def test_unknown_analyser_is_422(client: TestClient, alice: Account) -> None:
    image = uploaded(client, alice)
    response = client.post(
        f"/image/{image['id']}/analyze", headers=alice.headers, json={"analysers": ["telepathy"]}
    )
    body = assert_error(response, 422, "unknown_analyser")
    assert "telepathy" in body["detail"]


def analyser_names_in_the_document(client: TestClient) -> list[str]:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["AnalyseIn"]
    choices = schema["properties"]["analysers"]["anyOf"]
    return [name for choice in choices if "items" in choice for name in choice["items"]["enum"]]


def test_the_document_names_the_analysers_this_server_runs(
    client: TestClient, alice: Account, client_with: ClientFactory
) -> None:
    """Re-analysis takes names from the registry, less those disabled here (``text`` in the
    tests): the document lists exactly the names a request may carry."""
    catalogue = client.get("/analysers", headers=alice.headers).json()
    runnable = [entry["name"] for entry in catalogue if entry["name"] != "text"]
    assert analyser_names_in_the_document(client) == runnable
    everything = client_with(disabled_analysers="")
    assert analyser_names_in_the_document(everything) == [entry["name"] for entry in catalogue]
    image = uploaded(client, alice)
    for name in runnable:
        response = client.post(
            f"/image/{image['id']}/analyze", headers=alice.headers, json={"analysers": [name]}
        )
        assert response.status_code == 202, (name, response.text)


def test_analyser_catalogue(client: TestClient, alice: Account) -> None:
    catalogue = client.get("/analysers", headers=alice.headers).json()
    names = {entry["name"] for entry in catalogue}
    assert names >= BASELINE
    for entry in catalogue:
        assert entry["version"] >= 1
        assert entry["available"] == (entry["reason"] is None)


def test_status_filter_finds_analysed_images(client: TestClient, alice: Account) -> None:
    image = uploaded(client, alice)
    wait_for_analysis(client, alice, image["id"], {"succeeded"})
    listed = client.get("/image/all?status=succeeded", headers=alice.headers).json()
    assert image["id"] in {img["id"] for img in listed["data"]}


def test_deleting_an_image_removes_its_derivatives(client: TestClient, alice: Account) -> None:
    image = uploaded(client, alice)
    wait_for_analysis(client, alice, image["id"], {"succeeded"})
    storage = client.app.state.services.storage  # type: ignore[attr-defined]

    async def derived() -> list[str]:
        return [blob.key async for blob in storage.list(f"derivatives/{image['id']}/")]

    assert client.portal.call(derived)  # type: ignore[union-attr]
    assert client.delete(f"/image/{image['id']}", headers=alice.headers).status_code == 204
    assert client.portal.call(derived) == []  # type: ignore[union-attr]


def test_disabled_analysers_are_skipped_and_said_so(client: TestClient, alice: Account) -> None:
    # The suite's settings disable "text" (OCR).
    catalogue = {e["name"]: e for e in client.get("/analysers", headers=alice.headers).json()}
    assert catalogue["text"]["available"] is False
    assert "IAP_DISABLED_ANALYSERS" in catalogue["text"]["reason"]
    image = uploaded(client, alice)
    wait_for_analysis(client, alice, image["id"], {"succeeded"})
    results = client.get(f"/image/{image['id']}/analysis", headers=alice.headers).json()["results"]
    assert "text" not in results
    response = client.post(
        f"/image/{image['id']}/analyze", headers=alice.headers, json={"analysers": ["text"]}
    )
    assert (
        "Disabled on this server: text" in assert_error(response, 422, "unknown_analyser")["detail"]
    )


def test_unknown_disabled_analyser_stops_start_up(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, disabled_analysers="text,telepathy")  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="telepathy"):
        asyncio.run(build_services(settings))


@pytest.fixture
def ocr_client(client_with: ClientFactory) -> TestClient:
    return client_with(disabled_analysers="")


def test_text_in_an_upload_is_read_by_ocr(ocr_client: TestClient) -> None:
    client = ocr_client
    owner = make_account(client)
    canvas = Image.new("RGB", (900, 200), "white")
    ImageDraw.Draw(canvas).text(
        (40, 50), "HARBOUR 1984", fill="black", font=ImageFont.load_default(size=80)
    )
    out = io.BytesIO()
    canvas.save(out, "PNG")
    image = uploaded(client, owner, out.getvalue(), filename="sign.png")
    wait_for_analysis(client, owner, image["id"], {"succeeded"})
    text = client.get(f"/image/{image['id']}/analysis", headers=owner.headers).json()["results"][
        "text"
    ]
    assert text["status"] == "succeeded", text
    assert "HARBOUR" in text["result"]["full_text"].upper()
