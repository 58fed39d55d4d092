"""Two runs of one job that record their results at the same moment (a message delivered twice,
each copy on a worker of its own): the image keeps its results and its files. The run that
loses the race on the results' unique index took it for a deleted image, and deleted the
original and the thumbnails of a live one (seen in tests/chaos: an image `succeeded` whose
original was gone)."""

from __future__ import annotations

import asyncio
import io
import uuid

from fastapi.testclient import TestClient
from sqlalchemy import delete, insert, select

from iap.analysis import service
from iap.analysis.analysers import by_name
from iap.analysis.models import AnalysisJob, AnalysisResult, JobStatus
from iap.analysis.pipeline import run_pass
from iap.db import utcnow
from iap.images.models import Image
from iap.images.service import derivatives_prefix
from tests.factories import Account, image_bytes, uploaded, wait_for_analysis


def test_a_run_that_loses_the_race_to_record_results_keeps_the_images_files(
    client: TestClient, alice: Account
) -> None:
    image = uploaded(client, alice, image_bytes("JPEG", size=(320, 240)))
    wait_for_analysis(client, alice, image["id"], {"succeeded"})
    services = client.app.state.services  # type: ignore[attr-defined]
    image_id = uuid.UUID(image["id"])

    async def race() -> tuple[bool, list[str]]:
        async with services.sessions() as session:
            row = await session.get(Image, image_id)
            job = await session.scalar(select(AnalysisJob).where(AnalysisJob.image_id == image_id))
            assert row is not None
            assert job is not None
            # This run holds the job (as its claim would have made it).
            run_id = uuid.uuid4()
            job.status, job.run_id, job.heartbeat_at = JobStatus.RUNNING, run_id, utcnow()
            await session.commit()
            ticket = service.Ticket(job.id, image_id, row.user_id, row.storage_key, None, 2, run_id)
        data = await services.storage.read_all(ticket.storage_key)
        _, outcomes = run_pass(io.BytesIO(data), by_name(["properties", "derivatives"]))
        (first,) = [o for o in outcomes if o.analyser == "properties"]
        # The other run, one step ahead: its result row is written, not yet committed.
        async with services.sessions() as other:
            where = (AnalysisResult.image_id == image_id) & (
                AnalysisResult.analyser == "properties"
            )
            await other.execute(delete(AnalysisResult).where(where))
            await other.execute(
                insert(AnalysisResult).values(
                    id=uuid.uuid4(),
                    image_id=image_id,
                    analyser=first.analyser,
                    version=first.version,
                    status="succeeded",
                    result=first.result,
                    duration_ms=1.0,
                )
            )

            async def this_run() -> None:
                async with services.sessions() as session:
                    await service.record_success(
                        session, services.storage, services.cache, ticket, outcomes
                    )

            recording = asyncio.create_task(this_run())
            await asyncio.sleep(0.5)  # on PostgreSQL, this run now waits on the other's row
            await other.commit()
        await recording
        derived = [blob.key async for blob in services.storage.list(derivatives_prefix(image_id))]
        return await services.storage.exists(ticket.storage_key), derived

    original_kept, derivatives = client.portal.call(race)  # type: ignore[union-attr]
    assert original_kept, "the original of a live image was deleted"
    assert derivatives, "the thumbnails of a live image were deleted"
    download = client.get(f"/image/download/{image['id']}", headers=alice.headers)
    assert download.status_code == 200
    analysis = client.get(f"/image/{image['id']}/analysis", headers=alice.headers).json()
    assert analysis["results"]["properties"]["status"] == "succeeded"
