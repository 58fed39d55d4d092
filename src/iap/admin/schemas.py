from __future__ import annotations

from pydantic import BaseModel, ConfigDict

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
