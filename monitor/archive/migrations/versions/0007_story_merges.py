"""Story merges: ``stories.merged_into`` names the story an absorbed story became part of.

Revision 0007 (schema version 7), after 0006 (issue 13). When two open stories turn out to be
one, the younger is absorbed into the older: its row stays (its id keeps resolving) with
``merged_into`` set, and its ``story_mentions`` rows move to the survivor.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # An archive whose first (pre-Alembic) step built today's tables has the column already.
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("stories")}
    if "merged_into" not in columns:
        with op.batch_alter_table("stories") as batch:
            batch.add_column(sa.Column("merged_into", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stories") as batch:
        batch.drop_column("merged_into")
