"""Stories and engagement history: stories, story_mentions, engagement_samples, source_health.

Revision 0003 (schema version 3), after 0002. Stories (issue 5) group complaints about the same
thing; engagement samples and per-source health are issue 4's. ``IF NOT EXISTS`` as in the
pre-Alembic migrator, whose first step created every table of the schema of its day.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "engagement_samples",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("mention_id", sa.Integer, nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("likes", sa.Integer, nullable=False),
        sa.Column("reposts", sa.Integer, nullable=False),
        sa.Column("replies", sa.Integer, nullable=False),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("author_followers", sa.Integer),
        sa.ForeignKeyConstraint(["mention_id"], ["mentions.id"], ondelete="CASCADE"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_engagement_samples_mention_at",
        "engagement_samples",
        ["mention_id", "at"],
        if_not_exists=True,
    )

    op.create_table(
        "source_health",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("last_poll_at", TZ),
        sa.Column("last_success_at", TZ),
        sa.Column("last_error", sa.Text),
        sa.Column("last_error_at", TZ),
        sa.Column("consecutive_failures", sa.Integer, nullable=False),
        sa.Column("items_last_poll", sa.Integer),
        sa.Column("next_poll_at", TZ),
        sa.Column("paused", sa.Text),
        sa.Column("updated_at", TZ, nullable=False),
        if_not_exists=True,
    )

    op.create_table(
        "stories",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("brand", sa.String(64), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("first_seen", TZ, nullable=False),
        sa.Column("last_seen", TZ, nullable=False),
        sa.Column("mention_count", sa.Integer, nullable=False),
        sa.Column("rate_per_hour", sa.Float, nullable=False),
        sa.Column("growth_per_hour", sa.Float, nullable=False),
        sa.Column("total_reach", sa.Float, nullable=False),
        sa.Column("sources", sa.JSON, nullable=False),
        sa.Column("top_posts", sa.JSON, nullable=False),
        sa.Column("key_phrases", sa.JSON, nullable=False),
        sa.Column("centroid", sa.JSON),
        sa.Column("embedded", sa.Integer, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        if_not_exists=True,
    )
    op.create_index(
        "ix_stories_brand_last_seen", "stories", ["brand", "last_seen"], if_not_exists=True
    )

    op.create_table(
        "story_mentions",
        sa.Column("story_id", sa.Integer, primary_key=True),
        sa.Column("mention_id", sa.Integer, primary_key=True),
        sa.Column("brand", sa.String(64), nullable=False),
        sa.Column("similarity", sa.Float, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["story_id"], ["stories.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["mention_id"], ["mentions.id"], ondelete="CASCADE"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_story_mentions_mention", "story_mentions", ["mention_id"], if_not_exists=True
    )


def downgrade() -> None:
    for table in ("story_mentions", "stories", "source_health", "engagement_samples"):
        op.drop_table(table)
