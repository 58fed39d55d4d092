"""What makes images findable by likeness: each image's perceptual hashes, split into indexed
bands, and the pairs of an owner's images that look alike."""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, SmallInteger, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from iap.db import Base


class ImageHash(Base):
    """An image's 64-bit pHash and dHash (as signed 64-bit integers, the databases' BIGINT),
    and the pHash's four 16-bit bands, each indexed with the owner: images within Hamming
    distance d of a hash share at least one band within d // 4 of the hash's own."""

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

    __table_args__ = tuple(
        Index(f"ix_image_hashes_band{n}", "user_id", f"band{n}") for n in range(4)
    )


class NearPair(Base):
    """Two images of one owner whose pHashes are within ``DUPLICATE_DISTANCE`` (``first`` <
    ``second``, by id), found when the later one's hashes were recorded. Near-duplicate groups
    are the connected sets of these pairs; a deleted image takes its pairs with it."""

    __tablename__ = "near_pairs"

    first_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    second_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"))
    distance: Mapped[int] = mapped_column(SmallInteger)

    __table_args__ = (
        Index("ix_near_pairs_user", "user_id"),
        Index("ix_near_pairs_second", "second_id"),
    )
