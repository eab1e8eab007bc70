"""Reading the archive: detector warm-up counts, alert examples, counts and basic search."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Select,
    and_,
    cast,
    exists,
    func,
    literal_column,
    or_,
    select,
    text,
)

from monitor.archive.convert import archived_mention, to_db_time
from monitor.archive.fts import FTS_TABLE, match_expression, search_words
from monitor.archive.records import ArchivedMention
from monitor.archive.schema import mention_brands, mentions
from monitor.archive.store import ID_CHUNK

_ALNUM_RUN = re.compile(r"[^\W_]+")
_reach = mentions.c.likes + mentions.c.reposts + mentions.c.replies + mentions.c.score


def complaint_counts(
    connection: Connection,
    brand: str,
    since: datetime,
    until: datetime,
    bucket: timedelta,
    threshold: float,
) -> list[tuple[datetime, int]]:
    """Complaints (complaint >= threshold) about ``brand`` per bucket in ``[since, until)``.

    Buckets start at whole multiples of ``bucket`` since the Unix epoch; empty ones are left out.
    """
    seconds = bucket.total_seconds()
    if seconds < 1 or seconds != int(seconds):
        raise ValueError(f"bucket must be a whole number of seconds, got {bucket}")
    step = int(seconds)
    epoch = _epoch_seconds(connection, mention_brands.c.created_at)
    start = ((epoch // step) * step).label("bucket_start")
    query = (
        select(start, func.count().label("n"))
        .where(
            mention_brands.c.brand == brand,
            mention_brands.c.created_at >= to_db_time(since),
            mention_brands.c.created_at < to_db_time(until),
            mention_brands.c.complaint >= threshold,
        )
        .group_by(start)
        .order_by(start)
    )
    return [
        (datetime.fromtimestamp(int(row.bucket_start), UTC), int(row.n))
        for row in connection.execute(query)
    ]


def _epoch_seconds(connection: Connection, column: Any) -> ColumnElement[Any]:
    """Whole seconds since the epoch of a stored time, as an integer expression."""
    if connection.dialect.name == "postgresql":
        return cast(func.floor(func.extract("epoch", column)), Integer)
    return cast(func.strftime("%s", column), Integer)


def mentions_for_examples(
    connection: Connection,
    brand: str,
    since: datetime,
    until: datetime,
    min_complaint: float,
    limit: int,
) -> list[ArchivedMention]:
    """The most-shared complaints about ``brand`` in ``[since, until)``; newest first on ties."""
    query = (
        select(mentions)
        .join(mention_brands, mention_brands.c.mention_id == mentions.c.id)
        .where(
            mention_brands.c.brand == brand,
            mention_brands.c.created_at >= to_db_time(since),
            mention_brands.c.created_at < to_db_time(until),
            mention_brands.c.complaint >= min_complaint,
        )
        .order_by(_reach.desc(), mentions.c.created_at.desc(), mentions.c.id.desc())
        .limit(limit)
    )
    return _with_brands(connection, query)


def _filtered(
    query: Select[Any],
    *,
    brand: str | None,
    source: str | None,
    since: datetime | None,
    until: datetime | None,
    min_complaint: float | None = None,
) -> Select[Any]:
    if brand is not None:
        query = query.where(
            exists().where(
                mention_brands.c.mention_id == mentions.c.id, mention_brands.c.brand == brand
            )
        )
    if source is not None:
        query = query.where(mentions.c.source == source)
    if since is not None:
        query = query.where(mentions.c.created_at >= to_db_time(since))
    if until is not None:
        query = query.where(mentions.c.created_at < to_db_time(until))
    if min_complaint is not None:
        query = query.where(mentions.c.complaint >= min_complaint)
    return query


def count_mentions(
    connection: Connection,
    *,
    brand: str | None = None,
    source: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    min_complaint: float | None = None,
) -> int:
    """How many archived mentions match every given filter."""
    query = _filtered(
        select(func.count()).select_from(mentions),
        brand=brand,
        source=source,
        since=since,
        until=until,
        min_complaint=min_complaint,
    )
    return int(connection.execute(query).scalar_one())


def search(
    connection: Connection,
    words_text: str | None,
    *,
    brand: str | None = None,
    source: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
) -> list[ArchivedMention]:
    """Mentions containing every word of ``words_text`` (all mentions if None), newest first.

    SQLite uses the FTS5 index (case- and accent-insensitive); PostgreSQL, until it gets its
    own index, falls back to case-insensitive substring matching of each word.
    """
    query = _filtered(select(mentions), brand=brand, source=source, since=since, until=until)
    if words_text is not None:
        words = search_words(words_text)
        if not words:
            return []
        query = query.where(_text_condition(connection, words))
    query = query.order_by(mentions.c.created_at.desc(), mentions.c.id.desc()).limit(limit)
    return _with_brands(connection, query)


def _text_condition(connection: Connection, words: list[str]) -> ColumnElement[bool]:
    if connection.dialect.name == "sqlite":
        matching: Select[Any] = (
            select(literal_column("rowid"))
            .select_from(text(FTS_TABLE))
            .where(
                text(f"{FTS_TABLE} MATCH :fts_query").bindparams(fts_query=match_expression(words))
            )
        )
        return mentions.c.id.in_(matching)
    # Letters and digits only, like the FTS5 tokenizer: "NEAR(" finds "near".
    runs = [run for word in words for run in _ALNUM_RUN.findall(word)]
    return and_(
        *(
            or_(
                mentions.c.text.ilike(f"%{_escape_like(run)}%", escape="\\"),
                mentions.c.author_handle.ilike(f"%{_escape_like(run)}%", escape="\\"),
            )
            for run in runs
        )
    )


def _escape_like(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _with_brands(connection: Connection, query: Select[Any]) -> list[ArchivedMention]:
    rows = [row._mapping for row in connection.execute(query)]
    brands = _brands_of(connection, [row["id"] for row in rows])
    return [archived_mention(row, tuple(brands.get(row["id"], ()))) for row in rows]


def _brands_of(connection: Connection, ids: Sequence[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = defaultdict(list)
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ids[start : start + ID_CHUNK]
        query = (
            select(mention_brands.c.mention_id, mention_brands.c.brand)
            .where(mention_brands.c.mention_id.in_(chunk))
            .order_by(mention_brands.c.mention_id, mention_brands.c.brand)
        )
        for mention_id, brand in connection.execute(query):
            found[mention_id].append(brand)
    return found
