"""Retention and maintenance: drop what is past its retention, keep the database small and fast.

:func:`apply_retention` clears raw payloads (``mentions.raw``) and, when configured, deletes
whole mentions older than their retention, by ``created_at``, in short batches (each its own
transaction, so the daemon's writes interleave). Deleting a mention deletes its brand rows,
story memberships and engagement samples (foreign keys), and its full-text entry (trigger); the
hourly rollup ``volume_hourly`` keeps counting it, so volume charts and the
``daily_complaint_volume`` view still cover the whole history.

:func:`optimize` then tidies the files: on SQLite it returns free pages to the file system
(incremental vacuum), merges the FTS5 index in bounded steps and runs ``PRAGMA optimize``; on
PostgreSQL it runs ``VACUUM ANALYZE`` (or ``ANALYZE`` when nothing was deleted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, null, select, text, tuple_, update

from monitor.archive.archive import Archive
from monitor.archive.convert import to_db_time
from monitor.archive.fts import FTS_TABLE
from monitor.archive.schema import brand_accounts, mentions

# Rows per retention transaction: short enough that a daemon waiting for the write lock
# (busy timeout 10 s) never waits long, big enough to finish millions of rows in minutes.
BATCH = 5_000
# FTS5 'merge' work per step (pages written), each in its own transaction; at most
# MERGE_STEPS steps per run. A full 'optimize' of a big index would hold the lock for minutes.
MERGE_PAGES = 500
MERGE_STEPS = 200
# Tables whose planner statistics matter most to the analysts' queries (PostgreSQL).
_ANALYZED = ("mentions", "mention_brands", "volume_hourly")


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long to keep raw payloads and mentions; ``timedelta(0)`` keeps them forever."""

    raw_payloads: timedelta = timedelta(days=90)
    mentions: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        for name in ("raw_payloads", "mentions"):
            if getattr(self, name) < timedelta(0):
                raise ValueError(f"retention {name} must not be negative")


@dataclass(slots=True)
class MaintenanceReport:
    raw_cleared: int = 0
    mentions_deleted: int = 0
    pages_freed: int = 0  # SQLite: pages returned to the file system
    steps: list[str] = field(default_factory=list)  # what optimize did, for the command's output


def apply_retention(
    archive: Archive, policy: RetentionPolicy, now: datetime, report: MaintenanceReport
) -> None:
    """Clear raw payloads and delete mentions past their retention, relative to ``now``."""
    if policy.mentions:
        cutoff = to_db_time(now - policy.mentions)
        while True:
            with archive.write() as connection:
                deleted = _delete_mentions(connection, cutoff)
            report.mentions_deleted += deleted
            if deleted < BATCH:
                break
    if policy.raw_payloads:
        cutoff = to_db_time(now - policy.raw_payloads)
        after: tuple[datetime, int] | None = None
        while True:
            with archive.write() as connection:
                cleared, after = _clear_raw(connection, cutoff, after)
            report.raw_cleared += cleared
            if after is None:
                break


def _delete_mentions(connection: Connection, cutoff: datetime) -> int:
    """Delete up to BATCH of the oldest mentions created before ``cutoff``."""
    ids = (
        connection.execute(
            select(mentions.c.id)
            .where(mentions.c.created_at < cutoff)
            .order_by(mentions.c.created_at)
            .limit(BATCH)
        )
        .scalars()
        .all()
    )
    if ids:
        connection.execute(delete(mentions).where(mentions.c.id.in_(ids)))
    return len(ids)


def _clear_raw(
    connection: Connection, cutoff: datetime, after: tuple[datetime, int] | None
) -> tuple[int, tuple[datetime, int] | None]:
    """Clear the raw payloads of the next BATCH mentions before ``cutoff`` (in time order,
    after ``after``); returns how many were cleared and where to go on (None: done)."""
    query = select(mentions.c.id, mentions.c.created_at, mentions.c.raw.is_not(None).label("has"))
    query = query.where(mentions.c.created_at < cutoff)
    if after is not None:
        query = query.where(tuple_(mentions.c.created_at, mentions.c.id) > tuple_(*after))
    rows = connection.execute(
        query.order_by(mentions.c.created_at, mentions.c.id).limit(BATCH)
    ).all()
    # Rows stored without a payload hold JSON 'null' (not SQL NULL): cleared too, once.
    ids = [row.id for row in rows if row.has]
    if ids:
        connection.execute(update(mentions).where(mentions.c.id.in_(ids)).values(raw=null()))
    if len(rows) < BATCH:
        return len(ids), None
    return len(ids), (rows[-1].created_at, rows[-1].id)


def optimize(archive: Archive, report: MaintenanceReport, *, full_vacuum: bool = False) -> None:
    """Make the database small and fast again after ingest and retention."""
    if archive.is_sqlite:
        _optimize_sqlite(archive, report, full_vacuum=full_vacuum)
    else:
        _optimize_postgresql(archive, report)


def _optimize_sqlite(archive: Archive, report: MaintenanceReport, *, full_vacuum: bool) -> None:
    with archive.engine.connect() as connection:
        mode = connection.exec_driver_sql("PRAGMA auto_vacuum").scalar()
    if full_vacuum or mode != 2:  # 2 = INCREMENTAL
        if full_vacuum:
            before = int(_sqlite_autocommit(archive, "PRAGMA page_count")[0][0])
            _sqlite_autocommit(archive, "PRAGMA auto_vacuum = INCREMENTAL", "VACUUM")
            after = int(_sqlite_autocommit(archive, "PRAGMA page_count")[0][0])
            report.pages_freed += max(0, before - after)
            report.steps.append("VACUUM (the file now frees pages incrementally)")
        else:
            with archive.engine.connect() as connection:
                free = connection.exec_driver_sql("PRAGMA freelist_count").scalar() or 0
            report.steps.append(
                f"{free} free pages kept in the file: run `uproar maintain --vacuum` once "
                "(it rewrites the file) to let maintenance return them"
            )
    else:
        with archive.write() as connection:
            before = _page_count(connection)
            # Python's sqlite3 frees one page per step: fetch until it is done.
            cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
            cursor.execute("PRAGMA incremental_vacuum").fetchall()
            cursor.close()
            report.pages_freed += max(0, before - _page_count(connection))
        report.steps.append("incremental vacuum")
    steps = _merge_fts(archive)
    report.steps.append(f"FTS5 merge ({steps} steps)")
    _sqlite_autocommit(archive, "PRAGMA optimize")
    report.steps.append("PRAGMA optimize")


def _sqlite_autocommit(archive: Archive, *statements: str) -> list[Any]:
    """Run statements outside any transaction (VACUUM must; PRAGMA optimize must commit);
    returns the last one's rows. The engine's connections are in sqlite3 autocommit mode."""
    raw = archive.engine.raw_connection()
    try:
        cursor = raw.driver_connection.cursor()  # type: ignore[union-attr]
        rows: list[Any] = []
        for statement in statements:
            rows = cursor.execute(statement).fetchall()
        cursor.close()
        return rows
    finally:
        raw.close()


def _page_count(connection: Connection) -> int:
    return int(connection.exec_driver_sql("PRAGMA page_count").scalar() or 0)


def _merge_fts(archive: Archive) -> int:
    """Merge FTS5 index segments a bounded step at a time; returns the steps taken."""
    statement = text(
        f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rank) VALUES ('merge', {MERGE_PAGES})"
    )
    for step in range(1, MERGE_STEPS + 1):
        with archive.write() as connection:
            before = connection.exec_driver_sql("SELECT total_changes()").scalar() or 0
            connection.execute(statement)
            after = connection.exec_driver_sql("SELECT total_changes()").scalar() or 0
        if after - before < 2:  # FTS5: fewer than 2 changes means there was nothing to merge
            return step
    return MERGE_STEPS


def _optimize_postgresql(archive: Archive, report: MaintenanceReport) -> None:
    statement = "VACUUM ANALYZE" if report.raw_cleared or report.mentions_deleted else "ANALYZE"
    autocommit = archive.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    with autocommit as connection:
        for table in _ANALYZED:
            connection.exec_driver_sql(f"{statement} {table}")
    report.steps.append(f"{statement} {', '.join(_ANALYZED)}")


def sync_brand_accounts(archive: Archive, handles: dict[str, list[str]]) -> int:
    """Make ``brand_accounts`` hold exactly the configured handles; returns how many."""
    rows = sorted(
        {
            (brand, handle.strip().removeprefix("@").lower())
            for brand, listed in handles.items()
            for handle in listed
            if handle.strip().removeprefix("@")
        }
    )
    with archive.write() as connection:
        connection.execute(delete(brand_accounts))
        if rows:
            connection.execute(
                brand_accounts.insert(), [{"brand": b, "handle": h} for b, h in rows]
            )
    return len(rows)


def maintain(
    archive: Archive,
    policy: RetentionPolicy,
    now: datetime,
    *,
    handles: dict[str, list[str]] | None = None,
    full_vacuum: bool = False,
) -> MaintenanceReport:
    """Everything the daily maintenance does, in order; returns what it did."""
    report = MaintenanceReport()
    if handles is not None:
        count = sync_brand_accounts(archive, handles)
        report.steps.append(f"{count} brand accounts from the config")
    apply_retention(archive, policy, now, report)
    optimize(archive, report, full_vacuum=full_vacuum)
    return report
