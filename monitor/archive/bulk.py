"""Batch statements for storing mentions, one flavour per database.

SQLite gets multi-row ``INSERT … VALUES`` / ``executemany``. PostgreSQL gets one statement per
batch whose every column is a single array parameter zipped back into rows by ``unnest()``:
a multi-row VALUES list has a placeholder per cell, which psycopg re-parses on every batch
(measured at about a third of the speed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, Connection, Row, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from monitor.archive.schema import mention_brands, mentions

_mention_columns = [c for c in mentions.columns if c.name != "id"]
_returned = (mentions.c.id, mentions.c.source, mentions.c.source_id)
_brand_columns = list(mention_brands.columns)
# Bind names of an engagement refresh (see convert.engagement_row) and the column types.
_engagement = {
    "k_source": mentions.c.source,
    "k_source_id": mentions.c.source_id,
    "likes": mentions.c.likes,
    "reposts": mentions.c.reposts,
    "replies": mentions.c.replies,
    "score": mentions.c.score,
    "author_followers": mentions.c.author_followers,
}


def _arrays(columns: dict[str, Column[Any]]) -> Any:
    """SELECT unnest(:a), unnest(:b), … — one row per array position."""
    return select(
        *(
            func.unnest(bindparam(name, type_=postgresql.ARRAY(column.type))).label(name)
            for name, column in columns.items()
        )
    )


def _by_column(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, list[Any]]:
    return {name: [row[name] for row in rows] for name in names}


_insert_mentions_pg = (
    postgresql.insert(mentions)
    .from_select([c.name for c in _mention_columns], _arrays({c.name: c for c in _mention_columns}))
    .on_conflict_do_nothing(index_elements=["source", "source_id"])
    .returning(*_returned)
)
_insert_mentions_sqlite = (
    sqlite.insert(mentions)
    .on_conflict_do_nothing(index_elements=["source", "source_id"])
    .returning(*_returned)
)

_insert_brands_pg = mention_brands.insert().from_select(
    [c.name for c in _brand_columns], _arrays({c.name: c for c in _brand_columns})
)

_engagement_rows = _arrays(_engagement).subquery("engagement")
_refresh_pg = (
    update(mentions)
    .where(
        mentions.c.source == _engagement_rows.c.k_source,
        mentions.c.source_id == _engagement_rows.c.k_source_id,
    )
    .values({name: _engagement_rows.c[name] for name in _engagement if not name.startswith("k_")})
)
_refresh_sqlite = (
    update(mentions)
    .where(
        mentions.c.source == bindparam("k_source"), mentions.c.source_id == bindparam("k_source_id")
    )
    .values({name: bindparam(name) for name in _engagement if not name.startswith("k_")})
)


def insert_mentions(connection: Connection, rows: Sequence[dict[str, Any]]) -> Sequence[Row[Any]]:
    """Insert the rows not archived yet; returns ``(id, source, source_id)`` of those inserted."""
    if connection.dialect.name == "postgresql":
        names = [c.name for c in _mention_columns]
        return connection.execute(_insert_mentions_pg, _by_column(rows, names)).all()
    return connection.execute(_insert_mentions_sqlite, list(rows)).all()


def insert_brands(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``mention_brands`` rows (all for freshly inserted mentions)."""
    if connection.dialect.name == "postgresql":
        connection.execute(_insert_brands_pg, _by_column(rows, [c.name for c in _brand_columns]))
    else:
        connection.execute(mention_brands.insert(), list(rows))


def refresh_engagement(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Overwrite engagement counts and author followers of archived mentions, by identity.

    ``rows`` must hold each identity once (PostgreSQL's UPDATE … FROM would pick any one).
    """
    if connection.dialect.name == "postgresql":
        connection.execute(_refresh_pg, _by_column(rows, list(_engagement)))
    else:
        connection.execute(_refresh_sqlite, list(rows))
