"""Escalation timers: an unacknowledged incident tells more people as time passes.

Each incident has one ``escalations`` row per policy it was routed to, holding the policy as it
was when the incident opened (``plan``), the next level to fire, the loop and ``next_at``. A
timer starts (``waiting`` -> ``active``) when the incident's parent message is posted, so quiet
hours or a Slack outage never make it fire before the alert itself is seen. Firing a level and
queuing its messages (a thread reply with ``reply_broadcast``, DMs, other channels) commit in one
transaction with the row's next level and time: a restart neither repeats nor skips a level, and
one that missed several levels fires each of them in order when it comes back.

Acknowledging or resolving an incident stops its timers (``IncidentBook`` does it in the same
transaction); ``tick`` also stops any it finds on an incident that is no longer open.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Connection, RowMapping

from monitor.alerts.incidents import IncidentBook, aware, parent_payload
from monitor.alerts.rules import Policy, policy_from_snapshot
from monitor.archive import schema
from monitor.archive.engine import SQLITE_BEGIN_OPTION
from monitor.clock import Clock

log = logging.getLogger(__name__)

LIVE = ("waiting", "active")


class EscalationEngine:
    """Fires due escalation levels on the injected clock; call ``tick`` from the delivery loop."""

    def __init__(self, engine: Engine, book: IncidentBook, clock: Clock) -> None:
        self.engine = engine
        self.book = book
        self.clock = clock

    def next_due(self) -> datetime | None:
        """When the earliest active timer fires (None if none is running)."""
        e = schema.escalations
        with self.engine.connect() as conn:
            when = conn.execute(
                select(func.min(e.c.next_at)).where(e.c.status == "active")
            ).scalar_one()
        return None if when is None else aware(when)

    def tick(self) -> int:
        """Start timers whose alert was posted and fire every level that is due; returns how
        many levels fired."""
        e = schema.escalations
        now = self.clock.now()
        with self.engine.connect() as conn:
            ids = list(
                conn.execute(
                    select(e.c.id)
                    .where(
                        (e.c.status == "waiting")
                        | ((e.c.status == "active") & (e.c.next_at <= now))
                    )
                    .order_by(e.c.id)
                ).scalars()
            )
        fired = 0
        for escalation_id in ids:
            fired += self._advance(escalation_id, now)
        return fired

    def _advance(self, escalation_id: int, now: datetime) -> int:
        e = schema.escalations
        options = {SQLITE_BEGIN_OPTION: "IMMEDIATE"}
        with self.engine.connect().execution_options(**options) as conn, conn.begin():
            found = (
                conn.execute(select(e).where(e.c.id == escalation_id).with_for_update())
                .mappings()
                .first()
            )
            if found is None or found["status"] not in LIVE:
                return 0
            row = dict(found)
            incident = self.book.load(conn, row["incident_id"])
            if incident["status"] != "open":
                self._set(conn, escalation_id, status="stopped", next_at=None, updated_at=now)
                return 0
            policy = policy_from_snapshot(row["plan"])
            if row["status"] == "waiting":
                started = self._posted_at(conn, incident)
                if started is None:
                    return 0  # the alert itself is not out yet
                next_at = started + policy.offset(row["loop"], row["level"])
                self._set(
                    conn,
                    escalation_id,
                    status="active",
                    started_at=started,
                    next_at=next_at,
                    updated_at=now,
                )
                row = {**row, "status": "active", "started_at": started, "next_at": next_at}
            return self._fire_due(conn, row, incident, policy, now)

    def _fire_due(
        self,
        conn: Connection,
        row: dict[str, Any],
        incident: RowMapping,
        policy: Policy,
        now: datetime,
    ) -> int:
        started = aware(row["started_at"])
        level, loop = int(row["level"]), int(row["loop"])
        next_at: datetime | None = aware(row["next_at"])
        fired = 0
        while next_at is not None and next_at <= now:
            self._fire(conn, incident, policy, level, loop, policy.offset(loop, level))
            fired += 1
            level += 1
            if level == len(policy.levels):
                level, loop = 0, loop + 1
            next_at = None if loop > policy.repeat else started + policy.offset(loop, level)
        self._set(
            conn,
            int(row["id"]),
            level=level,
            loop=loop,
            next_at=next_at,
            status="active" if next_at is not None else "done",
            updated_at=now,
        )
        return fired

    def _fire(
        self,
        conn: Connection,
        incident: RowMapping,
        policy: Policy,
        level: int,
        loop: int,
        after: timedelta,
    ) -> None:
        step = policy.levels[level]
        incident_id = int(incident["id"])
        minutes = round(after.total_seconds() / 60)
        state = dict(incident["state"] or {})
        state["escalated"] = {"level": level + 1, "loop": loop, "minutes": minutes}
        conn.execute(
            schema.incidents.update()
            .where(schema.incidents.c.id == incident_id)
            .values(state=state)
        )
        incident = self.book.load(conn, incident_id)
        payload = parent_payload(incident)
        details = {
            "level": level + 1,
            "levels": len(policy.levels),
            "loop": loop,
            "minutes": minutes,
            "mentions": list(step.mention),
        }
        reply = dict(payload)
        reply.update(kind="update", event="escalated", broadcast=True, **details)
        self.book.enqueue(conn, incident_id, "update", reply)
        # The configured name of the thread's channel (levels name channels the same way).
        thread_channel = payload.get("channel") or incident["slack_channel"]
        self.book.enqueue_level(
            conn, incident_id, payload, step, level + 1, thread_channel, extra=details
        )
        log.info(
            "incident #%s unacknowledged for %d min: escalated to level %d",
            incident_id,
            minutes,
            level + 1,
        )

    def _posted_at(self, conn: Connection, incident: RowMapping) -> datetime | None:
        """When the incident's parent message went out (None while it has not)."""
        if incident["slack_ts"] is None:
            return None
        o = schema.outbox
        sent = conn.execute(
            select(func.min(o.c.sent_at)).where(
                o.c.incident_id == incident["id"], o.c.sent_at.is_not(None), o.c.kind != "notice"
            )
        ).scalar_one()
        return aware(sent) if sent is not None else self.clock.now()

    def _set(self, conn: Connection, escalation_id: int, **values: object) -> None:
        e = schema.escalations
        conn.execute(e.update().where(e.c.id == escalation_id).values(**values))
