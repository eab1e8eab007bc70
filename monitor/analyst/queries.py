"""SELECTs built from a :class:`MentionFilter` (SQLAlchemy Core, bound parameters only).

Full-text search: on SQLite the FTS5 index ``mentions_fts``, restricted to the ``text`` column,
with each of the user's words quoted as an FTS5 string (so ``NEAR(`` or ``"`` is plain text);
on PostgreSQL ``to_tsvector('simple', text) @@ plainto_tsquery('simple', :q)``. Both are
case-insensitive and require every word; SQLite also ignores accents, PostgreSQL does not.
PostgreSQL indexes that expression with GIN (``ix_mentions_fts``). The first page of a search
read newest first picks its plan from how common the words are: monitor/analyst/newest.py.

Exports stream: :func:`stream_batches` asks for a server-side cursor (``yield_per``), so the
database hands rows over a batch at a time and millions of rows never sit in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    exists,
    false,
    func,
    literal_column,
    null,
    select,
    text,
)

from monitor.analyst.filters import AnalystError, MentionFilter
from monitor.archive.convert import archived_mention, from_db_time, to_db_time
from monitor.archive.fts import FTS_TABLE, match_expression, search_words
from monitor.archive.records import ArchivedMention
from monitor.archive.schema import incidents, mention_brands, mentions, stories, story_mentions

# Rows per batch handed over by the database cursor when streaming an export.
STREAM_BATCH = 2_000

# A constant, not user input: written into the SQL (not bound) so the expression is the same
# one a later ``CREATE INDEX … USING gin (to_tsvector('simple', text))`` indexes.
_PG_TS_CONFIG: ColumnElement[Any] = literal_column("'simple'::regconfig")

# Every mentions column but the raw payload, which no output carries and which can be kilobytes
# of JSON per row to read and decode; ``raw`` comes back as NULL (an empty mapping).
_READ_COLUMNS = [c for c in mentions.c if c.name != "raw"] + [null().label("raw")]

ENGAGEMENT = (mentions.c.likes + mentions.c.reposts + mentions.c.replies + mentions.c.score).label(
    "engagement"
)


@dataclass(frozen=True, slots=True)
class StoryWindow:
    """The brand and time span that ``--story ID`` stands for (see :class:`MentionFilter`)."""

    incident_id: int
    brand: str
    start: datetime
    end: datetime


def story_brand(connection: Connection, story_id: int) -> tuple[int, str]:
    """Story ``story_id`` and its brand; :class:`AnalystError` if there is no such story."""
    row = connection.execute(select(stories.c.brand).where(stories.c.id == story_id)).first()
    if row is None:
        raise AnalystError(
            f"no story {story_id} in the archive: `uproar stories` lists the stories with their "
            "ids (an incident id goes with --incident)"
        )
    return story_id, str(row.brand)


def in_story(story_id: int) -> ColumnElement[bool]:
    """Condition on ``mentions``: the mention is a member of story ``story_id``."""
    return (
        exists()
        .where(story_mentions.c.mention_id == mentions.c.id, story_mentions.c.story_id == story_id)
        .correlate(mentions)
    )


def story_window(connection: Connection, incident_id: int) -> StoryWindow:
    """The window of incident ``incident_id``; :class:`AnalystError` if there is none."""
    row = connection.execute(
        select(
            incidents.c.brand,
            incidents.c.opened_at,
            incidents.c.resolved_at,
            incidents.c.last_signal_at,
        ).where(incidents.c.id == incident_id)
    ).first()
    if row is None:
        raise AnalystError(
            f"no incident {incident_id} in the archive: `uproar stats` and `uproar alerts list` "
            "list the incidents with their ids (a story id goes with --story)"
        )
    end = row.resolved_at if row.resolved_at is not None else row.last_signal_at
    return StoryWindow(incident_id, row.brand, from_db_time(row.opened_at), from_db_time(end))


# SQLite, newest-first page of a text search: how many of the newest rows are sampled to estimate
# how common the searched words are, and the cut-off between the two plans (see _is_common).
_SAMPLE_ROWS = 2_000
_PROBE_CUTOFF = 5_000.0


def text_condition(
    connection: Connection, words_text: str, *, newest_first_page: bool = False
) -> ColumnElement[bool]:
    """Mentions whose text holds every word of ``words_text``; nothing if it has no words.

    ``newest_first_page``: the query reads one page newest first (``ORDER BY created_at DESC
    LIMIT n``). On SQLite, when the words are common, the condition is then a per-row FTS5
    probe, so SQLite walks the time index backwards and stops after a page, instead of
    collecting every match first (seconds for a word in most mentions of a big archive).
    """
    words = search_words(words_text.replace("\x00", " "))
    if not words:
        return false()
    if connection.dialect.name == "postgresql":
        return func.to_tsvector(_PG_TS_CONFIG, mentions.c.text).bool_op("@@")(
            func.plainto_tsquery(_PG_TS_CONFIG, " ".join(words))
        )
    # "text : (...)" limits every quoted word to the text column (the index also holds the
    # author handle, which --author filters on).
    expression = f"text : ({match_expression(words)})"
    if newest_first_page and _is_common(connection, expression):
        probe = (
            select(literal_column("1"))
            .select_from(text(FTS_TABLE))
            .where(
                text(f"{FTS_TABLE} MATCH :fts_query").bindparams(fts_query=expression),
                literal_column("rowid") == mentions.c.id,
            )
            .correlate(mentions)
        )
        return exists(probe)
    matching: Select[Any] = (
        select(literal_column("rowid"))
        .select_from(text(FTS_TABLE))
        .where(text(f"{FTS_TABLE} MATCH :fts_query").bindparams(fts_query=expression))
    )
    return mentions.c.id.in_(matching)


def _is_common(connection: Connection, expression: str) -> bool:
    """Whether probing rows newest first beats collecting every FTS5 match (SQLite).

    Collecting costs about ``share * rows`` (every match); probing about ``1 / share`` (rows
    walked for one page), each probe far dearer than a collected match. ``share² * rows >=
    _PROBE_CUTOFF`` was the measured crossover on bench/archive (500,000 mentions: words in at
    least ~10% of mentions). The share of matching rows is estimated on the newest
    ``_SAMPLE_ROWS`` ids (one FTS5 rowid-range query).
    """
    newest = connection.execute(select(func.max(mentions.c.id))).scalar()
    if not newest:
        return False
    sample = min(_SAMPLE_ROWS, int(newest))
    hits = connection.execute(
        text(f"SELECT count(*) FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :q AND rowid > :low"),
        {"q": expression, "low": int(newest) - sample},
    ).scalar_one()
    share = hits / sample
    return share * share * int(newest) >= _PROBE_CUTOFF


def conditions(
    connection: Connection, f: MentionFilter, *, newest_first_page: bool = False
) -> list[ColumnElement[bool]]:
    """The WHERE conditions of ``f`` on the ``mentions`` table (empty: every mention)."""
    where: list[ColumnElement[bool]] = []
    if f.brand is not None:
        where.append(_has_brand(f.brand))
    if f.source is not None:
        where.append(mentions.c.source == f.source)
    if f.sentiment is not None:
        where.append(mentions.c.sentiment == f.sentiment)
    if f.min_complaint is not None:
        where.append(mentions.c.complaint >= f.min_complaint)
    handle = f.author_handle
    if handle is not None:
        where.append(func.lower(mentions.c.author_handle).in_([handle, "@" + handle]))
    if f.since is not None:
        where.append(mentions.c.created_at >= to_db_time(f.since))
    if f.until is not None:
        where.append(mentions.c.created_at < to_db_time(f.until))
    if f.story is not None:
        where.append(in_story(story_brand(connection, f.story)[0]))
    if f.incident is not None:
        window = story_window(connection, f.incident)
        where.append(_has_brand(window.brand))
        where.append(mentions.c.created_at >= to_db_time(window.start))
        where.append(mentions.c.created_at <= to_db_time(window.end))
    if f.text is not None:
        where.append(text_condition(connection, f.text, newest_first_page=newest_first_page))
    return where


def _has_brand(brand: str) -> ColumnElement[bool]:
    # correlate(mentions) only: the outer query may itself join mention_brands (stats).
    return (
        exists()
        .where(mention_brands.c.mention_id == mentions.c.id, mention_brands.c.brand == brand)
        .correlate(mentions)
    )


def _brands_column(connection: Connection) -> Any:
    """The mention's brand keys joined by commas (brand keys cannot contain one)."""
    joined = (
        func.string_agg(mention_brands.c.brand, ",")
        if connection.dialect.name == "postgresql"
        else func.group_concat(mention_brands.c.brand, ",")
    )
    return (
        select(joined)
        .where(mention_brands.c.mention_id == mentions.c.id)
        .correlate(mentions)
        .scalar_subquery()
        .label("brands")
    )


def select_mentions(connection: Connection, f: MentionFilter) -> Select[Any]:
    """The ``mentions`` columns (``raw`` as NULL) plus ``brands``, filtered, ordered, limited."""
    from monitor.analyst import newest

    # A story's members are few: the plain plan, limited after the story condition.
    page = f.limit is not None and f.order == "time" and f.story is None
    searched_page = page and f.text is not None
    dialect = connection.dialect.name
    where: list[ColumnElement[bool]] | None = None
    pg_plan: newest.PgPlan | None = None
    if searched_page and dialect == "sqlite":
        others = conditions(connection, replace(f, text=None))
        floor = newest.id_floor(connection, f, others, f.limit or 0)
        if floor is not None:  # the newest page of a common word: see monitor/analyst/newest.py
            where = [*others, newest.matches_from(*floor)]
    elif searched_page and dialect == "postgresql":
        estimate = newest.pg_estimate(connection, f.text or "")
        pg_plan = estimate.plan if estimate is not None else None
        if estimate is not None and pg_plan == "floor" and f.incident is None:
            others = conditions(connection, replace(f, text=None, since=None))
            condition = text_condition(connection, f.text or "")
            ids = newest.pg_floor_page(connection, f, others, condition, estimate, f.limit or 0)
            where = [mentions.c.id.in_(ids)] if ids else [false()]
    if where is None:
        where = conditions(connection, f, newest_first_page=page)
    query = select(*_READ_COLUMNS, _brands_column(connection)).where(*where)
    if f.order == "engagement":
        query = query.order_by(ENGAGEMENT.desc(), mentions.c.created_at.desc())
    elif pg_plan == "all" or (pg_plan == "floor" and f.incident is not None):
        # Same order, but not one ix_mentions_created_at can supply: PostgreSQL then reads the
        # few matches from the GIN index and sorts them, instead of walking the time index and
        # parsing every row's text until it has a page (0.5 s for a rare word at 500k rows).
        query = query.order_by((mentions.c.created_at + literal_column("interval '0'")).desc())
    else:
        query = query.order_by(mentions.c.created_at.desc())
    query = query.order_by(mentions.c.id.desc())
    if f.limit is not None:
        query = query.limit(f.limit)
    return query


def count_mentions(connection: Connection, f: MentionFilter) -> int:
    """How many rows :func:`select_mentions` returns (the limit included)."""
    ids = select(mentions.c.id).where(*conditions(connection, f))
    if f.limit is not None:
        ids = ids.limit(f.limit)
    return int(connection.execute(select(func.count()).select_from(ids.subquery())).scalar_one())


def fetch_mentions(connection: Connection, f: MentionFilter) -> list[ArchivedMention]:
    """The matching mentions, all in memory: for ``query`` (which has a limit)."""
    return [to_archived(row._mapping) for row in connection.execute(select_mentions(connection, f))]


def stream_batches(
    connection: Connection, f: MentionFilter, batch_size: int = STREAM_BATCH
) -> Iterator[list[ArchivedMention]]:
    """The matching mentions in batches, read through a server-side cursor."""
    query = select_mentions(connection, f)
    result = connection.execution_options(yield_per=batch_size).execute(query)
    try:
        for partition in result.partitions():
            yield [to_archived(row._mapping) for row in partition]
    finally:
        result.close()


def to_archived(row: Mapping[Any, Any]) -> ArchivedMention:
    brands = row["brands"]
    return archived_mention(row, tuple(sorted(brands.split(","))) if brands else ())
