"""Wire types of the finding routes."""

from __future__ import annotations

import enum
import uuid

from pydantic import BaseModel, Field

from iap.images.schemas import ImageOut


class SimilarImage(BaseModel):
    distance: int = Field(description="Hamming distance between the pHashes (0-64; 0: alike).")
    image: ImageOut


class SimilarPage(BaseModel):
    max_distance: int
    data: list[SimilarImage] = Field(description="Nearest first; the id breaks ties.")


class DuplicateKind(enum.StrEnum):
    EXACT = "exact"
    NEAR = "near"


class DuplicateMember(BaseModel):
    distance: int | None = Field(
        description="pHash distance to the one to keep (null: not analysed yet)."
    )
    same_bytes: bool = Field(description="Byte-identical to the one to keep (same SHA-256).")
    image: ImageOut


class DuplicateGroup(BaseModel):
    kind: DuplicateKind
    keep: uuid.UUID = Field(
        description="The suggested one to keep: the most pixels, then the largest file, then "
        "the oldest upload. It comes first in `images`."
    )
    images: list[DuplicateMember]


class DuplicatePage(BaseModel):
    kind: DuplicateKind
    data: list[DuplicateGroup]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")
