"""Polls one source: owns failure counting and backoff so every connector behaves the same.

A failing source is reported once when it starts failing and once when it recovers, not on
every poll; in between each poll still writes its one summary line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from connectors.base import Connector, ConnectorError, Mention, RateLimited
from monitor.clock import Clock
from monitor.pipeline import IngestResult, Pipeline

log = logging.getLogger("uproar.poll")

# Backoff after consecutive failures doubles from one interval up to this cap.
MAX_BACKOFF = timedelta(hours=1)


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
    ) -> None:
        self.name = name
        self.connector = connector
        self.pipeline = pipeline
        self.queries = list(queries)
        self.clock = clock
        self.every = every
        # On a source's first poll only this much history is kept, and none of it alerts.
        self.lookback = lookback
        self.failures = 0
        self.backoff_until: datetime | None = None
        self.last_error: str | None = None

    def poll_once(self, *, dry_run: bool = False, force: bool = False) -> PollOutcome:
        now = self.clock.now()
        if not force and self.backoff_until is not None and now < self.backoff_until:
            return PollOutcome(self.name, ok=False, skipped=True)
        started = time.monotonic()
        outcome = PollOutcome(self.name, ok=True)
        try:
            cursor = self.pipeline.archive.cursor(self.name)
            fetched = self.connector.fetch(self.queries, cursor)
            mentions = fetched.mentions
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
        except RateLimited as exc:
            self._failed(outcome, exc.message, exc.retry_after)
        except ConnectorError as exc:
            self._failed(outcome, exc.message, None)
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

    def _succeeded(self) -> None:
        if self.failures:
            log.warning("source %s recovered after %d failed polls", self.name, self.failures)
        self.failures = 0
        self.backoff_until = None
        self.last_error = None
