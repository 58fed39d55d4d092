"""What makes images findable by likeness: each image's perceptual hashes, split into indexed
bands, and the near-duplicate group it belongs to."""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, Uuid
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
