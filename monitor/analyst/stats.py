"""Volume over time, top authors and top incidents, each one GROUP BY query in the database.

A mention counts as a complaint when its complaint probability is at least the threshold
(``classifier.complaint_threshold`` in the config, 0.5 by default). Volume is per brand: a
mention naming two brands counts once for each. Buckets are whole UTC hours or days; the
buckets with no mentions between a brand's first and last bucket are filled in with zeros, so
a chart drawn from the rows has no missing points.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, desc, func, select

from monitor.analyst.buckets import (  # Bucket, BUCKETS, VolumeRow, bucket_start: re-exported
    BUCKETS,
    STEP,
    Bucket,
    VolumeRow,
    as_utc,
    bucket_start,
    fill_gaps,
    volume_from_brand_rows,
)
from monitor.analyst.filters import MentionFilter
from monitor.analyst.hourly import volume_from_rollup
from monitor.analyst.queries import ENGAGEMENT, conditions, story_brand, story_window
from monitor.archive.convert import from_db_time, to_db_time
from monitor.archive.schema import incidents, mention_brands, mentions

TOP = 10  # rows in the top authors and top incidents sections


@dataclass(frozen=True, slots=True)
class AuthorRow:
    source: str
    handle: str
    mentions: int
    complaints: int
    engagement: int


@dataclass(frozen=True, slots=True)
class SeverityRow:
    brand: str
    level: int | None  # complaint severity 0-4 (models.base.SEVERITY_LEVELS); None: not rated
    complaints: int


@dataclass(frozen=True, slots=True)
class IncidentRow:
    id: int
    brand: str
    status: str
    severity: str
    title: str
    opened_at: datetime
    peak_count: int
    mentions: int  # mentions of the brand between opened_at and resolved_at/last_signal_at


def _is_complaint(threshold: float) -> Any:
    return case((mentions.c.complaint >= threshold, 1), else_=0)


def _only_brand_time_complaint(f: MentionFilter) -> bool:
    return (
        f.text is None
        and f.source is None
        and f.sentiment is None
        and f.author is None
        and f.story is None
        and f.incident is None
    )


def volume(
    connection: Connection, f: MentionFilter, by: Bucket, complaint_threshold: float
) -> list[VolumeRow]:
    """Mentions and complaints per bucket and brand, oldest first, empty buckets as zeros."""
    if _only_brand_time_complaint(f):
        rolled = volume_from_rollup(connection, f, by, complaint_threshold)
        if rolled is not None:
            return rolled
        return volume_from_brand_rows(connection, f, by, complaint_threshold)
    start = bucket_start(connection, by, mentions.c.created_at).label("bucket")
    query = (
        select(
            start,
            mention_brands.c.brand,
            func.count().label("mentions"),
            func.sum(_is_complaint(complaint_threshold)).label("complaints"),
        )
        .join_from(mentions, mention_brands, mention_brands.c.mention_id == mentions.c.id)
        .where(*conditions(connection, f))
        .group_by(start, mention_brands.c.brand)
        .order_by(start, mention_brands.c.brand)
    )
    for brand in _only_brands(connection, f):
        query = query.where(mention_brands.c.brand == brand)
    found = [
        VolumeRow(as_utc(row.bucket), row.brand, int(row.mentions), int(row.complaints or 0))
        for row in connection.execute(query)
    ]
    return fill_gaps(found, STEP[by])


def _only_brands(connection: Connection, f: MentionFilter) -> list[str]:
    """Brands the volume rows must be limited to (a mention may name others too)."""
    brands = [f.brand] if f.brand is not None else []
    if f.story is not None:
        brands.append(story_brand(connection, f.story)[1])
    if f.incident is not None:
        brands.append(story_window(connection, f.incident).brand)
    return brands


def top_authors(
    connection: Connection, f: MentionFilter, complaint_threshold: float, limit: int = TOP
) -> list[AuthorRow]:
    """The authors with the most matching mentions (handles are per source)."""
    count = func.count().label("mentions")
    query = (
        select(
            mentions.c.source,
            mentions.c.author_handle,
            count,
            func.sum(_is_complaint(complaint_threshold)).label("complaints"),
            func.sum(ENGAGEMENT).label("engagement"),
        )
        .where(*conditions(connection, f), mentions.c.author_handle != "")
        .group_by(mentions.c.source, mentions.c.author_handle)
        .order_by(desc(count), mentions.c.source, mentions.c.author_handle)
        .limit(limit)
    )
    return [
        AuthorRow(
            row.source,
            row.author_handle,
            int(row.mentions),
            int(row.complaints or 0),
            int(row.engagement or 0),
        )
        for row in connection.execute(query)
    ]


def complaint_severity(
    connection: Connection, f: MentionFilter, complaint_threshold: float
) -> list[SeverityRow]:
    """Complaints per brand and severity level (how angry, not only how many), most severe
    first; complaints classified by a model without a severity head count as not rated."""
    query = (
        select(mention_brands.c.brand, mentions.c.severity, func.count().label("complaints"))
        .join_from(mentions, mention_brands, mention_brands.c.mention_id == mentions.c.id)
        .where(*conditions(connection, f), mentions.c.complaint >= complaint_threshold)
        .group_by(mention_brands.c.brand, mentions.c.severity)
    )
    for brand in _only_brands(connection, f):
        query = query.where(mention_brands.c.brand == brand)
    rows = [
        SeverityRow(row.brand, None if row.severity is None else int(row.severity),
                    int(row.complaints))
        for row in connection.execute(query)
    ]
    return sorted(rows, key=lambda r: (r.brand, -(r.level if r.level is not None else -1)))


SEVERE_LEVEL = 3  # accusation and blame: the complaints a PR team answers first


def severe_complaints(
    connection: Connection,
    f: MentionFilter,
    by: Bucket,
    complaint_threshold: float,
    min_level: int = SEVERE_LEVEL,
) -> dict[datetime, int]:
    """Complaints of severity ``min_level`` or more (accusation, blame) per hour or day, summed
    over the brands (a mention naming two brands counts twice)."""
    start = bucket_start(connection, by, mentions.c.created_at).label("bucket")
    query = (
        select(start, func.count().label("complaints"))
        .join_from(mentions, mention_brands, mention_brands.c.mention_id == mentions.c.id)
        .where(
            *conditions(connection, f),
            mentions.c.complaint >= complaint_threshold,
            mentions.c.severity >= min_level,
        )
        .group_by(start)
    )
    for brand in _only_brands(connection, f):
        query = query.where(mention_brands.c.brand == brand)
    return {as_utc(row.bucket): int(row.complaints) for row in connection.execute(query)}


def top_incidents(connection: Connection, f: MentionFilter, limit: int = TOP) -> list[IncidentRow]:
    """Incidents overlapping ``f``'s time range (and of its brand), most mentions first."""
    end = func.coalesce(incidents.c.resolved_at, incidents.c.last_signal_at)
    in_window = (
        select(func.count())
        .where(
            mention_brands.c.brand == incidents.c.brand,
            mention_brands.c.created_at >= incidents.c.opened_at,
            mention_brands.c.created_at <= end,
        )
        .correlate(incidents)
        .scalar_subquery()
        .label("mentions")
    )
    query = select(
        incidents.c.id,
        incidents.c.brand,
        incidents.c.status,
        incidents.c.severity,
        incidents.c.title,
        incidents.c.opened_at,
        incidents.c.peak_count,
        in_window,
    )
    where: list[Any] = []
    if f.brand is not None:
        where.append(incidents.c.brand == f.brand)
    if f.incident is not None:
        where.append(incidents.c.id == f.incident)
    if f.until is not None:
        where.append(incidents.c.opened_at < to_db_time(f.until))
    if f.since is not None:
        where.append(end >= to_db_time(f.since))
    query = (
        query.where(*where)
        .order_by(desc(in_window), desc(incidents.c.peak_count), incidents.c.id)
        .limit(limit)
    )
    return [
        IncidentRow(
            row.id,
            row.brand,
            row.status,
            row.severity,
            row.title,
            from_db_time(row.opened_at),
            int(row.peak_count),
            int(row.mentions),
        )
        for row in connection.execute(query)
    ]


__all__ = [
    "BUCKETS",
    "AuthorRow",
    "Bucket",
    "IncidentRow",
    "VolumeRow",
    "bucket_start",
    "top_authors",
    "top_incidents",
    "volume",
]
