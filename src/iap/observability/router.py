"""``GET /metrics``: Prometheus scrapes it."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from iap.deps import AppServices
from iap.observability.metrics import exposition

router = APIRouter(tags=["service"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(request: Request, services: AppServices) -> Response:
    """Prometheus metrics: request latencies by route template, method and status class;
    upload bytes; analysis durations per analyser and job outcomes (of the analysis threads in
    this process, on the embedded deployment); and the jobs queued and running, counted in the
    database at scrape time. Under `iap serve --workers N` any process answers for all of them.

    No authentication: it holds counts and durations only, no user data (no ids, names, files
    or tags). Restrict it at the proxy if even those figures are private."""
    body, content_type = await exposition(services.sessions, request.headers.get("accept", ""))
    return Response(body, media_type=content_type)
