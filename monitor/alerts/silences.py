"""Silences stored in the archive (``uproar alerts silence``): matching alerts are recorded as
incidents but nothing is sent until the silence ends. Config silences live in ``rules``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from monitor.alerts.rules import ActiveSilence, Matchers
from monitor.archive import schema
from monitor.clock import Clock
from monitor.errors import UproarError


class UnknownSilence(UproarError):
    def __init__(self, silence_id: int) -> None:
        super().__init__(f"no silence #{silence_id}; list them with: uproar alerts silences")


@dataclass(frozen=True, slots=True)
class StoredSilence:
    id: int
    matchers: Matchers
    reason: str
    created_by: str
    created_at: datetime
    ends_at: datetime

    def active(self, now: datetime) -> bool:
        return self.ends_at > now


def _aware(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _row(row: Mapping[Any, Any]) -> StoredSilence:
    return StoredSilence(
        id=int(row["id"]),
        matchers=Matchers.model_validate(row["matchers"] or {}),
        reason=str(row["reason"]),
        created_by=str(row["created_by"]),
        created_at=_aware(row["created_at"]),
        ends_at=_aware(row["ends_at"]),
    )


def active_silences(conn: Connection, now: datetime) -> list[ActiveSilence]:
    """Silences not yet ended, for ``Router.decide``."""
    t = schema.silences
    rows = conn.execute(select(t).where(t.c.ends_at > now).order_by(t.c.id)).mappings()
    return [ActiveSilence(s.id, s.matchers, s.ends_at, s.reason) for s in map(_row, rows)]


class SilenceBook:
    """Create, list and end silences."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    def add(self, matchers: Matchers, duration: timedelta, reason: str, by: str) -> StoredSilence:
        if duration <= timedelta(0):
            raise UproarError("a silence needs a positive duration, like --for 2h")
        if not reason.strip():
            raise UproarError("a silence needs a reason (--reason), so others know why")
        now = self.clock.now()
        values = {
            "matchers": matchers.model_dump(mode="json", exclude_none=True),
            "reason": reason.strip(),
            "created_by": by,
            "created_at": now,
            "ends_at": now + duration,
        }
        with self.engine.begin() as conn:
            result = conn.execute(schema.silences.insert().values(**values))
            key = result.inserted_primary_key
            assert key is not None
            return _row({"id": key[0], **values})

    def list(self, *, include_ended: bool = False) -> list[StoredSilence]:
        t = schema.silences
        query = select(t).order_by(t.c.id)
        if not include_ended:
            query = query.where(t.c.ends_at > self.clock.now())
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query).mappings()]

    def end(self, silence_id: int) -> StoredSilence:
        t = schema.silences
        now = self.clock.now()
        with self.engine.begin() as conn:
            row = conn.execute(select(t).where(t.c.id == silence_id)).mappings().first()
            if row is None:
                raise UnknownSilence(silence_id)
            if _aware(row["ends_at"]) > now:
                conn.execute(t.update().where(t.c.id == silence_id).values(ends_at=now))
            return _row({**row, "ends_at": min(_aware(row["ends_at"]), now)})
