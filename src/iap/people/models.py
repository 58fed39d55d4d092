"""Faces (one row per face the faces analyser embedded) and the people they are grouped into.

A face belongs to its image and owner; ``person_id`` is its person, or None while it waits
for clustering (``clustered`` false) or after its owner took it out of a person (``clustered``
true: clustering leaves it alone from then on). A person exists while it has faces: whatever
removes a person's last face removes the person in the same transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from iap.db import Base, new_id, utcnow

MAX_NAME = 100


class Person(Base):
    __tablename__ = "people"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str | None] = mapped_column(String(MAX_NAME), default=None)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Face(Base):
    __tablename__ = "faces"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    image_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The face's place in its image's faces result (and its thumbnail's name).
    position: Mapped[int] = mapped_column(Integer)
    x: Mapped[int] = mapped_column(Integer)
    y: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    confidence: Mapped[float] = mapped_column(Float)
    # 128 little-endian float32 (iap.analysis.analysers.faces).
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    person_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("people.id", ondelete="SET NULL"), default=None, index=True
    )
    clustered: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("image_id", "position"),
        Index("ix_faces_user_clustered", "user_id", "clustered"),
        # The faces waiting for grouping, by age: what the reconciler looks for.
        Index(
            "ix_faces_waiting",
            "created_at",
            postgresql_where=text("NOT clustered"),
            sqlite_where=text("NOT clustered"),
        ),
    )
