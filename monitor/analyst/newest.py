"""SQLite: the newest page of a text search without collecting every match (big archives).

A page read newest first (``ORDER BY created_at DESC LIMIT n``) needs only the newest matches.
Collecting every FTS5 match first costs ``share × rows`` (a word in 3% of 5 million mentions:
150,000 lookups, over a second); probing FTS5 once per row, newest first, costs a probe per row
walked (thousands for such a word: also about a second). Instead:

1. Ids grow with ingest, and a post is archived soon after it is written, so the newest
   matches are usually among the highest ids. Ask FTS5 only for matches above an id floor
   (a rowid range: cheap), starting with enough of the newest ids for a few pages at the
   word's sampled frequency, and widening 8× until the page is full (or the floor reaches
   the first id).
2. Ids and times are not in exactly the same order (a late poll archives an older post after a
   newer one), so lower the floor to the smallest id of any mention newer than the page's
   oldest row. That comes from the ``created_at`` index alone (index-only: the rowid is in it).
3. The page is then the usual query, restricted to FTS5 matches above that floor: exact,
   because every mention that could rank in the page has an id at or above it.

Words so rare that all their matches are few (``share × rows`` under ``MIN_MATCHES``) keep the
plain plan: collecting a few thousand matches is cheaper than widening the floor.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    bindparam,
    func,
    literal_column,
    select,
    text,
)

from monitor.analyst.filters import MentionFilter
from monitor.archive.convert import to_db_time
from monitor.archive.fts import FTS_TABLE, match_expression, search_words
from monitor.archive.schema import mentions

FIRST_SPAN = 4_096  # ids in the first FTS5 rowid range tried
WIDEN = 8  # each retry looks at this many times more ids
SPAN_MARGIN = 6  # first span: ids expected to hold this many pages of matches
MIN_MATCHES = 5_000  # estimated matches below which collecting them all is cheaper
_SAMPLE_ROWS = 2_000  # newest ids sampled to estimate how common the words are


def fts_expression(words_text: str) -> str | None:
    """The FTS5 MATCH expression of the user's words on the ``text`` column (None: no words)."""
    words = search_words(words_text.replace("\x00", " "))
    return f"text : ({match_expression(words)})" if words else None


def matches_from(expression: str, floor: int) -> ColumnElement[bool]:
    """``mentions.id`` is an FTS5 match of ``expression`` with a rowid of at least ``floor``."""
    rowids: Select[Any] = (
        select(literal_column("rowid"))
        .select_from(text(FTS_TABLE))
        .where(
            text(f"{FTS_TABLE} MATCH :fts_floor_query AND rowid >= :fts_floor").bindparams(
                fts_floor_query=expression, fts_floor=floor
            )
        )
    )
    return mentions.c.id.in_(rowids)


def _estimated_matches(connection: Connection, expression: str, newest: int) -> float:
    sample = min(_SAMPLE_ROWS, newest)
    hits = connection.execute(
        text(f"SELECT count(*) FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :q AND rowid > :low"),
        {"q": expression, "low": newest - sample},
    ).scalar_one()
    return hits / sample * newest


def id_floor(
    connection: Connection, f: MentionFilter, others: list[ColumnElement[bool]], rows: int
) -> tuple[str, int] | None:
    """``(expression, floor)`` for the newest ``rows`` matches of ``f.text`` under ``others``
    (the filter's other conditions), or None when the plain plan is the better one."""
    expression = fts_expression(f.text or "")
    if expression is None:
        return None
    newest = connection.execute(select(func.max(mentions.c.id))).scalar()
    if not newest:
        return None
    newest = int(newest)
    matches = _estimated_matches(connection, expression, newest)
    if matches < MIN_MATCHES:
        return None
    # Enough ids for SPAN_MARGIN pages at the sampled share of matches (other filters, such as
    # a brand, keep a fraction of them): usually one try.
    span = max(FIRST_SPAN, int(SPAN_MARGIN * rows * newest / matches))
    while True:
        floor = max(1, newest - span + 1)
        page = (
            select(mentions.c.created_at)
            .where(*others, matches_from(expression, floor))
            .order_by(mentions.c.created_at.desc(), mentions.c.id.desc())
            .limit(rows)
        )
        found = connection.execute(page).scalars().all()
        if floor == 1:
            return expression, 1
        if len(found) >= rows:
            break
        span *= WIDEN
    # INDEXED BY: otherwise SQLite answers min(id) by walking ids up from the first one until
    # a row is new enough (seconds); the created_at index has the ids of exactly those rows.
    bounds = {"oldest": found[-1]}
    newer = (
        "SELECT min(id) FROM mentions INDEXED BY ix_mentions_created_at WHERE created_at > :oldest"
    )
    if f.until is not None:
        newer += " AND created_at < :until"
        bounds["until"] = to_db_time(f.until)
    lowest_newer = connection.execute(
        text(newer).bindparams(
            bindparam("oldest", type_=mentions.c.created_at.type),
            *([bindparam("until", type_=mentions.c.created_at.type)] if f.until else []),
        ),
        bounds,
    ).scalar()
    if lowest_newer is not None:
        floor = min(floor, int(lowest_newer))
    return expression, floor
