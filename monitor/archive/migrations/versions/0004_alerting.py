"""Alert routing state: escalation timers, silences, daily digests sent.

Revision 0004 (schema version 4), after 0003 (issue 6). ``IF NOT EXISTS`` as in the pre-Alembic
migrator, whose first step created every table of the schema of its day.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "escalations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.Integer, nullable=False),
        sa.Column("route", sa.String(128), nullable=False),
        sa.Column("policy", sa.String(128), nullable=False),
        sa.Column("plan", sa.JSON, nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("loop", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", TZ),
        sa.Column("next_at", TZ),
        sa.Column("updated_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], ondelete="CASCADE"),
        sa.UniqueConstraint("incident_id", "policy", name="uq_escalations_incident_policy"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_escalations_status_next", "escalations", ["status", "next_at"], if_not_exists=True
    )

    op.create_table(
        "silences",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("matchers", sa.JSON, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("ends_at", TZ, nullable=False),
        if_not_exists=True,
    )

    op.create_table(
        "digests",
        sa.Column("brand", sa.String(64), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("target", sa.String(320), primary_key=True),
        sa.Column("sent_at", TZ, nullable=False),
        if_not_exists=True,
    )


def downgrade() -> None:
    for table in ("digests", "silences", "escalations"):
        op.drop_table(table)
