"""Wire types of the image routes."""

from __future__ import annotations

import enum
import re
import uuid
from datetime import UTC, date, datetime, time
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from iap.analysis.models import JobStatus
from iap.text import NoControl, Prose

MAX_TAGS = 50
# Pages beyond this are refused (422) rather than turned into absurd database offsets.
MAX_PAGE = 1_000_000
MAX_DESCRIPTION = 10_000
Tag = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=50),
    NoControl,
]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def _moment(value: object) -> datetime:
    """An RFC 3339 date-time with its offset, or a date (its start, UTC); nothing else: no
    Unix timestamps, no times without an offset (whose zone would be a guess)."""
    text = value.upper() if isinstance(value, str) else ""
    if _DATE.fullmatch(text):
        return datetime.combine(date.fromisoformat(text), time(), UTC)
    if _DATE_TIME.fullmatch(text):
        return datetime.fromisoformat(text)
    raise ValueError(
        "expected an RFC 3339 date-time with an offset (2026-01-31T12:00:00Z) or a date "
        "(2026-01-31)"
    )


MOMENTS = (
    "An RFC 3339 date-time with its offset (`2026-01-31T12:00:00Z`, `2026-01-31T13:00:00+01:00`) "
    "or a date (`2026-01-31`, the start of that day in UTC)."
)
# A query parameter naming a moment.
Moment = Annotated[
    datetime,
    BeforeValidator(_moment),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "string", "format": "date"},
            ]
        }
    ),
]

EXAMPLE_IMAGE: dict[str, Any] = {
    "id": "0b7e4b7e-3a0c-4f0e-9d0a-5a1c2f9e8d11",
    "user_id": "6f1c3a52-7f53-4c36-9d2e-0f4a1b3c5d7e",
    "original_filename": "harbour.jpg",
    "width": 4032,
    "height": 3024,
    "file_size": 3481122,
    "file_type": "image/jpeg",
    "format": "JPEG",
    "upload_date": "2026-01-31T12:00:00Z",
    "last_modified": "2026-01-31T12:00:00Z",
    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "tags": ["holiday", "sea"],
    "description": "Boats at dusk",
    "analysis": {
        "job_id": "1a2b3c4d-0000-4000-8000-000000000001",
        "status": "queued",
        "attempts": 0,
        "error": None,
        "queued_at": "2026-01-31T12:00:00Z",
        "started_at": None,
        "finished_at": None,
    },
}


def normalise_tags(tags: list[str]) -> list[str]:
    """Lower-case, stripped, de-duplicated and sorted."""
    return sorted({tag for tag in tags if tag})


class AnalysisSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    job_id: uuid.UUID = Field(validation_alias=AliasChoices("job_id", "id"))
    status: JobStatus
    attempts: int
    error: str | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    rerun_pending: bool = Field(
        False,
        description="A re-analysis was asked for while this run was in progress; it is "
        "queued when the run ends.",
    )


class ImageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [EXAMPLE_IMAGE]})

    id: uuid.UUID
    user_id: uuid.UUID
    original_filename: str
    width: int
    height: int
    file_size: int = Field(description="Bytes of the stored original.")
    file_type: str = Field(description="MIME type, decided from the file's content.")
    format: str
    upload_date: datetime
    last_modified: datetime
    sha256: str
    # Aliases: rows carry ``tag_names`` and ``job``; cached JSON carries the wire names.
    tags: list[str] = Field(validation_alias=AliasChoices("tag_names", "tags"))
    description: str | None
    analysis: AnalysisSummary | None = Field(validation_alias=AliasChoices("job", "analysis"))


class ImagePage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "total": 1,
                    "skip": 1,
                    "limit": 20,
                    "data": [EXAMPLE_IMAGE],
                    "next_cursor": None,
                }
            ]
        }
    )

    total: int | None = Field(
        description="Images matching the filters, over all pages; counted for numbered pages "
        "(`skip`), null on a page asked for by `cursor`."
    )
    skip: int = Field(description="This page's number (1-based); 1 on a page after a cursor.")
    limit: int
    data: list[ImageOut]
    next_cursor: str | None = Field(
        default=None,
        description="Pass as `cursor` for the page after this one (same filters and sort); "
        "null on the last page.",
    )


READ_ONLY_FIELDS = frozenset(
    {
        "id",
        "user_id",
        "width",
        "height",
        "file_size",
        "file_type",
        "format",
        "sha256",
        "upload_date",
        "last_modified",
        "analysis",
        "storage_key",
    }
)


class ImageUpdate(BaseModel):
    """User-owned fields. Omitted fields keep their value; derived fields cannot be set."""

    # Extras are let in only to be refused by name (read_only_field, unknown_field): the document
    # says what the route takes, no other property.
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "additionalProperties": False,
            "examples": [
                {
                    "original_filename": "harbour-at-dusk.jpg",
                    "tags": ["sea"],
                    "description": "Boats",
                }
            ],
        },
    )

    original_filename: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
        | None
    ) = None
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] | None = None
    description: Annotated[Prose, Field(max_length=MAX_DESCRIPTION)] | None = None

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else normalise_tags(value)


class SortKey(enum.StrEnum):
    UPLOAD_DATE = "upload_date"
    UPLOAD_DATE_DESC = "-upload_date"
    FILENAME = "filename"
    FILENAME_DESC = "-filename"
    FILE_SIZE = "file_size"
    FILE_SIZE_DESC = "-file_size"
