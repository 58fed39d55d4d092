"""Wire types of the analysis routes."""

from __future__ import annotations

import enum
import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

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


AnalyserName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,49}$")]


class AnalyseIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"analysers": ["colours", "quality"]}]}
    )

    analysers: list[AnalyserName] | None = Field(
        None, max_length=50, description="Names to run; omit or null for all."
    )


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
