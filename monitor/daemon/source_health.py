"""Per-source health kept in the archive (table ``source_health``), so `uproar sources` can
show it from another process while the daemon runs.

The daemon's :class:`monitor.daemon.runner.SourceRunner` writes one row per source after every poll;
a restarted daemon reads it back, so a paused source stays reported once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from monitor.archive.convert import from_db_time, to_db_time
from monitor.archive.engine import error_reason
from monitor.archive.schema import source_health
from monitor.errors import ArchiveError

_TIMES = ("last_poll_at", "last_success_at", "last_error_at", "next_poll_at", "updated_at")


@dataclass(slots=True)
class SourceHealth:
    source: str
    updated_at: datetime
    last_poll_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    consecutive_failures: int = 0
    items_last_poll: int | None = None  # items the source returned in its last good poll
    next_poll_at: datetime | None = None
    paused: str | None = None  # why it stopped polling (refused credentials, endpoint gone)


def save_health(engine: Engine, health: SourceHealth) -> None:
    """Insert or replace one source's row (its own short transaction)."""
    row: dict[str, Any] = asdict(health)
    for key in _TIMES:
        if row[key] is not None:
            row[key] = to_db_time(row[key])
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(source_health).values(**row)
    statement = statement.on_conflict_do_update(
        index_elements=["source"],
        set_={k: getattr(statement.excluded, k) for k in row if k != "source"},
    )
    try:
        with engine.begin() as connection:
            connection.execute(statement)
    except SQLAlchemyError as exc:
        raise ArchiveError(f"saving the health of source {health.source!r} failed: "
                           f"{error_reason(exc)}") from exc


def load_health(engine: Engine, source: str | None = None) -> list[SourceHealth]:
    """The saved rows (of one source, or all), by source name."""
    query = select(source_health).order_by(source_health.c.source)
    if source is not None:
        query = query.where(source_health.c.source == source)
    try:
        with engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
    except SQLAlchemyError as exc:
        raise ArchiveError(f"reading source health failed: {error_reason(exc)}") from exc
    out = []
    for row in rows:
        data = dict(row)
        for key in _TIMES:
            if data[key] is not None:
                data[key] = from_db_time(data[key])
        out.append(SourceHealth(**data))
    return out
