"""The archive's tables at the head of the migrations (schema version 8), as the code uses them.

The database is built and changed by the Alembic revisions in ``migrations/versions/``
(``monitor/archive/migrate.py``); a test checks that the head database equals this metadata.
What metadata cannot express lives only in the revisions: SQLite's FTS5 table ``mentions_fts``
and its triggers (0001), PostgreSQL's GIN full-text index ``ix_mentions_fts`` (0002) and the
SQL views (0005).

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
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# The number of the newest Alembic revision ("0008"), which the database records in
# alembic_version; bump it with every new revision.
SCHEMA_VERSION = 8

metadata = MetaData()

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
    Column("raw", JSON(none_as_null=True)),  # no payload: SQL NULL, not the JSON text 'null'
    # Classification, with the model that made it.
    Column("sentiment", String(8)),
    Column("p_negative", Float),
    Column("p_neutral", Float),
    Column("p_positive", Float),
    Column("complaint", Float),
    Column("severity", SmallInteger),  # complaint severity 0-4 (models.base.SEVERITY_LEVELS)
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
# Covers per-brand volume and complaint counts over a time range (index-only scans); revision
# 0002 replaced 0001's ix_mention_brands_brand_time (brand, created_at) with it.
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

# Engagement history (issue 4): one row per re-read of a mention's counts, so detection can
# tell how fast a post spreads (reposts or likes per minute). Revision 0003.
engagement_samples = Table(
    "engagement_samples",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("mention_id", Integer, ForeignKey("mentions.id", ondelete="CASCADE"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("likes", Integer, nullable=False),
    Column("reposts", Integer, nullable=False),
    Column("replies", Integer, nullable=False),
    Column("score", Integer, nullable=False),
    Column("author_followers", Integer),
)
Index("ix_engagement_samples_mention_at", engagement_samples.c.mention_id, engagement_samples.c.at)

# Per-source health (issue 4), written by the daemon after every poll so `uproar sources`
# can show it while the daemon runs. Revision 0003.
source_health = Table(
    "source_health",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("last_poll_at", DateTime(timezone=True)),
    Column("last_success_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("last_error_at", DateTime(timezone=True)),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("items_last_poll", Integer),
    Column("next_poll_at", DateTime(timezone=True)),
    Column("paused", Text),  # why the source stopped polling (credentials refused), or NULL
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Hourly volume rollup (v5, kept by store in the ingest transaction; see archive/rollup.py):
# mentions per brand, UTC hour and complaint-probability bin (-1 unclassified, else 0..20 for
# [k/20, (k+1)/20)). It answers long-range volume fast and is kept when old mentions are dropped.
volume_hourly = Table(
    "volume_hourly",
    metadata,
    Column("brand", String(64), primary_key=True),
    Column("hour", DateTime(timezone=True), primary_key=True),
    Column("complaint_bin", Integer, primary_key=True),
    Column("mentions", Integer, nullable=False),
)

# Escalation timers (v4): one row per incident and policy; ``level``/``loop`` say what fires
# next and ``next_at`` when, so a restart continues at the right level at the right time.
escalations = Table(
    "escalations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", Integer, ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False),
    Column("route", String(128), nullable=False),
    Column("policy", String(128), nullable=False),
    Column("plan", JSON, nullable=False),  # the policy as it was when the incident opened
    Column("level", Integer, nullable=False, default=1),  # the next level to fire (0-based)
    Column("loop", Integer, nullable=False, default=0),
    Column("status", String(16), nullable=False),  # waiting | active | stopped | done
    Column("started_at", DateTime(timezone=True)),  # when the alert was first posted
    Column("next_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("incident_id", "policy", name="uq_escalations_incident_policy"),
)
Index("ix_escalations_status_next", escalations.c.status, escalations.c.next_at)

# Silences (v4) created from the CLI: alerts matching ``matchers`` are recorded, not sent.
silences = Table(
    "silences",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("matchers", JSON, nullable=False),  # {"brand": ["acme"], "severity": [...]}
    Column("reason", Text, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False),
)

# The brands' own accounts (v5), copied from the config's brands[].handles by `uproar maintain`:
# the incident_response_times view looks for their first post after an incident opened.
brand_accounts = Table(
    "brand_accounts",
    metadata,
    Column("brand", String(64), primary_key=True),
    Column("handle", String(256), primary_key=True),  # lower case, without a leading @
)

# Stories (v3, issue 5): complaints about the same thing, grouped online by monitor.detect.stories.
# ``top_posts`` are the most-shared posts (with the seed first), as alert examples.
stories = Table(
    "stories",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("brand", String(64), nullable=False),
    Column("title", Text, nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("mention_count", Integer, nullable=False),
    Column("rate_per_hour", Float, nullable=False),  # mentions in the hour before last_seen
    Column("growth_per_hour", Float, nullable=False),  # that hour over the hour before
    Column("total_reach", Float, nullable=False),  # author followers + engagement, summed
    Column("sources", JSON, nullable=False),  # {"twitter": 40, "reddit": 2}
    Column("top_posts", JSON, nullable=False),
    Column("key_phrases", JSON, nullable=False),  # {"broke guitar": 12, ...}, most frequent
    Column("centroid", JSON),  # mean embedding, to resume grouping after a restart
    Column("embedded", Integer, nullable=False, default=0),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The story this one was merged into (its members moved there); NULL for a live story.
    Column("merged_into", Integer),
)
Index("ix_stories_brand_last_seen", stories.c.brand, stories.c.last_seen)

story_mentions = Table(
    "story_mentions",
    metadata,
    Column("story_id", Integer, ForeignKey("stories.id", ondelete="CASCADE"), primary_key=True),
    Column("mention_id", Integer, ForeignKey("mentions.id", ondelete="CASCADE"), primary_key=True),
    Column("brand", String(64), nullable=False),
    Column("similarity", Float, nullable=False),  # to the story when it joined (1: opened it)
    Column("created_at", DateTime(timezone=True), nullable=False),  # the mention's
)
Index("ix_story_mentions_mention", story_mentions.c.mention_id)

# Daily digests sent (v4): one row per brand, local day and target, written before the send.
digests = Table(
    "digests",
    metadata,
    Column("brand", String(64), primary_key=True),
    Column("day", String(10), primary_key=True),  # the local date it was sent for, YYYY-MM-DD
    Column("target", String(320), primary_key=True),  # a Slack channel or an email address
    Column("sent_at", DateTime(timezone=True), nullable=False),
)
