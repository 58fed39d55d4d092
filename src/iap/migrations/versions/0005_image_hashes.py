"""perceptual hashes in indexed bands, and near-duplicate groups

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

Existing analysed images get their rows from their stored hashes results.
"""

import json
import uuid
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
        sa.Column("near_group", sa.Uuid(), nullable=True),
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
    op.create_index("ix_image_hashes_near_group", "image_hashes", ["user_id", "near_group"])
    _backfill()


def _signed(hex_digest: str) -> int:
    value = int(hex_digest, 16)
    return value - (1 << 64) if value >= 1 << 63 else value


def _backfill() -> None:
    """One row per analysed image from its newest succeeded hashes result, with, per owner,
    the near-duplicate groups of those within the distance (found by band, as the
    application finds them; joined by single linkage)."""
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
    by_user: dict[object, list[tuple[object, int]]] = {}
    for image_id, (user_id, phash, _dhash) in newest.items():
        by_user.setdefault(user_id, []).append((image_id, phash & ((1 << 64) - 1)))
    group_of: dict[object, object] = {}
    for images in by_user.values():
        group_of |= _groups(images)
    hashes = sa.table(
        "image_hashes",
        *(sa.column(name) for name in ("image_id", "user_id", "phash", "dhash")),
        sa.column("near_group", sa.Uuid()),
        *(sa.column(f"band{n}") for n in range(4)),
    )
    hash_rows = []
    for image_id, (user_id, phash, dhash) in newest.items():
        unsigned = phash & ((1 << 64) - 1)
        hash_rows.append(
            {
                "image_id": image_id,
                "user_id": user_id,
                "phash": phash,
                "dhash": dhash,
                "near_group": group_of.get(image_id),
                **{f"band{n}": (unsigned >> (16 * n)) & 0xFFFF for n in range(4)},
            }
        )
    if hash_rows:
        op.bulk_insert(hashes, hash_rows)


def _groups(images: list[tuple[object, int]]) -> dict[object, object]:
    """Image -> group (its first member's id) for images within the distance of another."""
    # Images within the distance share a band within DUPLICATE_DISTANCE // 4 bits, at most
    # 2: look each image up in per-band buckets of the images before it.
    buckets: list[dict[int, list[tuple[object, int]]]] = [{} for _ in range(4)]
    parent: dict[object, object] = {}

    def root(node: object) -> object:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for image_id, value in images:
        parent[image_id] = image_id
        for n in range(4):
            band = (value >> (16 * n)) & 0xFFFF
            for candidate in _around(band, DUPLICATE_DISTANCE // 4):
                for other, other_value in buckets[n].get(candidate, ()):
                    if (value ^ other_value).bit_count() <= DUPLICATE_DISTANCE:
                        parent[root(image_id)] = root(other)
        for n in range(4):
            buckets[n].setdefault((value >> (16 * n)) & 0xFFFF, []).append((image_id, value))
    members: dict[object, list[object]] = {}
    for image_id in parent:
        members.setdefault(root(image_id), []).append(image_id)
    return {
        image_id: _as_uuid(group[0])
        for group in members.values()
        if len(group) > 1
        for image_id in group
    }


def _as_uuid(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _around(band: int, radius: int) -> list[int]:
    found = [band]
    for bit in range(16):
        found.append(band ^ (1 << bit))
        if radius >= 2:
            found.extend(band ^ (1 << bit) ^ (1 << other) for other in range(bit + 1, 16))
    return found


def downgrade() -> None:
    op.drop_index("ix_image_hashes_near_group", table_name="image_hashes")
    for n in range(4):
        op.drop_index(f"ix_image_hashes_band{n}", table_name="image_hashes")
    op.drop_table("image_hashes")
