"""Telling users what happened: the live event bus and their webhooks."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from iap.auth.models import User
from iap.errors import AppError, NotFound
from iap.events.bus import EventBus
from iap.events.models import Webhook, WebhookDelivery
from iap.events.webhooks import DELIVER_WEBHOOK, DestinationRefused, check_destination
from iap.queue import TaskQueue

MAX_WEBHOOKS_PER_USER = 20
EVENT_TYPES = (
    "analysis.queued",
    "analysis.started",
    "analysis.retrying",
    "analysis.succeeded",
    "analysis.failed",
    "people.grouped",
)


class WebhookNotFound(NotFound):
    code = "webhook_not_found"
    detail = "You have no webhook with that id."


class WebhookRefused(AppError):
    status = 422
    code = "webhook_url_refused"


class TooManyWebhooks(AppError):
    status = 409
    code = "too_many_webhooks"
    detail = f"At most {MAX_WEBHOOKS_PER_USER} webhooks per account; delete one first."


class Notifier:
    """Publishes an event to the owner's live streams and queues a delivery per webhook."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], bus: EventBus, queue: TaskQueue
    ) -> None:
        self.sessions, self.bus, self.queue = sessions, bus, queue

    async def notify(self, user_id: uuid.UUID, event: dict[str, Any]) -> None:
        await self.bus.publish(user_id, event)
        async with self.sessions() as session:
            hooks = await session.scalars(
                select(Webhook).where(Webhook.user_id == user_id, Webhook.is_active.is_(True))
            )
            deliveries = [
                WebhookDelivery(webhook_id=hook.id, event_type=event["type"], payload=event)
                for hook in hooks
                if hook.events is None or event["type"] in hook.events
            ]
            if not deliveries:
                return
            session.add_all(deliveries)
            await session.commit()
        await self.queue.enqueue(DELIVER_WEBHOOK, [d.id for d in deliveries])


async def create_webhook(
    session: AsyncSession, user: User, url: str, events: list[str] | None, *, allow_private: bool
) -> Webhook:
    try:  # literal internal addresses are refused now; names are checked at each delivery
        check_destination(url, allow_private=allow_private, resolve=False)
    except DestinationRefused as exc:
        raise WebhookRefused(f"This URL cannot receive webhooks: {exc}.") from None
    count = await session.scalar(
        select(func.count()).select_from(Webhook).where(Webhook.user_id == user.id)
    )
    if (count or 0) >= MAX_WEBHOOKS_PER_USER:
        raise TooManyWebhooks()
    webhook = Webhook(
        user_id=user.id,
        url=url,
        secret=secrets.token_urlsafe(32),
        events=sorted(set(events)) if events else None,
    )
    session.add(webhook)
    await session.commit()
    return webhook


async def owned_webhook(session: AsyncSession, user: User, webhook_id: uuid.UUID) -> Webhook:
    webhook = await session.get(Webhook, webhook_id)
    if webhook is None or webhook.user_id != user.id:
        raise WebhookNotFound()
    return webhook


async def list_webhooks(session: AsyncSession, user: User) -> list[Webhook]:
    rows = await session.scalars(
        select(Webhook).where(Webhook.user_id == user.id).order_by(Webhook.created_at, Webhook.id)
    )
    return list(rows)


async def delete_webhook(session: AsyncSession, user: User, webhook_id: uuid.UUID) -> None:
    await session.delete(await owned_webhook(session, user, webhook_id))
    await session.commit()


async def deliveries_of(
    session: AsyncSession, user: User, webhook_id: uuid.UUID, *, page: int, limit: int
) -> tuple[int, list[WebhookDelivery]]:
    webhook = await owned_webhook(session, user, webhook_id)
    where = WebhookDelivery.webhook_id == webhook.id
    total = await session.scalar(select(func.count()).select_from(WebhookDelivery).where(where))
    rows = await session.scalars(
        select(WebhookDelivery)
        .where(where)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
        .offset((page - 1) * limit)
        .limit(limit)
    )
    return total or 0, list(rows)
