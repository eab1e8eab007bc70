"""Polls one source: owns failure counting, backoff and pausing so every connector behaves the
same.

A failing source is reported once when it starts failing and once when it recovers, not on
every poll; in between each poll still writes its one summary line. A source whose credentials
are refused (:class:`AuthFailed`) or whose API endpoint is gone (:class:`EndpointGone`) pauses:
ops is told once (log line, and the Slack ops channel when configured) with the source's name
and what to fix, the other sources carry on, and the paused one is only probed once an hour
until it works again (or the daemon is reloaded after the fix). After every poll the source's
health is saved in the archive for `uproar sources`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from connectors.base import (
    AuthFailed,
    Connector,
    ConnectorError,
    EndpointGone,
    Mention,
    RateLimited,
)
from monitor.clock import Clock
from monitor.daemon.ops import OpsNotifier
from monitor.daemon.source_health import SourceHealth, load_health, save_health
from monitor.errors import ArchiveError
from monitor.pipeline import IngestResult, Pipeline

log = logging.getLogger("uproar.poll")

# Backoff after consecutive failures doubles from one interval up to this cap.
MAX_BACKOFF = timedelta(hours=1)
# A paused source (credentials refused, endpoint gone) is quietly tried again this often, so it
# resumes by itself once ops has fixed the cause.
PAUSED_PROBE = timedelta(hours=1)


@dataclass(slots=True)
class PollOutcome:
    source: str
    ok: bool
    skipped: bool = False
    new: int = 0
    duplicates: int = 0
    unmatched: int = 0
    errors: int = 0
    backfilled: int = 0  # first poll: history kept but not alerted on
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    mentions: list[Mention] = field(default_factory=list)  # the new ones, for `uproar poll`
    received: int = 0  # items the source returned
    paused: bool = False  # the source is paused until ops fixes its credentials or endpoint


class SourceRunner:
    def __init__(
        self,
        name: str,
        connector: Connector,
        pipeline: Pipeline,
        queries: Sequence[str],
        clock: Clock,
        every: timedelta,
        lookback: timedelta = timedelta(days=1),
        *,
        ops: OpsNotifier | None = None,
        persist_health: bool = True,
    ) -> None:
        self.name = name
        self.connector = connector
        self.pipeline = pipeline
        self.queries = list(queries)
        self.clock = clock
        self.every = every
        # On a source's first poll only this much history is kept, and none of it alerts.
        self.lookback = lookback
        self.ops = ops or OpsNotifier()
        self.persist_health = persist_health
        self.failures = 0
        self.backoff_until: datetime | None = None
        self.last_error: str | None = None
        self.paused: str | None = None  # why the source is paused, or None
        # Held while the connector is in use: polls and engagement refreshes run in different
        # scheduler threads, and not every client library is thread-safe (praw is not).
        self.lock = threading.Lock()
        self._health_warned = False
        self.health = self._restore_health()

    # -- polling -------------------------------------------------------------------------------

    def poll_once(self, *, dry_run: bool = False, force: bool = False) -> PollOutcome:
        with self.lock:
            return self._poll(dry_run=dry_run, force=force)

    def _poll(self, *, dry_run: bool, force: bool) -> PollOutcome:
        now = self.clock.now()
        if not force and self.backoff_until is not None and now < self.backoff_until:
            return PollOutcome(self.name, ok=False, skipped=True, paused=self.paused is not None)
        started = time.monotonic()
        outcome = PollOutcome(self.name, ok=True)
        try:
            cursor = self.pipeline.archive.cursor(self.name)
            fetched = self.connector.fetch(self.queries, cursor)
            mentions = fetched.mentions
            outcome.received = len(mentions)
            first_run = cursor is None
            if first_run:
                oldest = now - self.lookback
                mentions = [m for m in mentions if m.created_at >= oldest]
                outcome.backfilled = len(mentions)
            ingest: IngestResult = self.pipeline.ingest(
                mentions,
                source=self.name,
                cursor=None if dry_run else fetched.cursor,
                dry_run=dry_run,
                backfill=first_run,
            )
        except (AuthFailed, EndpointGone) as exc:
            self._pause(outcome, exc)
        except RateLimited as exc:
            self._failed(outcome, exc.message, exc.retry_after)
        except ConnectorError as exc:
            self._failed(outcome, exc.message, None)
            outcome.problems = list(exc.details) or outcome.problems
            outcome.errors = len(outcome.problems)
        except Exception as exc:  # a connector or pipeline bug must not stop the daemon
            log.exception("source %s: unexpected error (a bug, please report it)", self.name)
            self._failed(outcome, f"{type(exc).__name__}: {exc}", None)
        else:
            outcome.new = len(ingest.new)
            outcome.duplicates = ingest.duplicates
            outcome.unmatched = ingest.unmatched
            outcome.mentions = [s.mention for s in ingest.new]
            outcome.problems = list(fetched.problems)
            outcome.errors = len(fetched.problems)
            for problem in fetched.problems:
                log.warning("source %s: %s", self.name, problem)
            self._succeeded()
        outcome.seconds = time.monotonic() - started
        log.info(
            "poll %s: %d new, %d duplicates, %d errors, %.1fs%s",
            self.name, outcome.new, outcome.duplicates, outcome.errors, outcome.seconds,
            " (first poll: backfill, not alerted)" if outcome.backfilled else "",
        )
        if not dry_run:
            self._record_health(outcome, now)
        return outcome

    def _failed(self, outcome: PollOutcome, message: str, retry_after: float | None) -> None:
        outcome.ok = False
        outcome.errors = 1
        outcome.problems = [message]
        self.failures += 1
        delay = min(self.every * (2 ** (self.failures - 1)), MAX_BACKOFF)
        if retry_after is not None:
            delay = max(delay, timedelta(seconds=retry_after))
        self.backoff_until = self.clock.now() + delay
        if self.failures == 1 or message != self.last_error:
            log.error(
                "source %s failing: %s; retrying with backoff (next try in %ds)",
                self.name, message, int(delay.total_seconds()),
            )
        self.last_error = message

    def _pause(self, outcome: PollOutcome, exc: ConnectorError) -> None:
        """Credentials refused or endpoint gone: stop polling, tell ops once, probe hourly."""
        outcome.ok = False
        outcome.paused = True
        outcome.errors = 1
        outcome.problems = [exc.message]
        self.failures += 1
        self.backoff_until = self.clock.now() + PAUSED_PROBE
        if self.paused != exc.message:
            what = ("its credentials were refused" if isinstance(exc, AuthFailed)
                    else "its API endpoint is gone (the API changed)")
            self.ops.notify(
                f"source {self.name} failing: {exc.message}; paused, {what}. The other "
                f"sources carry on. Fix it, then reload Uproar (systemctl reload uproar); "
                f"until then {self.name} is tried again every "
                f"{int(PAUSED_PROBE.total_seconds() // 60)} min."
            )
        self.paused = exc.message
        self.last_error = exc.message

    def _succeeded(self) -> None:
        if self.paused is not None:
            self.ops.notify(f"source {self.name} works again (it was paused: {self.paused})",
                            level=logging.WARNING)
        elif self.failures:
            log.warning("source %s recovered after %d failed polls", self.name, self.failures)
        self.failures = 0
        self.backoff_until = None
        self.last_error = None
        self.paused = None

    # -- health in the archive -----------------------------------------------------------------

    def _restore_health(self) -> SourceHealth:
        """The saved health of this source (a restarted daemon keeps a pause reported once)."""
        now = self.clock.now()
        try:
            saved = load_health(self.pipeline.archive.engine, self.name)
        except ArchiveError as exc:
            log.warning("source %s: cannot read its saved health: %s", self.name, exc)
            saved = []
        if not saved:
            return SourceHealth(self.name, updated_at=now)
        health = saved[0]
        self.failures = health.consecutive_failures
        self.last_error = health.last_error if health.consecutive_failures else None
        self.paused = health.paused
        return health

    def _record_health(self, outcome: PollOutcome, now: datetime) -> None:
        health = self.health
        health.updated_at = self.clock.now()
        health.consecutive_failures = self.failures
        health.paused = self.paused
        if not outcome.skipped:
            health.last_poll_at = now
            if outcome.ok:
                health.last_success_at = now
                health.items_last_poll = outcome.received
            else:
                health.last_error = self.last_error
                health.last_error_at = now
        health.next_poll_at = self.backoff_until or now + self.every
        if not self.persist_health:
            return
        self._polled_here = True
        self._save_health(health)

    def mark_stopped(self) -> None:
        """The daemon stops: no next poll (``uproar sources`` then says it is not running).
        Only a process that polled this source says so; a standby's stop changes nothing."""
        if not (self.persist_health and getattr(self, "_polled_here", False)):
            return
        self.health.updated_at = self.clock.now()
        self.health.next_poll_at = None
        self._save_health(self.health)

    def _save_health(self, health: SourceHealth) -> None:
        try:
            save_health(self.pipeline.archive.engine, health)
        except ArchiveError as exc:
            if not self._health_warned:  # once: `uproar sources` is only a view
                log.warning("source %s: %s", self.name, exc)
            self._health_warned = True
        else:
            self._health_warned = False
