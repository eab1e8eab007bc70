"""Volume per hour or day from the ``volume_hourly`` rollup instead of every mention.

Used by :func:`monitor.analyst.stats.volume` for filters on brand, time and complaint only (the
rollup knows nothing else), when the complaint threshold and ``min_complaint`` lie on the
rollup's 0.05 grid. The whole hours of the range come from the rollup; the partial hours at its
ends (``--since 30d`` rarely starts on the hour) from ``mention_brands``, so the answer is exactly
what the raw rows give — as long as retention has not deleted mentions, which the rollup keeps
counting.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, case, func, literal_column, select

from monitor.analyst.buckets import (
    STEP,
    Bucket,
    VolumeRow,
    as_utc,
    fill_gaps,
    volume_from_brand_rows,
)
from monitor.analyst.filters import MentionFilter
from monitor.archive.convert import to_db_time
from monitor.archive.rollup import grid_bin, hour_of
from monitor.archive.schema import volume_hourly

_HOUR = timedelta(hours=1)


def _day_of(connection: Connection) -> Any:
    if connection.dialect.name == "postgresql":
        return func.date_trunc(literal_column("'day'"), func.timezone("UTC", volume_hourly.c.hour))
    return func.substr(volume_hourly.c.hour, 1, literal_column("10")).concat(
        literal_column("' 00:00:00'")
    )


def volume_from_rollup(
    connection: Connection,
    f: MentionFilter,
    by: Bucket,
    complaint_threshold: float,
) -> list[VolumeRow] | None:
    """The volume rows, or None when the rollup cannot answer ``f`` exactly."""
    threshold_bin = grid_bin(complaint_threshold)
    min_bin = grid_bin(f.min_complaint) if f.min_complaint is not None else None
    if threshold_bin is None or (f.min_complaint is not None and min_bin is None):
        return None
    start = _ceil_hour(f.since) if f.since is not None else None
    end = hour_of(f.until) if f.until is not None else None
    if start is not None and end is not None and start >= end:
        return None  # under an hour: the raw rows are cheap

    bucket = (volume_hourly.c.hour if by == "hour" else _day_of(connection)).label("bucket")
    complaints = case(
        (volume_hourly.c.complaint_bin >= threshold_bin, volume_hourly.c.mentions), else_=0
    )
    query = (
        select(
            bucket,
            volume_hourly.c.brand,
            func.sum(volume_hourly.c.mentions).label("mentions"),
            func.sum(complaints).label("complaints"),
        )
        .group_by(bucket, volume_hourly.c.brand)
    )
    if f.brand is not None:
        query = query.where(volume_hourly.c.brand == f.brand)
    if start is not None:
        query = query.where(volume_hourly.c.hour >= to_db_time(start))
    if end is not None:
        query = query.where(volume_hourly.c.hour < to_db_time(end))
    if min_bin is not None:
        query = query.where(volume_hourly.c.complaint_bin >= min_bin)
    totals: dict[tuple[datetime, str], list[int]] = {}

    def add(at: datetime, brand: str, mentions: int, complaints_: int) -> None:
        counts = totals.setdefault((at, brand), [0, 0])
        counts[0] += mentions
        counts[1] += complaints_

    for found_row in connection.execute(query):
        add(
            as_utc(found_row.bucket),
            found_row.brand,
            int(found_row.mentions),
            int(found_row.complaints or 0),
        )
    edges = []
    if f.since is not None and start is not None and f.since < start:
        edges.append(replace(f, until=start if f.until is None else min(start, f.until)))
    if f.until is not None and end is not None and end < f.until:
        edges.append(replace(f, since=end if f.since is None else max(end, f.since)))
    for edge in edges:
        for row in volume_from_brand_rows(connection, edge, by, complaint_threshold):
            if row.mentions:
                add(row.bucket, row.brand, row.mentions, row.complaints)
    found = [VolumeRow(at, brand, n, c) for (at, brand), (n, c) in totals.items()]
    return fill_gaps(found, STEP[by])


def _ceil_hour(when: datetime) -> datetime:
    floor = hour_of(when)
    return floor if floor == when else floor + _HOUR
