"""Wire types of the finding routes."""

from __future__ import annotations

import enum
import uuid

from pydantic import BaseModel, ConfigDict, Field

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


class SearchField(enum.StrEnum):
    FILENAME = "filename"
    TAGS = "tags"
    DESCRIPTION = "description"
    CAMERA = "camera"
    TEXT = "text"
    PERSON = "person"


class SnippetPart(BaseModel):
    text: str
    highlight: bool = Field(description="This part is a word the query looked for.")


class SearchMatch(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "field": "text",
                    "snippet": "…fresh bread from the bakery every morning",
                    "parts": [
                        {"text": "…fresh bread from the ", "highlight": False},
                        {"text": "bakery", "highlight": True},
                        {"text": " every morning", "highlight": False},
                    ],
                }
            ]
        }
    )

    field: SearchField = Field(
        description="Where it matched: `text` is the text recognised in the image, `camera` "
        "the camera and lens names from its EXIF."
    )
    snippet: str = Field(
        description="The field's text around its first match (… where it was cut), as plain text."
    )
    parts: list[SnippetPart] = Field(
        description="The same snippet in parts, the matching words marked: show them "
        "highlighted (the parts joined are `snippet`)."
    )


class SearchHit(BaseModel):
    score: float = Field(description="Relevance, higher first; comparable within one search only.")
    matches: list[SearchMatch] = Field(description="Each field that matched, weightiest first.")
    image: ImageOut


class SearchPage(BaseModel):
    query: str = Field(description="The query as it was looked for (words folded, in order).")
    data: list[SearchHit] = Field(description="Best first; the id breaks ties.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")
