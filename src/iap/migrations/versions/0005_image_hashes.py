"""perceptual hashes in indexed bands, and near-duplicate pairs

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

Existing analysed images get their rows from their stored hashes results.
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The values of that day, kept here: a migration does what it did when it was written.
DUPLICATE_DISTANCE = 10


def upgrade() -> None:
    op.create_table(
        "image_hashes",
        sa.Column("image_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("phash", sa.BigInteger(), nullable=False),
        sa.Column("dhash", sa.BigInteger(), nullable=False),
        *(sa.Column(f"band{n}", sa.Integer(), nullable=False) for n in range(4)),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_image_hashes_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_image_hashes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("image_id", name=op.f("pk_image_hashes")),
    )
    for n in range(4):
        op.create_index(f"ix_image_hashes_band{n}", "image_hashes", ["user_id", f"band{n}"])
    op.create_table(
        "near_pairs",
        sa.Column("first_id", sa.Uuid(), nullable=False),
        sa.Column("second_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("distance", sa.SmallInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["first_id"],
            ["images.id"],
            name=op.f("fk_near_pairs_first_id_images"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["second_id"],
            ["images.id"],
            name=op.f("fk_near_pairs_second_id_images"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_near_pairs_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("first_id", "second_id", name=op.f("pk_near_pairs")),
    )
    op.create_index("ix_near_pairs_user", "near_pairs", ["user_id"])
    op.create_index("ix_near_pairs_second", "near_pairs", ["second_id"])
    _backfill()


def _signed(hex_digest: str) -> int:
    value = int(hex_digest, 16)
    return value - (1 << 64) if value >= 1 << 63 else value


def _backfill() -> None:
    """One row per analysed image from its newest succeeded hashes result; then, per owner,
    the pairs within the distance (by band, as the application finds them)."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT r.image_id, i.user_id, r.version, r.result FROM analysis_results r "
            "JOIN images i ON i.id = r.image_id "
            "WHERE r.analyser = 'hashes' AND r.status = 'succeeded' ORDER BY r.version"
        )
    ).fetchall()
    newest: dict[object, tuple[object, int, int]] = {}
    for image_id, user_id, _version, result in rows:
        value = json.loads(result) if isinstance(result, str) else result
        try:
            phash, dhash = _signed(value["phash"]), _signed(value["dhash"])
        except (KeyError, TypeError, ValueError):
            continue
        newest[image_id] = (user_id, phash, dhash)
    hashes = sa.table(
        "image_hashes",
        *(sa.column(name) for name in ("image_id", "user_id", "phash", "dhash")),
        *(sa.column(f"band{n}") for n in range(4)),
    )
    pairs = sa.table(
        "near_pairs", *(sa.column(c) for c in ("first_id", "second_id", "user_id", "distance"))
    )
    by_user: dict[object, list[tuple[object, int]]] = {}
    hash_rows = []
    for image_id, (user_id, phash, dhash) in newest.items():
        unsigned = phash & ((1 << 64) - 1)
        bands = {f"band{n}": (unsigned >> (16 * n)) & 0xFFFF for n in range(4)}
        hash_rows.append(
            {"image_id": image_id, "user_id": user_id, "phash": phash, "dhash": dhash, **bands}
        )
        by_user.setdefault(user_id, []).append((image_id, unsigned))
    if hash_rows:
        op.bulk_insert(hashes, hash_rows)
    pair_rows = []
    for user_id, images in by_user.items():
        # Images within the distance share a band within DUPLICATE_DISTANCE // 4 bits, at
        # most 2: look each image up in per-band buckets of the images before it.
        buckets: list[dict[int, list[tuple[object, int]]]] = [{} for _ in range(4)]
        for image_id, value in images:
            seen: set[object] = set()
            for n in range(4):
                band = (value >> (16 * n)) & 0xFFFF
                for candidate in _around(band, DUPLICATE_DISTANCE // 4):
                    for other, other_value in buckets[n].get(candidate, ()):
                        if other in seen:
                            continue
                        seen.add(other)
                        distance = (value ^ other_value).bit_count()
                        if distance <= DUPLICATE_DISTANCE:
                            first, second = sorted((image_id, other), key=str)
                            pair_rows.append(
                                {
                                    "first_id": first,
                                    "second_id": second,
                                    "user_id": user_id,
                                    "distance": distance,
                                }
                            )
            for n in range(4):
                buckets[n].setdefault((value >> (16 * n)) & 0xFFFF, []).append((image_id, value))
    if pair_rows:
        op.bulk_insert(pairs, pair_rows)


def _around(band: int, radius: int) -> list[int]:
    found = [band]
    for bit in range(16):
        found.append(band ^ (1 << bit))
        if radius >= 2:
            found.extend(band ^ (1 << bit) ^ (1 << other) for other in range(bit + 1, 16))
    return found


def downgrade() -> None:
    op.drop_index("ix_near_pairs_second", table_name="near_pairs")
    op.drop_index("ix_near_pairs_user", table_name="near_pairs")
    op.drop_table("near_pairs")
    for n in range(4):
        op.drop_index(f"ix_image_hashes_band{n}", table_name="image_hashes")
    op.drop_table("image_hashes")
