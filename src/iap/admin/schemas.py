from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from iap.auth.schemas import UserOut


class UserPage(BaseModel):
    total: int
    skip: int
    limit: int
    data: list[UserOut]


class UserStatusIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"is_active": False}]}
    )

    is_active: bool


class StatsOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "users": 12,
                    "active_users": 11,
                    "admins": 1,
                    "images": 5321,
                    "stored_bytes": 9876543210,
                    "jobs": {"queued": 3, "running": 2, "succeeded": 5310, "failed": 6},
                }
            ]
        }
    )

    users: int
    active_users: int
    admins: int
    images: int
    stored_bytes: int = Field(description="Bytes of all stored originals.")
    jobs: dict[str, int] = Field(description="Analysis jobs by status.")
