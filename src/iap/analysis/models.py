"""Analysis jobs: the database row is the source of truth for an image's analysis state."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Enum, Float, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from iap.db import Base, new_id, utcnow


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class AnalysisJob(Base):
    __tablename__ = "analysis_jobs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    image_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), unique=True
    )
    status: Mapped[JobStatus] = mapped_column(
        Enum(
            JobStatus, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]
        ),
        default=JobStatus.QUEUED,
        index=True,
    )
    analysers: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    # The run in progress: claiming a job starts a run with a new id, and its worker renews
    # heartbeat_at while it works. Only that run may record its end; a run whose heartbeat is
    # older than the lease lost its worker, and another worker may take the job over.
    run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    # Re-analysis asked for while a run was in progress: it is queued when that run ends.
    # rerun_analysers None with rerun_pending means every analyser.
    rerun_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    rerun_analysers: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    queued_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Last time a message for this job was handed to the broker (the reconciler's clock).
    enqueued_at: Mapped[datetime | None] = mapped_column(default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class AnalysisResult(Base):
    """One analyser's outcome for one image, per analyser version."""

    __tablename__ = "analysis_results"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    image_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    analyser: Mapped[str] = mapped_column(String(50))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index(
            "uq_analysis_results_image_analyser_version",
            "image_id",
            "analyser",
            "version",
            unique=True,
        ),
    )
