"""The archive's tables (schema version 5). Every table lives here, so migrations see them all.

Indexes that are not plain columns (PostgreSQL's GIN full-text index ``ix_mentions_fts``, v2)
are created by their migration in ``migrations.py`` rather than declared here.
v2 also replaced ``ix_mention_brands_brand_time`` with ``ix_mention_brands_brand_time_complaint``.

Times are stored as aware UTC datetimes; JSON columns hold raw payloads and structured state.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

SCHEMA_VERSION = 5

metadata = MetaData()

# Bookkeeping: one row, the schema version this file was migrated to.
schema_info = Table(
    "schema_info",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("migrated_at", DateTime(timezone=True), nullable=False),
)

mentions = Table(
    "mentions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(32), nullable=False),
    Column("source_id", String(512), nullable=False),
    Column("url", Text, nullable=False, default=""),
    Column("text", Text, nullable=False),
    Column("author_handle", String(256), nullable=False, default=""),
    Column("author_name", String(512), nullable=False, default=""),
    Column("author_followers", Integer),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("fetched_at", DateTime(timezone=True), nullable=False),
    Column("likes", Integer, nullable=False, default=0),
    Column("reposts", Integer, nullable=False, default=0),
    Column("replies", Integer, nullable=False, default=0),
    Column("score", Integer, nullable=False, default=0),
    Column("lang", String(16)),
    Column("parent_id", String(512)),
    Column("conversation_id", String(512)),
    Column("raw", JSON),
    # Classification, with the model that made it.
    Column("sentiment", String(8)),
    Column("p_negative", Float),
    Column("p_neutral", Float),
    Column("p_positive", Float),
    Column("complaint", Float),
    Column("model_name", String(128)),
    Column("model_version", String(64)),
    UniqueConstraint("source", "source_id", name="uq_mentions_identity"),
)
Index("ix_mentions_created_at", mentions.c.created_at)

# A mention may match several brands.
mention_brands = Table(
    "mention_brands",
    metadata,
    Column("mention_id", Integer, ForeignKey("mentions.id", ondelete="CASCADE"), primary_key=True),
    Column("brand", String(64), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),  # copy, for brand+time scans
    Column("complaint", Float),  # copy, for per-brand complaint counts without a join
)
# Covers per-brand volume and complaint counts over a time range (index-only scans); v2 replaced
# v1's ix_mention_brands_brand_time (brand, created_at) with it.
Index(
    "ix_mention_brands_brand_time_complaint",
    mention_brands.c.brand,
    mention_brands.c.created_at,
    mention_brands.c.complaint,
)

# Per-source poll state (ETags, since ids), saved in the same transaction as the mentions.
cursors = Table(
    "cursors",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("state", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# One spreading story of one brand = one incident = one Slack thread.
incidents = Table(
    "incidents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("brand", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # open | acknowledged | resolved
    Column("severity", String(16), nullable=False),
    Column("title", Text, nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("last_signal_at", DateTime(timezone=True), nullable=False),
    Column("peak_count", Integer, nullable=False, default=0),
    Column("state", JSON),  # latest signal summary shown in the parent message
    Column("slack_channel", String(128)),
    Column("slack_ts", String(64)),  # the parent message; replies go to its thread
    Column("acknowledged_by", String(128)),
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("resolved_at", DateTime(timezone=True)),
)
Index("ix_incidents_brand_status", incidents.c.brand, incidents.c.status)

signals = Table(
    "signals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", Integer, ForeignKey("incidents.id", ondelete="CASCADE")),
    Column("brand", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("count", Integer, nullable=False),
    Column("expected", Float, nullable=False),
    Column("spread", Float, nullable=False),
    Column("score", Float, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("examples", JSON, nullable=False),
)

# Transactional outbox: an alert is recorded here before any attempt to send it.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", Integer, ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False),
    Column("target", String(32), nullable=False),  # "slack" | "console"
    Column("kind", String(16), nullable=False),  # "open" | "update"
    Column("payload", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True)),
    Column("failed_at", DateTime(timezone=True)),  # gave up for good
    Column("last_error", Text),
    Column("message_ts", String(64)),
)
Index("ix_outbox_pending", outbox.c.sent_at, outbox.c.failed_at, outbox.c.next_attempt_at)
