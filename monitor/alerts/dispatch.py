"""Delivers the outbox: pending alert rows go out through a ``Sender`` in order, with backoff.

Per incident the rows go strictly in order (the "open" parent before its "update" replies; a
reply waits while an earlier row of its incident is backing off). A row is marked sent, with its
message ``ts``, in its own transaction right after the send succeeds, so a row marked sent is
never sent again and a restart picks up every row that is not.

Each new thread gets a chart of the brand's last 24 hours (``monitor.alerts.chart``) right after
its parent is marked sent, when the sender can show images. The chart is best effort and tried
exactly once: a failure is logged as a warning and never fails, delays or repeats the alert, and
since the row is already marked sent, a restart never uploads it again (a crash between marking
the row sent and the upload loses that chart, by design). Thread replies never upload charts.

A send that may have reached Slack is never posted twice: each attempt is counted in the
outbox *before* the send, and each post carries its outbox id as message metadata. A row tried
before (a timeout, a 5xx, or a crash between the send and the commit) is first looked up with
``Sender.find_posted`` (``conversations.history``/``.replies``); if Slack has it, the row is
marked sent with that ``ts`` instead of being posted again.

At most one message per ``channel_interval`` (1 s in the daemon: Slack's limit) goes to a channel:
a row whose channel is busy waits (no attempt counted) until the channel is free. 429s wait for
Slack's Retry-After.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import RowMapping

from monitor.alerts.chart import chart_title, render_chart, series_end, volume_series
from monitor.alerts.incidents import aware, parent_payload
from monitor.alerts.slack import PostedMessage, Sender
from monitor.archive import schema
from monitor.clock import Clock, SimulatedClock
from monitor.errors import AlertDeliveryError

log = logging.getLogger(__name__)

# First retry after this long, doubling per attempt up to the cap (about an hour for 8 attempts).
BASE_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(minutes=30)
# A failure's text is kept in the outbox; more than this is noise.
MAX_ERROR_CHARS = 500
# Marks a row whose last attempt may have reached Slack: its retry looks for the message first.
MAYBE_POSTED = "maybe posted"
# The chart in a new thread: this many hours before the alert, in buckets of this size.
CHART_HOURS = 24
CHART_BUCKET = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class DeliveryFailure:
    """An alert that will never be delivered, with the reason to show a person."""

    outbox_id: int
    incident_id: int
    error: str


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    failures: tuple[DeliveryFailure, ...] = field(default_factory=tuple)
    deferred: int = 0  # rows that waited for their channel's rate limit

    def __add__(self, other: DeliveryReport) -> DeliveryReport:
        return DeliveryReport(
            self.sent + other.sent,
            self.retried + other.retried,
            self.failed + other.failed,
            self.failures + other.failures,
            self.deferred + other.deferred,
        )


class Dispatcher:
    """Sends due outbox rows of ``sender.target`` and records the outcome of each."""

    def __init__(
        self,
        engine: Engine,
        sender: Sender,
        clock: Clock,
        *,
        max_attempts: int = 8,
        base_delay: timedelta = BASE_DELAY,
        max_delay: timedelta = MAX_DELAY,
        charts: bool = True,
        complaint_threshold: float = 0.5,
        channel_interval: timedelta = timedelta(0),  # the app passes alerts.channel_interval
    ) -> None:
        self.engine = engine
        self.sender = sender
        self.clock = clock
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.charts = charts
        self.complaint_threshold = complaint_threshold
        self.channel_interval = channel_interval
        self._last_post: dict[str, datetime] = {}  # channel -> last post, in this process
        self._aliases: dict[str, str] = {}  # a channel's name -> its id, from Slack's answers

    # -- the outbox ------------------------------------------------------------------------------

    def _pending(self) -> Any:
        o = schema.outbox
        return (o.c.target == self.sender.target) & o.c.sent_at.is_(None) & o.c.failed_at.is_(None)

    def pending_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).where(self._pending())).scalar_one())

    def has_pending(self) -> bool:
        return self.pending_count() > 0

    def next_due(self) -> datetime | None:
        """When the earliest pending row may be tried (None if nothing is pending)."""
        with self.engine.connect() as conn:
            when = conn.execute(
                select(func.min(schema.outbox.c.next_attempt_at)).where(self._pending())
            ).scalar_one()
        return None if when is None else aware(when)

    # -- delivery --------------------------------------------------------------------------------

    def deliver_due(self) -> DeliveryReport:
        """Try every row that is due now, oldest first, keeping each incident's rows in order.

        A retryable failure ends the round: Slack down or rate-limiting for one message is
        down for all of them, and the next round comes soon enough.
        """
        now = self.clock.now()
        o = schema.outbox
        with self.engine.connect() as conn:
            rows = list(conn.execute(select(o).where(self._pending()).order_by(o.c.id)).mappings())
        report = DeliveryReport()
        waiting: set[int] = set()  # incidents with an earlier row still pending
        for row in rows:
            incident_id = row["incident_id"]
            if incident_id in waiting:
                continue
            if aware(row["next_attempt_at"]) > now:
                waiting.add(incident_id)
                continue
            outcome = self._deliver(row)
            report += outcome
            if outcome.deferred:
                waiting.add(incident_id)
            if outcome.retried:
                break
        return report

    def drain(self, max_rounds: int = 100, *, advance_clock: bool = False) -> DeliveryReport:
        """Deliver until nothing more is due (or ``max_rounds``); for replay and shutdown.

        With ``advance_clock`` and a ``SimulatedClock``, the clock is moved to each next retry
        time, so replay finishes with every alert delivered or failed for good, without sleeping.
        """
        total = DeliveryReport()
        for _ in range(max_rounds):
            round_report = self.deliver_due()
            total += round_report
            if not self.has_pending():
                break
            due = self.next_due()
            if due is not None and due > self.clock.now():
                if not (advance_clock and isinstance(self.clock, SimulatedClock)):
                    break
                self.clock.set(due)
            elif round_report.sent == 0 and round_report.failed == 0 and round_report.retried == 0:
                break  # rows due but none could move (waiting on each other): give up this drain
        return total

    def _deliver(self, row: RowMapping) -> DeliveryReport:
        incident = self._incident(row["incident_id"])
        thread_ts: str | None = incident["slack_ts"]
        payload: Mapping[str, Any] = row["payload"]
        notice = row["kind"] == "notice"  # a DM or a post in another channel, not the thread
        opens_thread = not notice and (row["kind"] == "open" or thread_ts is None)
        if opens_thread and row["kind"] != "open":
            # The parent failed for good: this reply becomes the parent, showing current state.
            payload = parent_payload(incident)
        if notice:
            channel: str | None = str(payload["deliver_to"])
        elif opens_thread:
            channel = payload.get("channel")
        else:
            channel = incident["slack_channel"]
        key = self._channel_key(channel)
        free_at = self._free_at(key)
        if free_at is not None:
            self._defer(row, free_at)
            return DeliveryReport(deferred=1)
        self._claim(row)
        try:
            posted = self._reconciled(row, channel, None if opens_thread or notice else thread_ts)
            if posted is None:
                posted = self.sender.post(
                    {**payload, "outbox_id": row["id"]},
                    thread_ts=None if opens_thread or notice else thread_ts,
                    channel=channel,
                )
        except AlertDeliveryError as exc:
            return self._failed(row, exc)
        self._posted(key, posted)
        if notice:
            self._mark_sent(row, row["incident_id"], posted.ts, None)
            return DeliveryReport(sent=1)
        self._mark_sent(row, incident["id"], posted.ts, posted.channel if opens_thread else None)
        if opens_thread:
            self._post_chart(incident, payload, posted)
        else:
            self._refresh_parent(incident["id"])
        return DeliveryReport(sent=1)

    # -- never twice, never too fast ----------------------------------------------------------

    def _reconciled(
        self, row: RowMapping, channel: str | None, thread_ts: str | None
    ) -> PostedMessage | None:
        """For a row tried before: the message Slack already has for it, if any."""
        if MAYBE_POSTED not in (row["last_error"] or "") or not self.sender.reconciles:
            return None
        where = channel or str(getattr(self.sender, "channel", "") or "")
        if not where:
            return None
        oldest = aware(row["created_at"]).timestamp() - 60
        try:
            found = self.sender.find_posted(
                row["id"], channel=where, thread_ts=thread_ts, oldest=oldest
            )
        except AlertDeliveryError as exc:
            if exc.retryable:
                raise
            # Cannot look (e.g. no channels:history scope): a possible duplicate beats a loss.
            log.warning("cannot check whether incident #%s's alert was already posted: %s",
                        row["incident_id"], exc)
            return None
        if found is not None:
            log.warning(
                "alert for incident #%s was posted by an earlier attempt (ts %s); not reposting",
                row["incident_id"],
                found.ts,
            )
        return found

    def _channel_key(self, channel: str | None) -> str:
        name = channel or str(getattr(self.sender, "channel", "") or "")
        return self._aliases.get(name, name)

    def _free_at(self, key: str) -> datetime | None:
        """When ``key`` may take the next message, if that is later than now."""
        last = self._last_post.get(key)
        if last is None or self.channel_interval <= timedelta(0):
            return None
        free = last + self.channel_interval
        return free if free > self.clock.now() else None

    def _posted(self, key: str, posted: PostedMessage) -> None:
        now = self.clock.now()
        self._last_post[key] = now
        if posted.channel != key:
            self._aliases[key] = posted.channel
            self._last_post[posted.channel] = now

    def _defer(self, row: RowMapping, until: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                schema.outbox.update()
                .where(schema.outbox.c.id == row["id"])
                .values(next_attempt_at=until)
            )

    def _claim(self, row: RowMapping) -> None:
        """Count the attempt before sending: a crash after the send is then reconciled."""
        with self.engine.begin() as conn:
            conn.execute(
                schema.outbox.update()
                .where(schema.outbox.c.id == row["id"])
                .values(attempts=row["attempts"] + 1, last_error=f"sending ({MAYBE_POSTED})")
            )

    def _post_chart(
        self, incident: RowMapping, payload: Mapping[str, Any], posted: PostedMessage
    ) -> None:
        """Best effort, one attempt: the brand's last 24 hours as a PNG in the new thread."""
        if not (self.charts and self.sender.shows_charts):
            return
        try:
            fired_at = _fired_at(incident, payload)
            series = volume_series(
                self.engine,
                incident["brand"],
                series_end(fired_at, CHART_BUCKET),
                hours=CHART_HOURS,
                bucket=CHART_BUCKET,
                complaint_threshold=self.complaint_threshold,
            )
            name = str(payload.get("brand_name") or incident["brand"])
            title = chart_title(name, CHART_HOURS)
            png = render_chart(series, title=title, marker_at=fired_at, bucket=CHART_BUCKET)
            self.sender.upload_chart(png, thread_ts=posted.ts, channel=posted.channel, title=title)
        except AlertDeliveryError as exc:
            log.warning("no volume chart for incident #%s: %s", incident["id"], exc)
        except Exception:  # a chart must never cost an alert: drawing or counting went wrong
            log.warning("no volume chart for incident #%s", incident["id"], exc_info=True)

    def _refresh_parent(self, incident_id: int) -> None:
        """Best effort: the parent message shows the incident's current numbers and status."""
        incident = self._incident(incident_id)
        if not incident["slack_ts"]:
            return
        try:
            self.sender.update(
                incident["slack_ts"], parent_payload(incident), channel=incident["slack_channel"]
            )
        except AlertDeliveryError as exc:
            log.warning("could not refresh incident #%s's Slack message: %s", incident_id, exc)

    # -- rows --------------------------------------------------------------------------------------

    def _incident(self, incident_id: int) -> RowMapping:
        t = schema.incidents
        with self.engine.connect() as conn:
            return conn.execute(select(t).where(t.c.id == incident_id)).mappings().one()

    def _mark_sent(self, row: RowMapping, incident_id: int, ts: str, channel: str | None) -> None:
        now = self.clock.now()
        with self.engine.begin() as conn:
            conn.execute(
                schema.outbox.update()
                .where(schema.outbox.c.id == row["id"])
                .values(sent_at=now, message_ts=ts, attempts=row["attempts"] + 1, last_error=None)
            )
            if channel is not None:
                conn.execute(
                    schema.incidents.update()
                    .where(schema.incidents.c.id == incident_id)
                    .values(slack_ts=ts, slack_channel=channel)
                )

    def _failed(self, row: RowMapping, exc: AlertDeliveryError) -> DeliveryReport:
        now = self.clock.now()
        attempts = row["attempts"] + 1
        error = str(exc).splitlines()[0][:MAX_ERROR_CHARS] if str(exc) else type(exc).__name__
        if exc.retryable and exc.retry_after is None:  # a timeout or 5xx: Slack may have it
            error = f"{error} ({MAYBE_POSTED})"
        values: dict[str, Any] = {"attempts": attempts, "last_error": error}
        gives_up = not exc.retryable or attempts >= self.max_attempts
        if gives_up:
            values["failed_at"] = now
            if exc.retryable:
                values["last_error"] = error = f"gave up after {attempts} attempts: {error}"
        else:
            values["next_attempt_at"] = now + self.backoff(attempts, exc.retry_after)
        with self.engine.begin() as conn:
            conn.execute(
                schema.outbox.update().where(schema.outbox.c.id == row["id"]).values(**values)
            )
        if gives_up:
            log.error("alert for incident #%s failed for good: %s", row["incident_id"], error)
            failure = DeliveryFailure(row["id"], row["incident_id"], error)
            return DeliveryReport(failed=1, failures=(failure,))
        log.warning(
            "alert for incident #%s not delivered (attempt %d), retrying at %s: %s",
            row["incident_id"],
            attempts,
            values["next_attempt_at"].isoformat(),
            error,
        )
        return DeliveryReport(retried=1)

    def backoff(self, attempts: int, retry_after: float | None = None) -> timedelta:
        """Delay before attempt ``attempts + 1``: Slack's Retry-After if given, else doubling."""
        if retry_after is not None:
            return timedelta(seconds=retry_after)
        delay = self.base_delay * (2 ** max(0, attempts - 1))
        return min(delay, self.max_delay)


def _fired_at(incident: Mapping[Any, Any], payload: Mapping[str, Any]) -> datetime:
    """When the alert fired: its signal's time (data time in a replay), else the opening time."""
    at = payload.get("at")
    if isinstance(at, str):
        try:
            return aware(datetime.fromisoformat(at))
        except ValueError:
            pass
    return aware(incident["opened_at"])
