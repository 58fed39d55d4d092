"""Analysis routes: results, re-analysis, thumbnails, the analyser catalogue."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response, status

from iap.analysis import service
from iap.analysis.analysers import ANALYSERS, by_name
from iap.analysis.analysers.derivatives import file_name
from iap.analysis.errors import ThumbnailNotReady, UnknownAnalyser
from iap.analysis.results import analysis_results
from iap.analysis.schemas import AnalyseIn, AnalyserInfo, AnalysisOut, ThumbnailSize
from iap.analysis.tasks import dispatch
from iap.auth.deps import SIGNED_IN, SIGNED_IN_CHANGES, CurrentUser
from iap.deps import AppServices, DbSession
from iap.errors import error_responses
from iap.images.errors import OWNED_IMAGE
from iap.images.schemas import AnalysisSummary
from iap.images.service import get_owned_image
from iap.storage import BlobNotFound, StorageUnavailable

router = APIRouter(tags=["analysis"])


@router.get("/analysers", response_model=list[AnalyserInfo], responses=error_responses(*SIGNED_IN))
async def list_analysers(user: CurrentUser, services: AppServices) -> list[AnalyserInfo]:
    """Every analyser, its version, and whether it can run on this server."""
    disabled = services.settings.disabled_analyser_names
    infos = []
    for analyser in ANALYSERS:
        reason = (
            "disabled by the server's configuration (IAP_DISABLED_ANALYSERS)"
            if analyser.name in disabled
            else analyser.unavailable()
        )
        infos.append(
            AnalyserInfo(
                name=analyser.name,
                version=analyser.version,
                available=reason is None,
                reason=reason,
            )
        )
    return infos


@router.get(
    "/image/{image_id}/analysis",
    response_model=AnalysisOut,
    responses=error_responses(*SIGNED_IN, *OWNED_IMAGE),
)
async def get_analysis(image_id: uuid.UUID, user: CurrentUser, session: DbSession) -> AnalysisOut:
    """The image's analysis job status and every analyser's latest result."""
    image = await get_owned_image(session, user, image_id)
    return AnalysisOut(
        image_id=image.id,
        job=AnalysisSummary.model_validate(image.job) if image.job else None,
        results=analysis_results(await service.results_of(session, image.id)),
    )


@router.post(
    "/image/{image_id}/analyze",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AnalysisSummary,
    responses=error_responses(*SIGNED_IN_CHANGES, *OWNED_IMAGE, UnknownAnalyser),
)
async def analyse_again(
    image_id: uuid.UUID,
    user: CurrentUser,
    session: DbSession,
    services: AppServices,
    body: Annotated[AnalyseIn | None, Body()] = None,
) -> AnalysisSummary:
    """Queue the image for analysis again, by every analyser or the named ones.

    A job runs once at a time: asked for while a run is in progress, the new analysis starts
    when that run ends (the answer shows the run, with ``rerun_pending``), and requests that
    arrive meanwhile merge into it. A job not yet started takes the new analysers along."""
    names = body.analysers if body else None
    if names is not None:
        try:
            by_name(names)
        except KeyError as exc:
            raise UnknownAnalyser(
                f"Unknown analysers: {exc.args[0]}. See GET /analysers."
            ) from None
        if off := sorted(set(names) & services.settings.disabled_analyser_names):
            detail = f"Disabled on this server: {', '.join(off)}. See GET /analysers."
            raise UnknownAnalyser(detail)
    lease = timedelta(seconds=services.settings.analysis_lease_seconds)
    job, send = await service.request_analysis(
        session, services.cache, user, image_id, names, lease
    )
    if send:
        queued = service.Queued(job.id, job.image_id, user.id)
        await dispatch(session, services.queue, services.notifier, [queued])
    return AnalysisSummary.model_validate(job)


_THUMBNAIL: dict[str, Any] = {
    "response_class": Response,
    "responses": {
        200: {
            "content": {"image/webp": {"schema": {"type": "string", "format": "binary"}}},
            "description": "The WebP thumbnail",
        },
        **error_responses(*SIGNED_IN, *OWNED_IMAGE, ThumbnailNotReady, StorageUnavailable),
    },
}


@router.get("/image/{image_id}/thumbnail", **_THUMBNAIL)
@router.head("/image/{image_id}/thumbnail", **_THUMBNAIL)
async def get_thumbnail(
    image_id: uuid.UUID,
    request: Request,
    user: CurrentUser,
    session: DbSession,
    services: AppServices,
    size: Annotated[ThumbnailSize, Query(description="Long side in pixels.")] = ThumbnailSize.SMALL,
) -> Response:
    """A WebP thumbnail (made by the analysis; never larger than the original). ``HEAD``
    answers the same headers and status, without the body."""
    image = await get_owned_image(session, user, image_id)
    key = service.derivative_key(image.id, file_name(size.value))
    try:
        data = await services.storage.read_all(key)
    except BlobNotFound:
        raise ThumbnailNotReady() from None
    headers = {
        "Cache-Control": "private, max-age=86400",
        "ETag": f'"{image.sha256}-{size.value}"',
        "Content-Length": str(len(data)),
    }
    body = b"" if request.method == "HEAD" else data
    return Response(body, media_type="image/webp", headers=headers)
