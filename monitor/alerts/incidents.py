"""Signals become incidents: one spreading story of one brand is one incident and one Slack thread.

``IncidentBook.record`` decides, in one transaction, whether a signal opens a new incident or
joins the brand's open one, stores the signal, and queues what to say in the outbox. Nothing is
sent here; ``monitor.alerts.dispatch`` delivers the outbox. Because the decision and the queued
message commit together, a restart neither loses nor repeats an alert.

Outbox payloads are plain JSON (see ``signal_summary``) holding everything a renderer needs, so
delivering an alert never needs the detector, the config or the mention rows.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection, CursorResult, RowMapping

from monitor.archive import schema
from monitor.clock import Clock
from monitor.errors import UproarError
from monitor.signals import SEVERITY_RANK, Example, Signal

Target = Literal["slack", "console"]

OPEN_STATUSES = ("open", "acknowledged")

# Examples kept per payload: renderers show fewer; more would only bloat the outbox.
MAX_STORED_EXAMPLES = 20
# A post's text is cut here before it is stored; Slack could never show more in one section.
MAX_STORED_TEXT = 3000
# A count this many times the last notified one is news now, not at the next quiet-period end.
GROWTH_WORTH_TELLING = 1.2


class UnknownIncident(UproarError):
    """No incident has this id."""

    def __init__(self, incident_id: int) -> None:
        super().__init__(f"no incident #{incident_id}")
        self.incident_id = incident_id


@dataclass(frozen=True, slots=True)
class RecordedAlert:
    """What ``record`` did with a signal.

    ``outbox_id`` is None when the signal joined an incident without anything worth a message.
    """

    incident_id: int
    signal_id: int
    opened: bool
    outbox_id: int | None
    kind: Literal["open", "update"] | None


def aware(when: datetime) -> datetime:
    """SQLite hands datetimes back naive; every time we store is UTC."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def example_dict(example: Example) -> dict[str, Any]:
    text = example.text
    if len(text) > MAX_STORED_TEXT:
        text = text[: MAX_STORED_TEXT - 1] + "…"
    return {
        "source": example.source,
        "source_id": example.source_id,
        "url": example.url,
        "text": text,
        "author_handle": example.author_handle,
        "author_followers": example.author_followers,
        "reach": example.reach,
        "created_at": aware(example.created_at).isoformat(),
    }


def signal_summary(signal: Signal) -> dict[str, Any]:
    """The signal as plain JSON: the numbers, the reasons and the most-shared examples."""
    examples = sorted(signal.examples, key=lambda e: e.reach, reverse=True)[:MAX_STORED_EXAMPLES]
    return {
        "brand": signal.brand,
        "brand_name": signal.brand_name,
        "signal_kind": signal.kind,
        "severity": signal.severity,
        "at": aware(signal.at).isoformat(),
        "window_minutes": round(signal.window.total_seconds() / 60),
        "count": signal.count,
        "expected": signal.expected,
        "spread": signal.spread,
        "score": signal.score,
        "reasons": list(signal.reasons),
        "examples": [example_dict(e) for e in examples],
    }


def title_for(signal: Signal) -> str:
    return f"Complaints about {signal.brand_name} are spiking"


def parent_payload(incident: Mapping[Any, Any]) -> dict[str, Any]:
    """The parent Slack message for an incident row, showing its current state."""
    state = incident["state"] or {}
    payload: dict[str, Any] = dict(state.get("summary", {}))
    payload.update(
        kind="open",
        event="signal",
        incident_id=incident["id"],
        title=incident["title"],
        status=incident["status"],
        severity=incident["severity"],
        peak_count=incident["peak_count"],
        opened_at=aware(incident["opened_at"]).isoformat(),
        signal_count=state.get("signal_count", 1),
        acknowledged_by=incident["acknowledged_by"],
    )
    if incident["resolved_at"] is not None:
        payload["resolved_at"] = aware(incident["resolved_at"]).isoformat()
    return payload


def _new_id(result: CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None  # an INSERT into a table with an integer primary key
    return int(key[0])


def _rank(severity: str) -> int:
    return SEVERITY_RANK.get(severity, 0)


class IncidentBook:
    """Turns signals into incidents and queued messages, all in the archive.

    A signal joins the brand's open or acknowledged incident whose last signal is within
    ``join_window`` of it; otherwise it opens a new incident. A joining signal queues a thread
    reply only when it is news: a higher severity, a count ``GROWTH_WORTH_TELLING`` times the last
    one told, or any higher count once ``quiet_period`` has passed since the last message.
    """

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        *,
        join_window: timedelta = timedelta(hours=6),
        quiet_period: timedelta = timedelta(minutes=30),
        target: Target = "slack",
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.join_window = join_window
        self.quiet_period = quiet_period
        self.target = target
        # SQLite's deferred transactions do not stop two threads opening the same incident.
        self._lock = threading.Lock()

    # -- signals -------------------------------------------------------------------------------

    def record(self, signal: Signal) -> RecordedAlert:
        with self._lock, self.engine.begin() as conn:
            incident = self._joinable_incident(conn, signal)
            if incident is None:
                return self._open(conn, signal)
            return self._join(conn, incident, signal)

    def _joinable_incident(self, conn: Connection, signal: Signal) -> RowMapping | None:
        t = schema.incidents
        rows = conn.execute(
            select(t)
            .where(t.c.brand == signal.brand, t.c.status.in_(OPEN_STATUSES))
            .order_by(t.c.last_signal_at.desc(), t.c.id.desc())
        ).mappings()
        at = aware(signal.at)
        for row in rows:
            if abs(at - aware(row["last_signal_at"])) <= self.join_window:
                return row
        return None

    def _open(self, conn: Connection, signal: Signal) -> RecordedAlert:
        now = self.clock.now()
        summary = signal_summary(signal)
        state = {
            "summary": summary,
            "signal_count": 1,
            "notified": {"count": signal.count, "severity": signal.severity, "at": now.isoformat()},
        }
        result = conn.execute(
            schema.incidents.insert().values(
                brand=signal.brand,
                status="open",
                severity=signal.severity,
                title=title_for(signal),
                opened_at=now,
                updated_at=now,
                last_signal_at=aware(signal.at),
                peak_count=signal.count,
                state=state,
            )
        )
        incident_id = _new_id(result)
        signal_id = self._insert_signal(conn, incident_id, signal, summary)
        incident = self._load(conn, incident_id)
        outbox_id = self._enqueue(conn, incident_id, "open", parent_payload(incident))
        return RecordedAlert(incident_id, signal_id, True, outbox_id, "open")

    def _join(self, conn: Connection, incident: RowMapping, signal: Signal) -> RecordedAlert:
        now = self.clock.now()
        summary = signal_summary(signal)
        state = dict(incident["state"] or {})
        notified = dict(state.get("notified") or {})
        severity = max(incident["severity"], signal.severity, key=_rank)
        newsworthy = self._newsworthy(signal, notified, now)
        if newsworthy:
            state["notified"] = {
                "count": signal.count,
                "severity": signal.severity,
                "at": now.isoformat(),
            }
        state["summary"] = summary
        state["signal_count"] = int(state.get("signal_count", 1)) + 1
        conn.execute(
            schema.incidents.update()
            .where(schema.incidents.c.id == incident["id"])
            .values(
                severity=severity,
                peak_count=max(incident["peak_count"], signal.count),
                last_signal_at=max(aware(incident["last_signal_at"]), aware(signal.at)),
                updated_at=now,
                state=state,
            )
        )
        signal_id = self._insert_signal(conn, incident["id"], signal, summary)
        if not newsworthy:
            return RecordedAlert(incident["id"], signal_id, False, None, None)
        payload = parent_payload(self._load(conn, incident["id"]))
        payload.update(
            kind="update",
            event="signal",
            severity=signal.severity,
            previous_count=notified.get("count"),
            previous_severity=notified.get("severity"),
        )
        outbox_id = self._enqueue(conn, incident["id"], "update", payload)
        return RecordedAlert(incident["id"], signal_id, False, outbox_id, "update")

    def _newsworthy(self, signal: Signal, notified: Mapping[str, Any], now: datetime) -> bool:
        if not notified:
            return True
        if _rank(signal.severity) > _rank(str(notified.get("severity", "info"))):
            return True
        told = int(notified.get("count", 0))
        if signal.count <= told:
            return False
        if signal.count >= told * GROWTH_WORTH_TELLING:
            return True
        told_at = datetime.fromisoformat(str(notified["at"]))
        return now - told_at >= self.quiet_period

    # -- people ----------------------------------------------------------------------------------

    def acknowledge(self, incident_id: int, by: str) -> bool:
        """Mark an open incident acknowledged; False if it was already acknowledged or resolved."""
        with self._lock, self.engine.begin() as conn:
            incident = self._load(conn, incident_id)
            if incident["status"] != "open":
                return False
            now = self.clock.now()
            self._set(
                conn,
                incident_id,
                status="acknowledged",
                acknowledged_by=by,
                acknowledged_at=now,
                updated_at=now,
            )
            self._enqueue_event(conn, incident_id, "acknowledged", by)
            return True

    def resolve(self, incident_id: int, by: str) -> bool:
        """Resolve an incident (a new signal then opens a new one); False if already resolved."""
        with self._lock, self.engine.begin() as conn:
            incident = self._load(conn, incident_id)
            if incident["status"] == "resolved":
                return False
            now = self.clock.now()
            self._set(conn, incident_id, status="resolved", resolved_at=now, updated_at=now)
            self._enqueue_event(conn, incident_id, "resolved", by)
            return True

    def _enqueue_event(self, conn: Connection, incident_id: int, event: str, by: str) -> None:
        payload = parent_payload(self._load(conn, incident_id))
        payload.update(kind="update", event=event, by=by)
        self._enqueue(conn, incident_id, "update", payload)

    # -- rows --------------------------------------------------------------------------------------

    def _load(self, conn: Connection, incident_id: int) -> RowMapping:
        t = schema.incidents
        row = conn.execute(select(t).where(t.c.id == incident_id)).mappings().first()
        if row is None:
            raise UnknownIncident(incident_id)
        return row

    def _set(self, conn: Connection, incident_id: int, **values: Any) -> None:
        t = schema.incidents
        conn.execute(t.update().where(t.c.id == incident_id).values(**values))

    def _insert_signal(
        self, conn: Connection, incident_id: int, signal: Signal, summary: Mapping[str, Any]
    ) -> int:
        result = conn.execute(
            schema.signals.insert().values(
                incident_id=incident_id,
                brand=signal.brand,
                kind=signal.kind,
                severity=signal.severity,
                at=aware(signal.at),
                count=signal.count,
                expected=signal.expected,
                spread=signal.spread,
                score=signal.score,
                reasons=summary["reasons"],
                examples=summary["examples"],
            )
        )
        return _new_id(result)

    def _enqueue(
        self, conn: Connection, incident_id: int, kind: str, payload: Mapping[str, Any]
    ) -> int:
        now = self.clock.now()
        result = conn.execute(
            schema.outbox.insert().values(
                incident_id=incident_id,
                target=self.target,
                kind=kind,
                payload=dict(payload),
                created_at=now,
                attempts=0,
                next_attempt_at=now,
            )
        )
        return _new_id(result)
