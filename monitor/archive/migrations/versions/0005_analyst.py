"""Analyst archive: the hourly volume rollup, the brands' own accounts, two SQL views.

Revision 0005 (schema version 5), after 0004 (issue 7). ``volume_hourly`` is recounted from
``mention_brands`` when this revision creates it (an archive that already has mentions); the
views are ``daily_complaint_volume`` and ``incident_response_times`` (docs/SCHEMA.md). SQLite and
PostgreSQL spell day and duration arithmetic differently, so each view has a body per dialect.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)

# The rollup's complaint bins (monitor/archive/rollup.py): bin k (1..20) from k/20 up, bin 0
# below 0.05, bin -1 unclassified. Bin 10 starts at 0.5, the default complaint threshold.
BINS = 20
COMPLAINT_BIN = 10

DAILY_VOLUME = {
    "sqlite": f"""CREATE VIEW daily_complaint_volume AS
SELECT brand,
       substr(hour, 1, 10) AS day,
       sum(mentions) AS mentions,
       sum(CASE WHEN complaint_bin >= {COMPLAINT_BIN} THEN mentions ELSE 0 END) AS complaints
FROM volume_hourly
GROUP BY brand, substr(hour, 1, 10)""",
    "postgresql": f"""CREATE VIEW daily_complaint_volume AS
SELECT brand,
       (hour AT TIME ZONE 'UTC')::date AS day,
       sum(mentions)::bigint AS mentions,
       sum(CASE WHEN complaint_bin >= {COMPLAINT_BIN} THEN mentions ELSE 0 END)::bigint
           AS complaints
FROM volume_hourly
GROUP BY brand, (hour AT TIME ZONE 'UTC')::date""",
}

FIRST_RESPONSE = """(SELECT min(m.created_at) FROM mentions m
            JOIN brand_accounts a ON a.brand = i.brand
             AND lower(m.author_handle) IN (a.handle, '@' || a.handle)
            WHERE m.created_at >= i.opened_at)"""


def _seconds(dialect: str, later: str, earlier: str) -> str:
    if dialect == "postgresql":
        return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"
    return f"round((julianday({later}) - julianday({earlier})) * 86400)"


def _response_times(dialect: str) -> str:
    return f"""CREATE VIEW incident_response_times AS
SELECT id AS incident_id, brand, title, severity, status, opened_at,
       acknowledged_at, acknowledged_by,
       {_seconds(dialect, "acknowledged_at", "opened_at")} AS seconds_to_acknowledge,
       first_public_response_at,
       {_seconds(dialect, "first_public_response_at", "opened_at")}
           AS seconds_to_first_public_response,
       resolved_at,
       {_seconds(dialect, "resolved_at", "opened_at")} AS seconds_to_resolve
FROM (SELECT i.*, {FIRST_RESPONSE} AS first_public_response_at FROM incidents i) AS t"""


def _rebuild_rollup(dialect: str) -> None:
    if dialect == "postgresql":
        hour = "date_trunc('hour', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    else:
        # SQLAlchemy stores SQLite times as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC).
        hour = "substr(created_at, 1, 13) || ':00:00.000000'"
    cases = " ".join(f"WHEN complaint >= {k / BINS!r} THEN {k}" for k in range(BINS, 0, -1))
    complaint_bin = f"CASE WHEN complaint IS NULL THEN -1 {cases} ELSE 0 END"
    op.execute("DELETE FROM volume_hourly")
    op.execute(
        "INSERT INTO volume_hourly (brand, hour, complaint_bin, mentions) "
        f"SELECT brand, {hour} AS h, {complaint_bin} AS b, count(*) FROM mention_brands "
        "GROUP BY brand, h, b"
    )


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    existed = sa.inspect(op.get_bind()).has_table("volume_hourly")
    op.create_table(
        "volume_hourly",
        sa.Column("brand", sa.String(64), primary_key=True),
        sa.Column("hour", TZ, primary_key=True),
        sa.Column("complaint_bin", sa.Integer, primary_key=True),
        sa.Column("mentions", sa.Integer, nullable=False),
        if_not_exists=True,
    )
    op.create_table(
        "brand_accounts",
        sa.Column("brand", sa.String(64), primary_key=True),
        sa.Column("handle", sa.String(256), primary_key=True),
        if_not_exists=True,
    )
    if not existed:
        _rebuild_rollup(dialect)
    for name in ("daily_complaint_volume", "incident_response_times"):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.execute(DAILY_VOLUME["postgresql" if dialect == "postgresql" else "sqlite"])
    op.execute(_response_times(dialect))


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS incident_response_times")
    op.execute("DROP VIEW IF EXISTS daily_complaint_volume")
    op.drop_table("brand_accounts")
    op.drop_table("volume_hourly")
