"""Search indexes for the analysts' queries on a big archive.

Revision 0002 (schema version 2), after 0001. PostgreSQL: a GIN full-text index over
``to_tsvector('simple', text)`` for ``uproar query TEXT`` (SQLite has had FTS5 since 0001).
Both: ``mention_brands (brand, created_at, complaint)`` replaces ``(brand, created_at)`` so hourly
volume per brand is an index-only scan. ``IF [NOT] EXISTS`` as in the pre-Alembic migrator,
whose archives may already have the new index.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The exact expression ``monitor.analyst.queries`` searches with: PostgreSQL only uses an
# expression index for a query with the same expression.
PG_FTS_EXPRESSION = "to_tsvector('simple'::regconfig, text)"


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.execute(
            "CREATE INDEX IF NOT EXISTS ix_mentions_fts ON mentions "
            f"USING gin ({PG_FTS_EXPRESSION})"
        )
    op.execute("DROP INDEX IF EXISTS ix_mention_brands_brand_time")
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_mention_brands_brand_time_complaint "
        "ON mention_brands (brand, created_at, complaint)"
    )
    if postgresql:
        # Statistics of the new index expression: without them the planner guesses how common
        # a word is and, on a big archive, filters every row of the time range (seconds).
        op.execute("ANALYZE mentions")
        op.execute("ANALYZE mention_brands")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_mentions_fts")
    op.execute("DROP INDEX IF EXISTS ix_mention_brands_brand_time_complaint")
    op.create_index("ix_mention_brands_brand_time", "mention_brands", ["brand", "created_at"])
