"""SQL views for the common questions, so the archive answers them in plain SQL (docs/SCHEMA.md).

* ``daily_complaint_volume (brand, day, mentions, complaints)``: per brand and UTC day, from the
  ``volume_hourly`` rollup (so it survives mention retention). A complaint is a mention whose
  complaint probability is at least 0.5 (the default ``classifier.complaint_threshold``).
* ``incident_response_times``: each incident with when it was opened, acknowledged (in Slack)
  and resolved, and the first post by one of the brand's own accounts (``brand_accounts``,
  copied from the config's ``brands[].handles``) at or after it opened: the first public
  response. Durations are in seconds; NULL when it has not happened (or no handle is known).

SQLite and PostgreSQL spell day and duration arithmetic differently, so each view has one body
per dialect; the columns and their meaning are the same.
"""

from __future__ import annotations

from sqlalchemy import Connection

VIEW_NAMES = ("daily_complaint_volume", "incident_response_times")

# Bin 10 of volume_hourly starts at complaint probability 0.5 (see monitor/archive/rollup.py).
_COMPLAINT_BIN = 10

_DAILY = {
    "sqlite": f"""CREATE VIEW daily_complaint_volume AS
SELECT brand,
       substr(hour, 1, 10) AS day,
       sum(mentions) AS mentions,
       sum(CASE WHEN complaint_bin >= {_COMPLAINT_BIN} THEN mentions ELSE 0 END) AS complaints
FROM volume_hourly
GROUP BY brand, substr(hour, 1, 10)""",
    "postgresql": f"""CREATE VIEW daily_complaint_volume AS
SELECT brand,
       (hour AT TIME ZONE 'UTC')::date AS day,
       sum(mentions)::bigint AS mentions,
       sum(CASE WHEN complaint_bin >= {_COMPLAINT_BIN} THEN mentions ELSE 0 END)::bigint
           AS complaints
FROM volume_hourly
GROUP BY brand, (hour AT TIME ZONE 'UTC')::date""",
}

_FIRST_RESPONSE = """(SELECT min(m.created_at) FROM mentions m
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
FROM (SELECT i.*, {_FIRST_RESPONSE} AS first_public_response_at FROM incidents i) AS t"""


def create_views(connection: Connection) -> None:
    """(Re)create every view of this module in the connection's database."""
    dialect = connection.dialect.name
    for name in VIEW_NAMES:
        connection.exec_driver_sql(f"DROP VIEW IF EXISTS {name}")
    connection.exec_driver_sql(_DAILY["postgresql" if dialect == "postgresql" else "sqlite"])
    connection.exec_driver_sql(_response_times(dialect))
