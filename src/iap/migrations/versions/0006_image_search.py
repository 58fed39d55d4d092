"""full-text search: each image's words, indexed by the database's own engine

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

SQLite: an FTS5 index over the owner and the fields (external content, kept current by
triggers) and a trigram one over filenames. PostgreSQL: a generated, weighted tsvector with a GIN index, and
a pg_trgm GIN index over filenames, both with the owner (btree_gin); the extensions are
created if they are not there: both are trusted ones, which the database's owner may create.
Existing images are indexed here.
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from iap.finding import words

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIELDS = ("filename", "tags", "description", "camera", "text")
BATCH = 1_000

# PostgreSQL: weights A (filename), B (tags), C (description, camera), D (recognised text).
_DOCUMENT = " || ".join(
    f"setweight(to_tsvector('simple'::regconfig, {field}), '{weight}')"
    for field, weight in (
        ("filename", "A"),
        ("tags", "B"),
        ("description", "C"),
        ("camera", "C"),
        ("text", "D"),
    )
)


# SQLite: the triggers that keep both FTS5 indexes in step with image_search's rows. The
# owner is a column of the words' index too: a search matches the owner's id as a word with
# the query's words, so the index itself reads only the owner's matches.
_ADD = (
    "INSERT INTO image_search_fts(rowid, user_id, filename, tags, description, camera, text) "
    "VALUES (new.id, new.user_id, new.filename, new.tags, new.description, new.camera, "
    "new.text); "
    "INSERT INTO image_search_names(rowid, filename) VALUES (new.id, new.filename);"
)
_REMOVE = (
    "INSERT INTO image_search_fts(image_search_fts, rowid, user_id, filename, tags, "
    "description, camera, text) VALUES ('delete', old.id, old.user_id, old.filename, "
    "old.tags, old.description, old.camera, old.text); "
    "INSERT INTO image_search_names(image_search_names, rowid, filename) "
    "VALUES ('delete', old.id, old.filename);"
)
_TRIGGERS = {
    "image_search_added": f"AFTER INSERT ON image_search BEGIN {_ADD} END",
    "image_search_removed": f"AFTER DELETE ON image_search BEGIN {_REMOVE} END",
    "image_search_changed": f"AFTER UPDATE ON image_search BEGIN {_REMOVE} {_ADD} END",
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "image_search",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("image_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        *(sa.Column(field, sa.Text(), nullable=False, server_default="") for field in FIELDS),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_image_search_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_image_search_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_search")),
        sa.UniqueConstraint("image_id", name=op.f("uq_image_search_image_id")),
    )
    op.create_index("ix_image_search_user_id", "image_search", ["user_id"])
    if dialect == "sqlite":
        op.execute(
            f"CREATE VIRTUAL TABLE image_search_fts USING fts5(user_id, {', '.join(FIELDS)}, "
            "content='image_search', content_rowid='id', "
            "tokenize='unicode61 remove_diacritics 0', prefix='2 3')"
        )
        op.execute(
            "CREATE VIRTUAL TABLE image_search_names USING fts5(filename, "
            "content='image_search', content_rowid='id', tokenize='trigram')"
        )
        for name, trigger in _TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {trigger}")
    else:
        # btree_gin lets one GIN index hold the owner with the words: a search intersects
        # the owner's rows with the word's in the index, and reads only the owner's rows.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
        op.execute(
            f"ALTER TABLE image_search ADD COLUMN document tsvector "
            f"GENERATED ALWAYS AS ({_DOCUMENT}) STORED"
        )
        op.execute(
            "CREATE INDEX ix_image_search_document ON image_search USING gin (user_id, document)"
        )
        op.execute(
            "CREATE INDEX ix_image_search_filename ON image_search "
            "USING gin (user_id, filename gin_trgm_ops)"
        )
    _backfill()


def _backfill() -> None:
    """A row for every image there is, from its fields, tags and newest succeeded text and
    EXIF results; a batch of images at a time, in id order."""
    bind = op.get_bind()
    table = sa.table(
        "image_search",
        sa.column("image_id", sa.Uuid()),
        sa.column("user_id", sa.Uuid()),
        *(sa.column(field) for field in FIELDS),
    )
    images = sa.table(
        "images",
        sa.column("id", sa.Uuid()),
        sa.column("user_id", sa.Uuid()),
        sa.column("original_filename"),
        sa.column("description"),
    )
    tags = sa.table("image_tags", sa.column("image_id", sa.Uuid()), sa.column("tag"))
    results = sa.table(
        "analysis_results",
        sa.column("image_id", sa.Uuid()),
        sa.column("analyser"),
        sa.column("version"),
        sa.column("status"),
        sa.column("result"),
    )
    after = None
    while True:
        query = sa.select(images).order_by(images.c.id).limit(BATCH)
        if after is not None:
            query = query.where(images.c.id > after)
        batch = bind.execute(query).fetchall()
        if not batch:
            return
        ids = [row.id for row in batch]
        after = ids[-1]
        tags_of: dict[object, list[str]] = {}
        for image_id, tag in bind.execute(
            sa.select(tags.c.image_id, tags.c.tag)
            .where(tags.c.image_id.in_(ids))
            .order_by(tags.c.tag)
        ):
            tags_of.setdefault(image_id, []).append(tag)
        analysed: dict[object, dict[str, str]] = {}
        for image_id, analyser, result in bind.execute(
            sa.select(results.c.image_id, results.c.analyser, results.c.result)
            .where(
                results.c.image_id.in_(ids),
                results.c.analyser.in_(words.ANALYSED),
                results.c.status == "succeeded",
            )
            .order_by(results.c.version)  # the newest version last, so it stays
        ):
            value = json.loads(result) if isinstance(result, str) else result
            field = words.ANALYSED[analyser]
            analysed.setdefault(image_id, {})[field] = words.analysed_text(analyser, value)
        rows = [
            {
                "image_id": row.id,
                "user_id": row.user_id,
                **words.indexed_fields(
                    words.shown_fields(
                        row.original_filename,
                        tags_of.get(row.id, []),
                        row.description,
                        analysed.get(row.id, {}),
                    )
                ),
            }
            for row in batch
        ]
        bind.execute(sa.insert(table), rows)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in _TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS image_search_fts")
        op.execute("DROP TABLE IF EXISTS image_search_names")
    op.drop_index("ix_image_search_user_id", table_name="image_search")
    op.drop_table("image_search")
