"""people, and the faces grouped into them

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

Faces come from version 2 of the faces analyser (with embeddings): images analysed before it
get theirs when they are analysed again (``POST /image/{id}/analyze``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "people",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=True),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_people_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_people")),
    )
    op.create_index(op.f("ix_people_user_id"), "people", ["user_id"])
    op.create_table(
        "faces",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("image_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("x", sa.Integer(), nullable=False),
        sa.Column("y", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=True),
        sa.Column("clustered", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_faces_image_id_images"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_faces_person_id_people"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_faces_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faces")),
        sa.UniqueConstraint("image_id", "position", name=op.f("uq_faces_image_id")),
    )
    op.create_index(op.f("ix_faces_person_id"), "faces", ["person_id"])
    op.create_index("ix_faces_user_clustered", "faces", ["user_id", "clustered"])
    op.create_index(
        "ix_faces_waiting",
        "faces",
        ["created_at"],
        postgresql_where=sa.text("NOT clustered"),
        sqlite_where=sa.text("NOT clustered"),
    )


def downgrade() -> None:
    op.drop_index("ix_faces_waiting", table_name="faces")
    op.drop_index("ix_faces_user_clustered", table_name="faces")
    op.drop_index(op.f("ix_faces_person_id"), table_name="faces")
    op.drop_table("faces")
    op.drop_index(op.f("ix_people_user_id"), table_name="people")
    op.drop_table("people")
