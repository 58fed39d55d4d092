"""FastAPI dependencies shared by every domain, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from anyio import CapacityLimiter
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from iap.cache import Cache
from iap.config import Settings
from iap.events.bus import EventBus
from iap.events.service import Notifier
from iap.queue import AnalysisQueue
from iap.ratelimit import RateLimiter
from iap.storage import BlobStorage


@dataclass
class Services:
    """Everything a request may need, built once at start-up (see ``iap.app``)."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    storage: BlobStorage
    cache: Cache
    limiter: RateLimiter
    decode_slots: CapacityLimiter
    queue: AnalysisQueue
    events: EventBus
    notifier: Notifier


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_services(request).sessions() as session:
        yield session


AppServices = Annotated[Services, Depends(get_services)]
DbSession = Annotated[AsyncSession, Depends(get_session)]
