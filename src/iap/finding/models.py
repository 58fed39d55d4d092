"""What makes images findable: each image's perceptual hashes, split into indexed bands, and
the near-duplicate group it belongs to (by likeness); its words, field by field (by text)."""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from iap.db import Base


class ImageHash(Base):
    """An image's 64-bit pHash and dHash (as signed 64-bit integers, the databases' BIGINT),
    and the pHash's four 16-bit bands, each indexed with the owner: images within Hamming
    distance d of a hash share at least one band within d // 4 of the hash's own.

    ``near_group``: the owner's images joined by pHash distances of at most
    ``DUPLICATE_DISTANCE`` (single linkage) share it, set when an image's hashes are
    recorded; None for an image with no look-alike. A group is read by its index, never
    computed from pairs at request time."""

    __tablename__ = "image_hashes"

    image_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    phash: Mapped[int] = mapped_column(BigInteger)
    dhash: Mapped[int] = mapped_column(BigInteger)
    band0: Mapped[int] = mapped_column(Integer)
    band1: Mapped[int] = mapped_column(Integer)
    band2: Mapped[int] = mapped_column(Integer)
    band3: Mapped[int] = mapped_column(Integer)
    near_group: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)

    __table_args__ = (
        *(Index(f"ix_image_hashes_band{n}", "user_id", f"band{n}") for n in range(4)),
        Index("ix_image_hashes_near_group", "user_id", "near_group"),
    )


class ImageSearch(Base):
    """An image's searchable words, one column per field, each its folded words joined by
    spaces (``iap.finding.words.document``), rewritten in every transaction that changes
    one of its sources (the image's own fields, its text and EXIF results).

    The databases index these columns with their own full-text engines, created by the
    migration (0006) and not declared here: on SQLite an FTS5 table over them (external
    content, rowid ``id``, kept current by triggers) and a trigram one over ``filename``; on
    PostgreSQL a generated, weighted ``document`` tsvector with a GIN index, and a trigram
    GIN index on ``filename``."""

    __tablename__ = "image_search"
    # Derived from the images, their tags and results: an archive leaves it out, and an
    # import rebuilds it (iap.transfer).
    __table_args__ = {"info": {"derived": True}}  # noqa: RUF012 - SQLAlchemy's, read once

    # An explicit integer key: the FTS5 index refers to rows by it (VACUUM may renumber an
    # implicit rowid).
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    image_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), unique=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    camera: Mapped[str] = mapped_column(Text, default="")
