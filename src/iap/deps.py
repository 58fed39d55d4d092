"""FastAPI dependencies shared by every domain, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from iap.config import Rate, Settings
from iap.ratelimit import RateLimiter, enforce
from iap.services import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with get_services(request).sessions() as session:
        yield session


AppServices = Annotated[Services, Depends(get_services)]
DbSession = Annotated[AsyncSession, Depends(get_session)]


@dataclass(frozen=True)
class Throttle:
    """One of the settings' rate limits, ready for a route to count a request against."""

    limiter: RateLimiter
    rate: Rate
    what: str  # the requests counted, as the refusal names them: "login attempts"

    async def check(self, key: str) -> None:
        """Count a request under ``key``; raise ``RateLimited`` (429) when over the rate."""
        await enforce(self.limiter, key, self.rate, self.what)


def throttle(rate: Callable[[Settings], Rate], what: str) -> Callable[..., Awaitable[Throttle]]:
    """A dependency giving the ``Throttle`` for the settings' ``rate``."""

    async def dependency(services: AppServices) -> Throttle:
        return Throttle(services.limiter, rate(services.settings), what)

    return dependency
