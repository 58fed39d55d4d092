"""``GET /image/{id}/analysis`` types every result by its analyser's own model, and a stored
result that the running analyser no longer reads degrades to a clear note, not a 500."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from sqlalchemy import update

from iap.analysis.analysers import ANALYSERS
from iap.analysis.analysers.hashes import HashesAnalyser
from iap.analysis.models import AnalysisResult
from iap.services import Services
from tests.factories import Account, image_bytes, uploaded, wait_for_analysis


def analysed(client: TestClient, account: Account) -> str:
    image = uploaded(client, account, image_bytes("PNG", size=(120, 90)))
    done = wait_for_analysis(client, account, image["id"], {"succeeded", "failed"})
    assert done["analysis"]["status"] == "succeeded", done["analysis"]
    return str(image["id"])


def test_every_result_validates_against_its_analysers_model(
    client: TestClient, alice: Account
) -> None:
    image_id = analysed(client, alice)
    results = client.get(f"/image/{image_id}/analysis", headers=alice.headers).json()["results"]
    models = {analyser.name: analyser.result_model for analyser in ANALYSERS}
    assert set(results) <= set(models)
    succeeded = {name for name, run in results.items() if run["status"] == "succeeded"}
    assert {"properties", "hashes", "derivatives"} <= succeeded
    for name in succeeded:
        models[name].model_validate(results[name]["result"])  # extra fields are forbidden
    assert all(run is not None for run in results.values())  # absent, never null


def test_a_result_of_an_old_shape_is_reported_not_a_500(client: TestClient, alice: Account) -> None:
    image_id = analysed(client, alice)
    services: Services = client.app.state.services  # type: ignore[attr-defined]

    async def store_an_old_shape() -> None:
        async with services.sessions() as session:
            await session.execute(
                update(AnalysisResult)
                .where(
                    AnalysisResult.image_id == uuid.UUID(image_id),
                    AnalysisResult.analyser == HashesAnalyser.name,
                )
                .values(result={"average_hash": "00ff00ff00ff00ff"})
            )
            await session.commit()

    client.portal.call(store_an_old_shape)  # type: ignore[union-attr]
    response = client.get(f"/image/{image_id}/analysis", headers=alice.headers)
    assert response.status_code == 200, response.text
    hashes = response.json()["results"]["hashes"]
    assert hashes["result"] is None
    assert "analyse the image again" in hashes["error"]
    assert response.json()["results"]["properties"]["result"]["width"] == 120
