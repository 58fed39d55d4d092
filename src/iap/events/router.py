"""``GET /events`` (the caller's live events as Server-Sent Events) and ``/webhooks``."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from iap.auth.deps import SIGNED_IN, SIGNED_IN_CHANGES, CurrentUser
from iap.deps import AppServices, DbSession
from iap.errors import error_responses
from iap.events import service
from iap.events.schemas import DeliveryOut, DeliveryPage, WebhookCreated, WebhookIn, WebhookOut
from iap.images.schemas import MAX_PAGE

router = APIRouter(tags=["events"], responses=error_responses(*SIGNED_IN))

HEARTBEAT_SECONDS = 15.0


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "A stream of `analysis.queued`, `analysis.started`, "
            "`analysis.retrying`, `analysis.succeeded`, `analysis.failed` and "
            "`people.grouped` events, each a JSON object in `data:`.",
        }
    },
)
async def events(request: Request, user: CurrentUser, services: AppServices) -> StreamingResponse:
    """Your analysis events, live, as Server-Sent Events (``text/event-stream``). A comment
    line is sent every 15 s to keep proxies from closing an idle stream. Events are not
    replayed: after reconnecting, read the current state from the API."""
    user_id = user.id

    async def stream() -> AsyncIterator[str]:
        async with services.events.subscribe(user_id) as incoming:
            yield ": connected\n\n"
            pending: asyncio.Task[Any] | None = None
            try:
                while not await request.is_disconnected():
                    pending = pending or asyncio.ensure_future(anext(incoming))
                    done, _ = await asyncio.wait({pending}, timeout=HEARTBEAT_SECONDS)
                    if not done:
                        yield ": keep-alive\n\n"
                        continue
                    event = pending.result()
                    pending = None
                    yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"
            finally:
                if pending is not None:
                    pending.cancel()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


webhooks = APIRouter(prefix="/webhooks", tags=["events"])


@webhooks.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookCreated,
    responses=error_responses(*SIGNED_IN_CHANGES, service.TooManyWebhooks, service.WebhookRefused),
)
async def create_webhook(
    body: WebhookIn, user: CurrentUser, session: DbSession, services: AppServices
) -> WebhookCreated:
    """Register an HTTPS endpoint for your events. Each delivery is a JSON POST signed with
    HMAC-SHA256 (``X-IAP-Signature``), retried with backoff until the receiver answers 2xx."""
    hook = await service.create_webhook(
        session,
        user,
        str(body.url),
        list(body.events) if body.events else None,
        allow_private=services.settings.webhook_allow_private,
    )
    return WebhookCreated(**WebhookOut.model_validate(hook).model_dump(), secret=hook.secret)


@webhooks.get("", response_model=list[WebhookOut], responses=error_responses(*SIGNED_IN))
async def list_webhooks(user: CurrentUser, session: DbSession) -> list[WebhookOut]:
    """Your webhooks (their secrets are not shown again)."""
    return [WebhookOut.model_validate(h) for h in await service.list_webhooks(session, user)]


@webhooks.delete(
    "/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(*SIGNED_IN_CHANGES, service.WebhookNotFound),
)
async def delete_webhook(webhook_id: uuid.UUID, user: CurrentUser, session: DbSession) -> Response:
    """Delete a webhook and its delivery log."""
    await service.delete_webhook(session, user, webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@webhooks.get(
    "/{webhook_id}/deliveries",
    response_model=DeliveryPage,
    responses=error_responses(*SIGNED_IN, service.WebhookNotFound),
)
async def list_deliveries(
    webhook_id: uuid.UUID,
    user: CurrentUser,
    session: DbSession,
    skip: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> DeliveryPage:
    """The delivery log of a webhook, newest first: status, attempts, the receiver's answer."""
    total, rows = await service.deliveries_of(session, user, webhook_id, page=skip, limit=limit)
    return DeliveryPage(
        total=total, skip=skip, limit=limit, data=[DeliveryOut.model_validate(r) for r in rows]
    )
