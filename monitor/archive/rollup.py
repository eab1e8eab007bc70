"""The hourly volume rollup: mentions per brand, UTC hour and complaint-probability bin.

``volume_hourly`` is kept by :func:`add_brand_rows`, called by ``store`` in the transaction that
inserts the ``mention_brands`` rows, so it is always in step with ingest. It answers hourly and
daily volume over long ranges from a few thousand rows instead of scanning every mention of the
range, and it outlives retention: deleting old mentions leaves their counts here.

Complaints are counted by bin: bin ``k`` (0..20) holds the mentions whose complaint probability
is at least ``k/20`` but below ``(k+1)/20`` (bin 20: exactly 1.0); bin ``-1`` the unclassified.
"complaint >= t" is therefore exact for every threshold ``t`` that is a multiple of 0.05 (the
default 0.5 included); other thresholds fall back to the raw rows (see ``usable_threshold``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from monitor.archive.schema import volume_hourly

BINS = 20  # bins of width 1/BINS; thresholds on this grid are answered exactly
UNCLASSIFIED = -1
# The bin edges as Python floats; revision 0005's recount writes the same literals in SQL
# (``k / 20``), so Python and SQL compare against identical doubles.
EDGES = tuple(k / BINS for k in range(1, BINS + 1))


def complaint_bin(complaint: float | None) -> int:
    """The bin of a complaint probability (``UNCLASSIFIED`` for None)."""
    if complaint is None:
        return UNCLASSIFIED
    return sum(1 for edge in EDGES if complaint >= edge)


def grid_bin(threshold: float) -> int | None:
    """The first bin at or above ``threshold`` when it lies on the grid, else None."""
    scaled = round(threshold * BINS)
    if 0 <= scaled <= BINS and scaled / BINS == threshold:
        return scaled
    return None


def hour_of(created_at: datetime) -> datetime:
    """The start of the UTC hour holding ``created_at``."""
    return created_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def add_brand_rows(connection: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
    """Count freshly inserted ``mention_brands`` rows into the rollup (one upsert per key)."""
    counts: Counter[tuple[str, datetime, int]] = Counter(
        (row["brand"], hour_of(row["created_at"]), complaint_bin(row["complaint"]))
        for row in rows
    )
    if not counts:
        return
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(volume_hourly)
    statement = statement.on_conflict_do_update(
        index_elements=["brand", "hour", "complaint_bin"],
        set_={"mentions": volume_hourly.c.mentions + statement.excluded.mentions},
    )
    # Sorted: concurrent writers upsert keys in the same order and cannot deadlock.
    connection.execute(
        statement,
        [
            {"brand": brand, "hour": hour, "complaint_bin": bin_, "mentions": n}
            for (brand, hour, bin_), n in sorted(counts.items())
        ],
    )
