"""Complaint severity with each mention (issue 14).

Revision 0008 (schema version 8), after 0007. ``mentions.severity`` holds the classifier's
complaint severity, 0 (not a complaint) to 4 (blame), NULL when the mention is unclassified or
its model has no severity head (mentions archived before this revision stay NULL).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("mentions")}
    if "severity" not in columns:
        op.add_column("mentions", sa.Column("severity", sa.SmallInteger))


def downgrade() -> None:
    # Plain ALTER TABLE (SQLite 3.35+): a batch copy of ``mentions`` would trip over the views.
    op.execute("ALTER TABLE mentions DROP COLUMN severity")
