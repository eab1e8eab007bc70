"""Initial archive: mentions and their brands, poll cursors, incidents, signals, the outbox.

Revision 0001 (schema version 1), the first. SQLite also gets the FTS5 full-text index
``mentions_fts``: an external-content table (it stores only the index and reads text from
``mentions`` by rowid) kept in step by triggers. ``content="mentions"`` is written with double
quotes because that is the form Datasette looks for when it detects a table's FTS index.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)

FTS_STATEMENTS = (
    """CREATE VIRTUAL TABLE mentions_fts USING fts5(
        text, author_handle,
        content="mentions", content_rowid="id",
        tokenize="unicode61 remove_diacritics 2"
    )""",
    """CREATE TRIGGER mentions_fts_insert AFTER INSERT ON mentions BEGIN
        INSERT INTO mentions_fts(rowid, text, author_handle)
        VALUES (new.id, new.text, new.author_handle);
    END""",
    """CREATE TRIGGER mentions_fts_delete AFTER DELETE ON mentions BEGIN
        INSERT INTO mentions_fts(mentions_fts, rowid, text, author_handle)
        VALUES ('delete', old.id, old.text, old.author_handle);
    END""",
    # Only when indexed columns change: engagement refreshes must not re-index the text.
    """CREATE TRIGGER mentions_fts_update AFTER UPDATE OF text, author_handle ON mentions BEGIN
        INSERT INTO mentions_fts(mentions_fts, rowid, text, author_handle)
        VALUES ('delete', old.id, old.text, old.author_handle);
        INSERT INTO mentions_fts(rowid, text, author_handle)
        VALUES (new.id, new.text, new.author_handle);
    END""",
    # Index any mentions already present (none on a new archive; kept for a re-run).
    "INSERT INTO mentions_fts(mentions_fts) VALUES ('rebuild')",
)


def upgrade() -> None:
    op.create_table(
        "mentions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("source_id", sa.String(512), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("author_handle", sa.String(256), nullable=False),
        sa.Column("author_name", sa.String(512), nullable=False),
        sa.Column("author_followers", sa.Integer),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("fetched_at", TZ, nullable=False),
        sa.Column("likes", sa.Integer, nullable=False),
        sa.Column("reposts", sa.Integer, nullable=False),
        sa.Column("replies", sa.Integer, nullable=False),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("lang", sa.String(16)),
        sa.Column("parent_id", sa.String(512)),
        sa.Column("conversation_id", sa.String(512)),
        sa.Column("raw", sa.JSON),
        sa.Column("sentiment", sa.String(8)),
        sa.Column("p_negative", sa.Float),
        sa.Column("p_neutral", sa.Float),
        sa.Column("p_positive", sa.Float),
        sa.Column("complaint", sa.Float),
        sa.Column("model_name", sa.String(128)),
        sa.Column("model_version", sa.String(64)),
        sa.UniqueConstraint("source", "source_id", name="uq_mentions_identity"),
    )
    op.create_index("ix_mentions_created_at", "mentions", ["created_at"])

    op.create_table(
        "mention_brands",
        sa.Column("mention_id", sa.Integer, primary_key=True),
        sa.Column("brand", sa.String(64), primary_key=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("complaint", sa.Float),
        sa.ForeignKeyConstraint(["mention_id"], ["mentions.id"], ondelete="CASCADE"),
    )
    # Replaced by ix_mention_brands_brand_time_complaint in 0002.
    op.create_index("ix_mention_brands_brand_time", "mention_brands", ["brand", "created_at"])

    op.create_table(
        "cursors",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )

    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("brand", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("opened_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("last_signal_at", TZ, nullable=False),
        sa.Column("peak_count", sa.Integer, nullable=False),
        sa.Column("state", sa.JSON),
        sa.Column("slack_channel", sa.String(128)),
        sa.Column("slack_ts", sa.String(64)),
        sa.Column("acknowledged_by", sa.String(128)),
        sa.Column("acknowledged_at", TZ),
        sa.Column("resolved_at", TZ),
    )
    op.create_index("ix_incidents_brand_status", "incidents", ["brand", "status"])

    op.create_table(
        "signals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.Integer),
        sa.Column("brand", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("expected", sa.Float, nullable=False),
        sa.Column("spread", sa.Float, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("examples", sa.JSON, nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], ondelete="CASCADE"),
    )

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.Integer, nullable=False),
        sa.Column("target", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=False),
        sa.Column("sent_at", TZ),
        sa.Column("failed_at", TZ),
        sa.Column("last_error", sa.Text),
        sa.Column("message_ts", sa.String(64)),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], ondelete="CASCADE"),
    )
    op.create_index("ix_outbox_pending", "outbox", ["sent_at", "failed_at", "next_attempt_at"])

    if op.get_bind().dialect.name == "sqlite":
        for statement in FTS_STATEMENTS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("mentions_fts_insert", "mentions_fts_delete", "mentions_fts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS mentions_fts")
    for table in ("outbox", "signals", "incidents", "cursors", "mention_brands", "mentions"):
        op.drop_table(table)
