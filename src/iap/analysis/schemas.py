"""Wire types of the analysis routes."""

from __future__ import annotations

import enum
import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema

from iap.analysis.analysers import ANALYSERS
from iap.analysis.results import AnalysisResults
from iap.images.schemas import AnalysisSummary


class ThumbnailSize(enum.IntEnum):
    SMALL = 256
    LARGE = 1024


class AnalysisOut(BaseModel):
    image_id: uuid.UUID
    job: AnalysisSummary | None
    results: AnalysisResults = Field(
        description="By analyser name: each analyser's latest run, with its own result schema."
    )


# The document lists the registered names (narrowed to the ones a server runs when it serves
# the document, see ``document_runnable_analysers``); a name outside it is a 422
# ``unknown_analyser``, answered by the route with what to ask instead.
AnalyserName = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,49}$"),
    WithJsonSchema({"type": "string", "enum": [analyser.name for analyser in ANALYSERS]}),
]


class AnalyseIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"analysers": ["colours", "quality"]}]}
    )

    analysers: list[AnalyserName] | None = Field(
        None, max_length=50, description="Names to run; omit or null for all."
    )


def document_runnable_analysers(spec: dict[str, Any], disabled: frozenset[str]) -> None:
    """Narrow the analyser names of ``spec`` (an OpenAPI document) to those not ``disabled``:
    a request for a disabled one is refused, so it is not a name the document may promise."""
    runnable = [analyser.name for analyser in ANALYSERS if analyser.name not in disabled]
    field = spec["components"]["schemas"][AnalyseIn.__name__]["properties"]["analysers"]
    for choice in field["anyOf"]:
        if "items" in choice and runnable:
            choice["items"] = {**choice["items"], "enum": runnable}


class AnalyserInfo(BaseModel):
    name: str
    version: int
    available: bool
    reason: str | None = Field(description="Why the analyser cannot run here, if it cannot.")


class FailedJob(BaseModel):
    job: AnalysisSummary
    image_id: uuid.UUID
    user_id: uuid.UUID
    original_filename: str


class FailedJobPage(BaseModel):
    total: int
    skip: int
    limit: int
    data: list[FailedJob]


class RetryOut(BaseModel):
    retried: list[uuid.UUID]
