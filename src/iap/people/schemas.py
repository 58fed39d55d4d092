"""Wire types of the people routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from iap.images.schemas import ImageOut
from iap.people.models import MAX_NAME
from iap.text import NoControl

Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME), NoControl
]

_PERSON_ID = "0b5d8f5e-3c1a-4c9e-9d51-2f1e6a7b8c90"
_FACE_ID = "5f0c2a7e-8d4b-4e61-a3f9-0c1d2e3f4a5b"
_IMAGE_ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
EXAMPLE_PERSON: dict[str, Any] = {
    "id": _PERSON_ID,
    "name": "Ada",
    "hidden": False,
    "face_count": 12,
    "image_count": 11,
    "cover_face_id": _FACE_ID,
    "thumbnail_url": f"/people/{_PERSON_ID}/thumbnail",
    "created_at": "2026-12-04T10:00:00Z",
    "updated_at": "2026-12-04T10:05:00Z",
}


class PersonOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_PERSON]})

    id: uuid.UUID
    name: str | None = Field(description="The name the owner gave; null until named.")
    hidden: bool = Field(description="Hidden people are left out of GET /people by default.")
    face_count: int = Field(description="Faces grouped into this person.")
    image_count: int = Field(description="Images with at least one of those faces.")
    cover_face_id: uuid.UUID | None = Field(
        description="The face shown for the person: its most confident one."
    )
    thumbnail_url: str = Field(description="The cover face's thumbnail (WebP).")
    created_at: datetime
    updated_at: datetime


class PeoplePage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"total": 1, "skip": 1, "limit": 50, "data": [EXAMPLE_PERSON]}]
        }
    )

    total: int
    skip: int = Field(description="The page number (1-based), as asked.")
    limit: int
    data: list[PersonOut]


class PersonUpdate(BaseModel):
    """Omitted fields keep their value; `"name": null` forgets the name."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "Ada"}, {"hidden": True}]}
    )

    name: Name | None = None
    # Absent keeps it; null is refused (the document says boolean, which null is not).
    hidden: Annotated[
        bool | None,
        WithJsonSchema({"type": "boolean", "description": "Hidden from GET /people or not."}),
    ] = None

    @field_validator("hidden")
    @classmethod
    def _hidden_is_not_null(cls, value: bool | None) -> bool:
        if value is None:
            raise ValueError("hidden is true or false; leave it out to keep it as it is")
        return value


class MergeIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"into": _PERSON_ID}]}
    )

    into: uuid.UUID = Field(description="The person who stays; this one's faces join it.")


class FaceBox(BaseModel):
    x: int = Field(description="Left edge, pixels of the upright original.")
    y: int
    width: int
    height: int


class FaceOut(BaseModel):
    id: uuid.UUID
    image_id: uuid.UUID
    box: FaceBox
    confidence: float
    thumbnail_url: str = Field(description="The face's thumbnail (WebP).")


class PersonRef(BaseModel):
    id: uuid.UUID
    name: str | None
    hidden: bool


class ImageFaceOut(FaceOut):
    person: PersonRef | None = Field(
        description="Who the face is: null while it waits to be grouped, or once its owner "
        "took it out of a person."
    )


class PersonImageOut(BaseModel):
    image: ImageOut
    faces: list[FaceOut] = Field(description="The person's faces in this image.")


class PersonImagesPage(BaseModel):
    total: int
    skip: int
    limit: int
    data: list[PersonImageOut]
