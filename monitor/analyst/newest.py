"""The newest page of a text search without collecting every match (big archives).

A page read newest first (``ORDER BY created_at DESC LIMIT n``) needs only the newest matches.
Collecting every match first costs ``share × rows`` (a word in 3% of 5 million mentions:
150,000 rows to read, seconds); checking the text of each row walked newest first costs a check
per row walked (thousands for such a word). Both databases get a floor instead, below which no
row of the page can lie; the two differ in what the floor is on.

SQLite (:func:`id_floor`):

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

PostgreSQL (:func:`pg_estimate`, :func:`pg_floor_page`): the floor is a time, ``created_at >=
t``, so the page is exact by construction: every row left out is older than every row in it,
whatever order ids and times are in. Ids only size it: ``t`` is the ``created_at`` of the
mention ``span`` ids below the newest one (before ``until``), ``span`` holding six pages at the
words' estimated share, widened 8× while the page is not full. The query is a BitmapAnd of the
GIN index ``ix_mentions_fts`` (the words' posting lists: about 0.05 µs a match) and that short
range of ``ix_mentions_created_at``, then a top-N sort of the few rows in both. It returns the
page's ids; the page is then read by id. The words' share comes from ANALYZE's statistics of
the GIN expression (its most common lexemes), and picks one of three plans by ``q = share² ×
rows`` (:attr:`PgEstimate.plan`):

* ``all`` (``q < PG_RARE_CUTOFF``, i.e. fewer than about ``√(3 × rows)`` expected matches):
  read every match from the GIN index and sort them (ordered by ``created_at + interval '0'``,
  which the time index cannot supply, so the planner does not walk it instead);
* ``walk`` (``q >= PG_WALK_CUTOFF``): common words. A backward walk of the time index, parsing
  each row's text, finds a page after about ``page / share`` rows, fewer than the posting list
  holds. The planner picks that walk for such words itself;
* ``floor``: the rest, with the time floor above.

Without statistics (a new archive before its first ANALYZE or autovacuum) the planner chooses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

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


# -- PostgreSQL ----------------------------------------------------------------------------------

# The plan follows from q = share² × rows, where share is the words' estimated share of mentions
# (see PgEstimate.plan): collect every match below PG_RARE_CUTOFF, walk the time index at or
# above PG_WALK_CUTOFF, the time floor between them.
PG_RARE_CUTOFF = 3.0
PG_WALK_CUTOFF = 15_000.0

PgPlan = Literal["all", "floor", "walk"]

# One round trip: the GIN expression's most common lexemes with their share of rows (ANALYZE),
# the searched words as lexemes (the same parser as the query's plainto_tsquery) and the newest
# id. pg_stats holds most_common_elem_freqs as the elements' shares, then their minimum, maximum
# and the share of empty values.
_PG_ESTIMATE = text(
    "SELECT s.most_common_elems::text::text[] AS elems, s.most_common_elem_freqs AS freqs, "
    "tsvector_to_array(to_tsvector('simple'::regconfig, :words)) AS lexemes, "
    "(SELECT max(id) FROM mentions) AS newest "
    "FROM (SELECT 1) AS one LEFT JOIN pg_stats AS s "
    "ON s.schemaname = current_schema() AND s.tablename = 'ix_mentions_fts'"
)


@dataclass(frozen=True, slots=True)
class PgEstimate:
    """How common the searched words are (PostgreSQL), and the plan that follows from it."""

    share: float  # estimated share of mentions holding every word (independent words)
    newest: int  # the highest id: about the number of mentions archived

    @property
    def matches(self) -> float:
        return self.share * self.newest

    @property
    def plan(self) -> PgPlan:
        """``all`` (collect every match), ``floor`` or ``walk`` (time index): see module doc.

        With ``E = share × rows`` expected matches, reading them all costs about ``E × 6 µs``
        (each row fetched and sorted); the floor plan costs about ``E × 0.05 µs`` (the GIN
        posting list) plus ``300 / share × 0.05 µs`` (the time range of six pages) plus a few
        ms; the walk about ``150 / share × 7 µs`` (rows walked with a one-in-three filter such as
        a brand, each parsed), whatever the archive's size. Collecting wins while ``E² < ~3 ×
        rows``, the walk once ``share² × rows`` passes ~15,000: both sides compare ``q = share²
        × rows``. Measured on bench/archive (1,000,000 mentions): bench/ARCHIVE.md.
        """
        q = self.share * self.share * self.newest
        if q < PG_RARE_CUTOFF:
            return "all"
        if q >= PG_WALK_CUTOFF:
            return "walk"
        return "floor"


def pg_estimate(connection: Connection, words_text: str) -> PgEstimate | None:
    """The words' estimated share from ANALYZE's statistics of ``ix_mentions_fts``; None without
    statistics (a new archive before its first ANALYZE) or searchable words.

    A word absent from the most-common list is rarer than all of them: it counts as half the
    least common one's share (as PostgreSQL's own estimate does).
    """
    words = search_words(words_text.replace("\x00", " "))
    if not words:
        return None
    row = connection.execute(_PG_ESTIMATE, {"words": " ".join(words)}).one()
    if row.elems is None or not row.lexemes or not row.newest:
        return None
    elems: list[str] = list(row.elems)
    freqs: list[float] = list(row.freqs)
    share_of = dict(zip(elems, freqs, strict=False))
    floor_share = (freqs[len(elems)] if len(freqs) > len(elems) else min(freqs)) / 2
    share = math.prod(share_of.get(lexeme, floor_share) for lexeme in row.lexemes)
    return PgEstimate(share=share, newest=int(row.newest))


def pg_floor_page(
    connection: Connection,
    f: MentionFilter,
    others: list[ColumnElement[bool]],
    condition: ColumnElement[bool],
    estimate: PgEstimate,
    rows: int,
) -> list[int]:
    """The ids of the page: the newest ``rows`` mentions matching ``condition`` (the text) and
    ``others`` (the filter's other conditions but ``since``, which this adds), newest first
    (PostgreSQL, see module doc)."""
    created_at = mentions.c.created_at
    # Same order as created_at, but one the time index cannot supply: the planner then reads
    # the few rows of the BitmapAnd and sorts them, instead of walking the index.
    order = ((created_at + literal_column("interval '0'")).desc(), mentions.c.id.desc())
    since = to_db_time(f.since) if f.since is not None else None
    top = estimate.newest
    if f.until is not None:  # ids count down from the newest mention before `until`
        before = connection.execute(
            select(mentions.c.id)
            .where(created_at < to_db_time(f.until))
            .order_by(created_at.desc())
            .limit(1)
        ).scalar()
        if before is None:
            return []
        top = int(before)
    span = max(FIRST_SPAN, int(SPAN_MARGIN * rows / max(estimate.share, 1e-9)))
    while True:
        floor: datetime | None = None
        if top - span >= 1:
            floor = connection.execute(
                select(created_at)
                .where(mentions.c.id <= top - span)
                .order_by(mentions.c.id.desc())
                .limit(1)
            ).scalar()
        if floor is not None and since is not None and floor <= since:
            floor = None  # the window's own lower bound is the floor
        # One lower bound, not two: with both, the planner underestimates the rows between
        # them and walks them, parsing each row's text, instead of using the BitmapAnd.
        lowest = floor if floor is not None else since
        bound = [created_at >= lowest] if lowest is not None else []
        page = select(mentions.c.id).where(*others, condition, *bound).order_by(*order)
        ids = _without_index_scans(connection, page.limit(rows))
        if floor is None or len(ids) >= rows:
            return ids
        span *= WIDEN


def _without_index_scans(connection: Connection, page: Select[Any]) -> list[int]:
    """Run ``page`` (ids) with plain index scans disabled, in this transaction only.

    Between the floor and the newest row there are a few thousand rows; the planner, which
    thinks parsing a row's text cheap, then scans them through the time index and parses every
    one (45 ms for a word in 6% of mentions at 1,000,000 rows) instead of ANDing that range
    with the GIN index (6 ms). Bitmap scans stay allowed (the brand check then reads
    ``mention_brands`` through a bitmap too: index-only scans need ``enable_indexscan``).
    """
    previous = connection.execute(
        text(
            "SELECT current_setting('enable_indexscan'), "
            "set_config('enable_indexscan', 'off', true)"
        )
    ).scalar_one()
    try:
        return [int(i) for i in connection.execute(page).scalars()]
    finally:
        connection.execute(
            text("SELECT set_config('enable_indexscan', :previous, true)"), {"previous": previous}
        )
