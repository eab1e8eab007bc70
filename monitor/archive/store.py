"""Writing mentions and poll cursors; the duplicate check the pipeline runs before classifying.

Every function takes a connection already inside a transaction, so the caller decides what
commits together (a batch of mentions and the cursor that fetched them).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from monitor.archive import bulk, rollup
from monitor.archive.convert import engagement_row, mention_row, to_db_time
from monitor.archive.records import StoredMention, StoreResult
from monitor.archive.schema import cursors, mentions

# Ids per IN (...) query: far below SQLite's and PostgreSQL's bound-parameter limits.
ID_CHUNK = 500


def _insert(connection: Connection, table: Table) -> Any:
    """The dialect's INSERT construct, which knows ON CONFLICT."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def known_ids(connection: Connection, source: str, source_ids: Sequence[str]) -> set[str]:
    """Which of ``source_ids`` of ``source`` are already archived."""
    unique = list(dict.fromkeys(source_ids))
    found: set[str] = set()
    for chunk in _chunks(unique, ID_CHUNK):
        query = select(mentions.c.source_id).where(
            mentions.c.source == source, mentions.c.source_id.in_(chunk)
        )
        found.update(connection.execute(query).scalars())
    return found


def store_mentions(
    connection: Connection, batch: Sequence[StoredMention], fetched_at: datetime
) -> StoreResult:
    """Insert new mentions with their brands; refresh only the engagement of known ones.

    ``INSERT … ON CONFLICT DO NOTHING RETURNING`` decides which mentions are new, so two
    writers storing the same mention at once (PostgreSQL) cannot both insert it. Rows are
    written in key order so concurrent writers lock them in the same order and cannot deadlock.
    """
    if not batch:
        return StoreResult(inserted=[], updated=0)
    fetched = to_db_time(fetched_at)
    key_order = sorted(range(len(batch)), key=lambda i: batch[i].mention.key)
    rows = [mention_row(batch[i], fetched) for i in key_order]
    new_ids = {
        (row.source, row.source_id): row.id for row in bulk.insert_mentions(connection, rows)
    }

    is_new = [False] * len(batch)
    brand_rows: list[dict[str, Any]] = []
    for index, item in enumerate(batch):
        mention_id = new_ids.pop(item.mention.key, None)  # pop: a repeat in the batch is an update
        if mention_id is None:
            continue
        is_new[index] = True
        complaint = item.classification.complaint if item.classification is not None else None
        created_at = to_db_time(item.mention.created_at)
        for brand in dict.fromkeys(item.brands):
            brand_rows.append(
                {
                    "mention_id": mention_id,
                    "brand": brand,
                    "created_at": created_at,
                    "complaint": complaint,
                }
            )
    if brand_rows:
        bulk.insert_brands(connection, brand_rows)
        rollup.add_brand_rows(connection, brand_rows)

    # One refresh per identity: the last copy in the batch carries the newest counts.
    latest = {batch[i].mention.key: batch[i] for i in range(len(batch)) if not is_new[i]}
    known = [engagement_row(latest[key]) for key in sorted(latest)]
    if known:
        bulk.refresh_engagement(connection, known)
    inserted = [item for index, item in enumerate(batch) if is_new[index]]
    return StoreResult(inserted=inserted, updated=len(batch) - len(inserted))


def save_cursor(
    connection: Connection, source: str, state: Mapping[str, Any], at: datetime
) -> None:
    """Insert or replace the poll cursor of ``source``."""
    statement = _insert(connection, cursors).values(
        source=source, state=dict(state), updated_at=to_db_time(at)
    )
    statement = statement.on_conflict_do_update(
        index_elements=["source"],
        set_={"state": statement.excluded.state, "updated_at": statement.excluded.updated_at},
    )
    connection.execute(statement)


def load_cursor(connection: Connection, source: str) -> dict[str, Any] | None:
    """The saved poll cursor of ``source``, or None before its first successful poll."""
    state = connection.execute(select(cursors.c.state).where(cursors.c.source == source)).scalar()
    return dict(state) if state is not None else None
