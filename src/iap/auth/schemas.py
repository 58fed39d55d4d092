"""Wire types of the auth routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from iap.auth.models import Role
from iap.text import NoControl

Username = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$"
    ),
]
Password = Annotated[str, Field(min_length=8, max_length=256)]


# What EmailStr (email-validator, without a DNS look-up) refuses besides malformed addresses.
EMAIL_RULE = (
    "An email address. Special-use domains (RFC 6761: .test, .local, .localhost, .invalid, "
    ".onion, .arpa) are refused."
)


class SignupIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "username": "alice",
                    "email": "alice@example.com",
                    "password": "correct horse battery",
                }
            ]
        },
    )

    username: Username
    email: EmailStr = Field(description=EMAIL_RULE)
    password: Password


class UserOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "6f1c3a52-7f53-4c36-9d2e-0f4a1b3c5d7e",
                    "username": "alice",
                    "email": "alice@example.com",
                    "role": "user",
                    "is_active": True,
                    "created_at": "2026-01-31T12:00:00Z",
                }
            ]
        },
    )

    id: uuid.UUID
    username: str
    email: str
    role: Role
    is_active: bool
    created_at: datetime


class UserUpdate(BaseModel):
    """Change your email and/or password; a password change needs the current password."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr | None = Field(None, description=EMAIL_RULE)
    password: Password | None = None
    current_password: str | None = None


class TokenPair(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
                    "refresh_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
                    "token_type": "bearer",
                    "expires_in": 900,
                }
            ]
        }
    )

    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")


class RefreshIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=4096)


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "backup script"}]}
    )

    name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NoControl
    ]


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The secret key. It is shown once and cannot be read again.")
