"""Wire types of the webhook routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

EventType = Literal[
    "analysis.queued",
    "analysis.started",
    "analysis.retrying",
    "analysis.succeeded",
    "analysis.failed",
    "people.grouped",
]


class WebhookIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"url": "https://example.com/iap-hook", "events": ["analysis.succeeded"]}]
        },
    )

    url: AnyHttpUrl
    events: list[EventType] | None = Field(None, description="Event types to send; null: all.")


class WebhookOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    url: str
    events: list[str] | None
    is_active: bool
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(
        description="Signs every delivery (X-IAP-Signature). Shown once; keep it safe."
    )


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    event_type: str
    payload: dict[str, Any]
    status: str = Field(description="pending, delivered or failed")
    attempts: int
    response_status: int | None
    error: str | None
    created_at: datetime
    last_attempt_at: datetime | None
    delivered_at: datetime | None


class DeliveryPage(BaseModel):
    total: int
    skip: int
    limit: int
    data: list[DeliveryOut]
