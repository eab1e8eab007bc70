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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.engine import Connection, CursorResult, RowMapping

from monitor.alerts.rules import (
    AlertFacts,
    Decision,
    Level,
    Router,
    RoutingConfig,
    policy_snapshot,
)
from monitor.alerts.silences import active_silences
from monitor.archive import schema
from monitor.archive.engine import SQLITE_BEGIN_OPTION
from monitor.clock import Clock
from monitor.detect.stories import text_key
from monitor.errors import UproarError
from monitor.signals import SEVERITY_RANK, Example, Signal, example_dict

Target = Literal["slack", "console"]

OPEN_STATUSES = ("open", "acknowledged")

# Examples kept per payload: renderers show fewer; more would only bloat the outbox.
MAX_STORED_EXAMPLES = 20
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


def signal_summary(signal: Signal) -> dict[str, Any]:
    """The signal as plain JSON: the numbers, the reasons and the most-shared examples.

    With a story each example says how many other posts of it repeat its text (``reposts``);
    the story's numbers and its seed (first complaint) are under ``story``.
    """
    facts = signal.story_facts or {}
    # Most shared first (the story's seed is kept apart, under story.seed, and quoted first).
    examples = sorted(signal.examples, key=lambda e: e.reach, reverse=True)[:MAX_STORED_EXAMPLES]
    reposts = facts.get("reposts") or {}
    stored = []
    for example in examples:
        row = example_dict(example)
        repeated = reposts.get(text_key(example.text))
        if repeated:
            row["reposts"] = int(repeated)
        stored.append(row)
    story: dict[str, Any] | None = None
    if facts:
        seed = facts.get("seed")
        story = {k: v for k, v in facts.items() if k not in ("seed", "reposts")}
        story["seed"] = None
        if isinstance(seed, Example):
            story["seed"] = example_dict(seed)
            if reposts.get(text_key(seed.text)):
                story["seed"]["reposts"] = int(reposts[text_key(seed.text)])
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
        "examples": stored,
        "story_id": signal.story_id,  # the archive's stories row, if the signal has a story
        "story_title": signal.story_title,
        "story": story,
    }


def facts_of(signal: Signal, complaint_severity: int | None = None) -> AlertFacts:
    """What routes match on: brand, severity, signal kind, the quoted posts' sources and their
    complaint severity (see ``add_complaint_severity``)."""
    sources = {e.source for e in signal.examples}
    extra = getattr(signal, "source", None)  # a signal about one source's story, if it says so
    if isinstance(extra, str) and extra:
        sources.add(extra)
    return AlertFacts(
        signal.brand, signal.severity, signal.kind, tuple(sorted(sources)), complaint_severity
    )


def add_complaint_severity(conn: Connection, summary: dict[str, Any]) -> int | None:
    """Read the archived complaint severity of each quoted post into ``summary`` (each example's
    ``complaint_severity``, and the alert's: the median level of those complaints, the higher
    of the two middle ones) and return the alert's; None when no quoted post has one."""
    examples = summary.get("examples") or []
    keys = sorted({(str(e.get("source")), str(e.get("source_id"))) for e in examples})
    if not keys:
        return None
    t = schema.mentions
    # (source, source_id) pairs: each one a lookup in the unique index, however big the archive.
    rows = conn.execute(
        select(t.c.source, t.c.source_id, t.c.severity).where(
            or_(*(and_(t.c.source == source, t.c.source_id == sid) for source, sid in keys))
        )
    ).all()
    found = {(r.source, r.source_id): r.severity for r in rows if r.severity is not None}
    levels = []
    for example in examples:
        level = found.get((example.get("source"), str(example.get("source_id"))))
        if level is not None:
            example["complaint_severity"] = int(level)
            levels.append(int(level))
    if not levels:
        return None
    level = sorted(levels)[len(levels) // 2]
    summary["complaint_severity"] = level
    return level


def title_for(signal: Signal) -> str:
    return f"Complaints about {signal.brand_name} are spiking"


def parent_payload(incident: Mapping[Any, Any]) -> dict[str, Any]:
    """The parent Slack message for an incident row, showing its current state."""
    state = incident["state"] or {}
    payload: dict[str, Any] = dict(state.get("summary", {}))
    if state.get("seed"):  # the story's first complaint, kept in every version of the parent
        payload["seed"] = state["seed"]
    if state.get("story_url"):
        payload["story_url"] = state["story_url"]
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
    route = state.get("route") or {}
    if route.get("channel"):
        payload["channel"] = route["channel"]
    if route.get("mentions"):
        payload["mentions"] = list(route["mentions"])
    escalated = state.get("escalated")
    if escalated:
        payload["escalated"] = escalated
    if incident["acknowledged_at"] is not None:
        payload["acknowledged_at"] = aware(incident["acknowledged_at"]).isoformat()
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
        target: str = "slack",
        router: Router | None = None,
        public_url: str = "",
    ) -> None:
        self.engine = engine
        self.public_url = public_url  # serve.public_url: alerts link to the story there
        self.clock = clock
        self.join_window = join_window
        self.quiet_period = quiet_period
        self.target = target
        # Without a router: one default route to the sender's own channel, no escalation.
        self.router = router or Router(RoutingConfig(), "")
        # SQLite's deferred transactions do not stop two threads opening the same incident.
        self._lock = threading.Lock()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction that takes SQLite's write lock up front, so the daemon and an
        `uproar alerts` command in another process wait for each other instead of failing."""
        options = {SQLITE_BEGIN_OPTION: "IMMEDIATE"}
        with self.engine.connect().execution_options(**options) as conn, conn.begin():
            yield conn

    # -- signals -------------------------------------------------------------------------------

    def record(self, signal: Signal) -> RecordedAlert:
        with self._lock, self._write() as conn:
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
        decision = self._decide(conn, signal, now, add_complaint_severity(conn, summary))
        muted = self._muted_by(conn, signal, decision)
        state = {
            "summary": summary,
            "signal_count": 1,
            "notified": {"count": signal.count, "severity": signal.severity, "at": now.isoformat(),
                         "title": signal.story_title},
            "route": route_state(decision, muted),
        }
        self._keep_story(state, summary, signal)
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
        if muted:
            return RecordedAlert(incident_id, signal_id, True, None, None)
        outbox_id = self._announce(conn, incident_id, decision)
        return RecordedAlert(incident_id, signal_id, True, outbox_id, "open")

    # -- routing -----------------------------------------------------------------------------------

    def _decide(
        self, conn: Connection, signal: Signal, now: datetime, complaint_severity: int | None
    ) -> Decision:
        facts = facts_of(signal, complaint_severity)
        return self.router.decide(facts, now, active_silences(conn, now))

    def _muted_by(
        self, conn: Connection, signal: Signal, decision: Decision, *, exclude: int = 0
    ) -> str | None:
        """Why nothing is sent for this signal: a silence or a more severe open incident."""
        if decision.silenced_by is not None:
            return decision.silenced_by.describe()
        t = schema.incidents
        others = conn.execute(
            select(t.c.id, t.c.severity).where(
                t.c.brand == signal.brand, t.c.status.in_(OPEN_STATUSES), t.c.id != exclude
            )
        ).all()
        for other_id, severity in others:
            if self.router.inhibits(signal.severity, [severity]):
                return f"inhibited by open {severity} incident #{other_id}"
        return None

    def _announce(self, conn: Connection, incident_id: int, decision: Decision) -> int:
        """Queue the parent message, level-1 DMs and the escalation timers of every route."""
        held = decision.quiet_until
        outbox_id = self.enqueue(
            conn, incident_id, "open", parent_payload(self.load(conn, incident_id)), due=held
        )
        self._start_escalations(conn, incident_id, decision, held)
        return outbox_id

    def _start_escalations(
        self, conn: Connection, incident_id: int, decision: Decision, held: datetime | None
    ) -> list[str]:
        """Timers for routes whose policy has not started on this incident; returns the
        level-1 mentions of the new ones (the caller shows them)."""
        e = schema.escalations
        known = set(
            conn.execute(select(e.c.policy).where(e.c.incident_id == incident_id)).scalars()
        )
        now = self.clock.now()
        posted = self.load(conn, incident_id)["slack_ts"] is not None
        mentions: list[str] = []
        thread_channel = decision.channel or None
        for route in decision.routes:
            if route.policy_name in known:
                continue
            known.add(route.policy_name)
            first = route.policy.levels[0]
            mentions.extend(m for m in first.mention if m not in mentions)
            payload = parent_payload(self.load(conn, incident_id))
            self.enqueue_level(conn, incident_id, payload, first, 1, thread_channel, due=held)
            more = len(route.policy.levels) > 1 or route.policy.repeat > 0
            level, loop = (1, 0) if len(route.policy.levels) > 1 else (0, 1)
            # Timers count from the parent's post; one already posted counts from now.
            status = "active" if posted else "waiting"
            conn.execute(
                e.insert().values(
                    incident_id=incident_id,
                    route=route.name,
                    policy=route.policy_name,
                    plan=policy_snapshot(route.policy),
                    level=level,
                    loop=loop,
                    status=status if more else "done",
                    started_at=now if posted else None,
                    next_at=now + route.policy.offset(loop, level) if posted and more else None,
                    updated_at=now,
                )
            )
        return mentions

    def enqueue_level(
        self,
        conn: Connection,
        incident_id: int,
        payload: Mapping[str, Any],
        step: Level,
        number: int,
        thread_channel: str | None,
        *,
        due: datetime | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """A level's messages outside the thread: DMs, another channel, webhooks, email."""
        for user in step.dm:
            self.enqueue_notice(conn, incident_id, payload, user, level=number, due=due,
                                extra=extra)
        if step.channel and thread_channel and step.channel != thread_channel:
            self.enqueue_notice(conn, incident_id, payload, step.channel, level=number, due=due,
                                extra=extra)
        for target, names in (("webhook", step.webhook), ("email", step.email)):
            for name in names:
                self.enqueue_notice(conn, incident_id, payload, name, level=number, due=due,
                                    extra=extra, target=target)

    def enqueue_notice(
        self,
        conn: Connection,
        incident_id: int,
        payload: Mapping[str, Any],
        to: str,
        *,
        level: int,
        due: datetime | None = None,
        extra: Mapping[str, Any] | None = None,
        target: str | None = None,
    ) -> int:
        """A message outside the thread: a DM to a user, a post in another channel, a webhook
        call or an email (``target``; default: this book's Slack or console target)."""
        notice = dict(payload)
        notice.update(kind="notice", event="escalated" if level > 1 else "alert", level=level)
        notice["deliver_to"] = to
        notice.update(extra or {})
        return self.enqueue(conn, incident_id, "notice", notice, due=due, target=target)

    def _join(self, conn: Connection, incident: RowMapping, signal: Signal) -> RecordedAlert:
        now = self.clock.now()
        summary = signal_summary(signal)
        complaint_severity = add_complaint_severity(conn, summary)
        state = dict(incident["state"] or {})
        route = dict(state.get("route") or {})
        if route.get("muted"):
            return self._join_muted(conn, incident, signal, state)
        notified = dict(state.get("notified") or {})
        severity = max(incident["severity"], signal.severity, key=_rank)
        newsworthy = self._newsworthy(signal, notified, now)
        if newsworthy:
            state["notified"] = {
                "count": signal.count,
                "severity": signal.severity,
                "at": now.isoformat(),
                "title": signal.story_title or notified.get("title"),
            }
        state["summary"] = summary
        self._keep_story(state, summary, signal)
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
        decision = self._decide(conn, signal, now, complaint_severity)
        if decision.quiet_until is None:
            self._release_held(conn, incident["id"], now)  # e.g. a warning turned critical
        mentions: list[str] = []
        if incident["status"] == "open" and _rank(signal.severity) > _rank(incident["severity"]):
            # A more severe story may take new routes (the executives' policy): start them.
            mentions = self._start_escalations(conn, incident["id"], decision, None)
        if not newsworthy:
            return RecordedAlert(incident["id"], signal_id, False, None, None)
        payload = parent_payload(self.load(conn, incident["id"]))
        payload.update(
            kind="update",
            event="signal",
            severity=signal.severity,
            previous_count=notified.get("count"),
            previous_severity=notified.get("severity"),
            previous_at=notified.get("at"),
        )
        if signal.story_title and notified.get("title") not in (None, signal.story_title):
            payload["previous_title"] = notified["title"]
        if mentions:
            payload["mentions"] = mentions
            payload["broadcast"] = True
        else:
            payload.pop("mentions", None)
        outbox_id = self.enqueue(conn, incident["id"], "update", payload)
        return RecordedAlert(incident["id"], signal_id, False, outbox_id, "update")

    def _join_muted(
        self, conn: Connection, incident: RowMapping, signal: Signal, state: dict[str, Any]
    ) -> RecordedAlert:
        """A signal for an incident nothing was sent for: announce it once no longer muted."""
        now = self.clock.now()
        summary = signal_summary(signal)
        decision = self._decide(conn, signal, now, add_complaint_severity(conn, summary))
        others = self._muted_by(conn, signal, decision, exclude=incident["id"])
        state["summary"] = summary
        state["signal_count"] = int(state.get("signal_count", 1)) + 1
        state["route"] = route_state(decision, others)
        if not others:
            state["notified"] = {
                "count": signal.count,
                "severity": signal.severity,
                "at": now.isoformat(),
            }
        conn.execute(
            schema.incidents.update()
            .where(schema.incidents.c.id == incident["id"])
            .values(
                severity=max(incident["severity"], signal.severity, key=_rank),
                peak_count=max(incident["peak_count"], signal.count),
                last_signal_at=max(aware(incident["last_signal_at"]), aware(signal.at)),
                updated_at=now,
                state=state,
            )
        )
        signal_id = self._insert_signal(conn, incident["id"], signal, summary)
        if others:
            return RecordedAlert(incident["id"], signal_id, False, None, None)
        outbox_id = self._announce(conn, incident["id"], decision)
        return RecordedAlert(incident["id"], signal_id, False, outbox_id, "open")

    def _keep_story(self, state: dict[str, Any], summary: dict[str, Any], signal: Signal) -> None:
        """Remember the story's seed (the earliest first complaint told) and its dashboard link,
        so every later version of the parent message still shows them."""
        seed = (summary.get("story") or {}).get("seed")
        kept = state.get("seed")
        if seed and (not kept or str(seed["created_at"]) < str(kept["created_at"])):
            state["seed"] = seed
        if signal.story_id is not None and self.public_url:
            state["story_url"] = f"{self.public_url.rstrip('/')}/#story/{signal.story_id}"

    def _release_held(self, conn: Connection, incident_id: int, now: datetime) -> None:
        """Send now what quiet hours held back for this incident (never-tried rows only)."""
        o = schema.outbox
        conn.execute(
            o.update()
            .where(
                o.c.incident_id == incident_id,
                o.c.sent_at.is_(None),
                o.c.failed_at.is_(None),
                o.c.attempts == 0,
                o.c.next_attempt_at > now,
            )
            .values(next_attempt_at=now)
        )

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
        with self._lock, self._write() as conn:
            incident = self.load(conn, incident_id)
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
            self._stop_escalations(conn, incident_id, now)
            self._enqueue_event(conn, incident_id, "acknowledged", by)
            return True

    def resolve(self, incident_id: int, by: str) -> bool:
        """Resolve an incident (a new signal then opens a new one); False if already resolved."""
        with self._lock, self._write() as conn:
            incident = self.load(conn, incident_id)
            if incident["status"] == "resolved":
                return False
            now = self.clock.now()
            self._set(conn, incident_id, status="resolved", resolved_at=now, updated_at=now)
            self._stop_escalations(conn, incident_id, now)
            self._enqueue_event(conn, incident_id, "resolved", by)
            return True

    def merge_stories(self, absorbed: int, survivor: int) -> int | None:
        """Story ``absorbed`` turned out to be part of story ``survivor``: their open incidents
        become one. The older incident (and its Slack thread) survives with both incidents'
        signals, peak and severity; the other is closed, and its thread is told where the story
        continues. Returns the surviving incident's id (None when neither story had one)."""
        with self._lock, self._write() as conn:
            t = schema.incidents
            rows = conn.execute(
                select(t).where(t.c.status.in_(OPEN_STATUSES)).order_by(t.c.id)
            ).mappings().all()

            def about(story_id: int) -> list[RowMapping]:
                return [r for r in rows
                        if ((r["state"] or {}).get("summary") or {}).get("story_id") == story_id]

            found = about(survivor) + about(absorbed)
            if not found:
                return None
            keep = min(found, key=lambda r: r["id"])
            now = self.clock.now()
            for row in found:
                state = dict(row["state"] or {})
                summary = dict(state.get("summary") or {})
                summary["story_id"] = survivor
                state["summary"] = summary
                self._set(conn, row["id"], state=state, updated_at=now)
            for gone in (r for r in found if r["id"] != keep["id"]):
                self._fold(conn, keep, gone, now)
            return int(keep["id"])

    def _fold(self, conn: Connection, keep: RowMapping, gone: RowMapping, now: datetime) -> None:
        """Incident ``gone`` becomes part of ``keep``: signals moved, numbers combined, its
        escalations stopped, a reply in each thread saying so."""
        s = schema.signals
        conn.execute(s.update().where(s.c.incident_id == gone["id"]).values(
            incident_id=keep["id"]))
        kept = self.load(conn, keep["id"])
        state = dict(kept["state"] or {})
        gone_state = gone["state"] or {}
        state["signal_count"] = int(state.get("signal_count", 1)) + int(
            gone_state.get("signal_count", 1))
        if gone_state.get("seed") and (
            not state.get("seed")
            or str(gone_state["seed"]["created_at"]) < str(state["seed"]["created_at"])
        ):
            state["seed"] = gone_state["seed"]
        state.setdefault("merged_from", []).append(int(gone["id"]))
        self._set(
            conn, keep["id"], state=state, updated_at=now,
            severity=max(kept["severity"], gone["severity"], key=_rank),
            peak_count=max(kept["peak_count"], gone["peak_count"]),
            last_signal_at=max(aware(kept["last_signal_at"]), aware(gone["last_signal_at"])),
        )
        closed = dict(gone_state)
        closed["merged_into"] = int(keep["id"])
        self._set(conn, gone["id"], status="resolved", resolved_at=now, updated_at=now,
                  state=closed)
        self._stop_escalations(conn, gone["id"], now)
        title = ((kept["state"] or {}).get("summary") or {}).get("story_title") or kept["title"]
        for incident_id, other, event in ((gone["id"], keep["id"], "merged_into"),
                                          (keep["id"], gone["id"], "merged_from")):
            payload = parent_payload(self.load(conn, incident_id))
            payload.update(kind="update", event=event, other_incident=int(other),
                           other_title=title, by="uproar")
            self.enqueue(conn, incident_id, "update", payload)  # each reply refreshes its parent

    def silence(self, incident_id: int, by: str, duration: timedelta) -> int:
        """Silence the incident's brand for ``duration`` (new alerts are recorded, not sent) and
        stop this incident's escalation; returns the silence id."""
        with self._lock, self._write() as conn:
            incident = self.load(conn, incident_id)
            now = self.clock.now()
            result = conn.execute(
                schema.silences.insert().values(
                    matchers={"brand": [incident["brand"]]},
                    reason=f"silenced from incident #{incident_id}",
                    created_by=by,
                    created_at=now,
                    ends_at=now + duration,
                )
            )
            self._stop_escalations(conn, incident_id, now)
            payload = parent_payload(incident)
            payload.update(
                kind="update", event="silenced", by=by, minutes=round(duration.total_seconds() / 60)
            )
            self.enqueue(conn, incident_id, "update", payload)
            return _new_id(result)

    def _stop_escalations(self, conn: Connection, incident_id: int, now: datetime) -> None:
        e = schema.escalations
        conn.execute(
            e.update()
            .where(e.c.incident_id == incident_id, e.c.status.in_(("waiting", "active")))
            .values(status="stopped", next_at=None, updated_at=now)
        )

    def _enqueue_event(self, conn: Connection, incident_id: int, event: str, by: str) -> None:
        payload = parent_payload(self.load(conn, incident_id))
        payload.update(kind="update", event=event, by=by)
        self.enqueue(conn, incident_id, "update", payload)
        # Webhooks and mailboxes that heard about the incident hear how it ended.
        o = schema.outbox
        told = conn.execute(
            select(o.c.target, o.c.payload).where(
                o.c.incident_id == incident_id, o.c.target.in_(("webhook", "email"))
            ).order_by(o.c.id)
        ).all()
        seen: set[tuple[str, str]] = set()
        for target, notice in told:
            key = (str(target), str((notice or {}).get("deliver_to")))
            if key in seen:
                continue
            seen.add(key)
            event_payload = {**payload, "kind": "notice", "deliver_to": key[1]}
            self.enqueue(conn, incident_id, "notice", event_payload, target=key[0])

    # -- rows --------------------------------------------------------------------------------------

    def load(self, conn: Connection, incident_id: int) -> RowMapping:
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

    def enqueue(
        self,
        conn: Connection,
        incident_id: int,
        kind: str,
        payload: Mapping[str, Any],
        *,
        due: datetime | None = None,
        target: str | None = None,
    ) -> int:
        now = self.clock.now()
        result = conn.execute(
            schema.outbox.insert().values(
                incident_id=incident_id,
                target=target or self.target,
                kind=kind,
                payload=dict(payload),
                created_at=now,
                attempts=0,
                next_attempt_at=max(due, now) if due is not None else now,
            )
        )
        return _new_id(result)


def route_state(decision: Decision, muted: str | None) -> dict[str, Any]:
    """What the incident remembers of its routing (shown by ``uproar alerts list``)."""
    first = decision.routes[0].policy.levels[0]
    mentions: list[str] = []
    for route in decision.routes:
        mentions.extend(m for m in route.policy.levels[0].mention if m not in mentions)
    return {
        "routes": [r.name for r in decision.routes],
        "policies": [r.policy_name for r in decision.routes],
        "channel": first.channel or decision.channel or None,
        "mentions": mentions,
        "muted": muted,
        "held_until": decision.quiet_until.isoformat() if decision.quiet_until else None,
    }
