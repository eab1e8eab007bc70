"""Prometheus metrics of the daemon, in a registry of their own (never the global one).

One ``Metrics`` per daemon; tests make as many as they like. The ``record_*`` methods take the
result objects the daemon already has (``PollOutcome``, ``Signal``s, ``DeliveryReport``), so
wiring is one call at each place where a result appears.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

if TYPE_CHECKING:
    from monitor.alerts.dispatch import DeliveryReport
    from monitor.daemon.runner import PollOutcome
    from monitor.signals import Signal

# A poll is an HTTP round trip or a few, plus classification of the new mentions: up to minutes.
POLL_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# One classifier batch (64 texts by default) on a CPU.
CLASSIFY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
POLL_OUTCOMES = ("ok", "error", "skipped")


def poll_label(outcome: PollOutcome) -> str:
    """``ok``, ``error`` or ``skipped`` (a poll not tried because the source is backing off)."""
    if outcome.skipped:
        return "skipped"
    return "ok" if outcome.ok else "error"


class Metrics:
    """The daemon's counters, gauges and histograms; ``exposition()`` is the /metrics body."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.mentions = Counter(
            "uproar_mentions", "New mentions archived, per source.", ["source"], registry=r
        )
        self.duplicates = Counter(
            "uproar_duplicates", "Mentions seen again (already archived).", ["source"], registry=r
        )
        self.poll_errors = Counter(
            "uproar_poll_errors",
            "Problems while polling: failed polls and per-item problems of successful ones.",
            ["source"],
            registry=r,
        )
        self.polls = Counter(
            "uproar_polls",
            "Polls by outcome (ok, error, skipped).",
            ["source", "outcome"],
            registry=r,
        )
        self.signals = Counter(
            "uproar_signals", "Detection signals raised.", ["brand", "severity"], registry=r
        )
        self.alerts_sent = Counter(
            "uproar_alerts_sent", "Alert messages delivered.", ["target"], registry=r
        )
        self.alerts_failed = Counter(
            "uproar_alerts_failed",
            "Alert messages given up on for good (retries are not counted).",
            ["target"],
            registry=r,
        )
        self.consecutive_failures = Gauge(
            "uproar_source_consecutive_failures",
            "Failed polls in a row; 0 after a success.",
            ["source"],
            registry=r,
        )
        self.last_success = Gauge(
            "uproar_source_last_success_timestamp_seconds",
            "Unix time of the source's last successful poll (0: none since start).",
            ["source"],
            registry=r,
        )
        self.outbox_pending = Gauge(
            "uproar_outbox_pending", "Alert messages waiting to be delivered.", registry=r
        )
        self.up = Gauge("uproar_up", "1 while the daemon is running.", registry=r)
        self.poll_duration = Histogram(
            "uproar_poll_duration_seconds",
            "Time for one poll: fetch, classify and archive.",
            ["source"],
            buckets=POLL_BUCKETS,
            registry=r,
        )
        self.classify_seconds = Histogram(
            "uproar_classify_seconds",
            "Time to classify one batch of texts.",
            buckets=CLASSIFY_BUCKETS,
            registry=r,
        )

    # -- recording ---------------------------------------------------------------------------

    def add_source(self, source: str) -> None:
        """Create a source's series at zero, so dashboards see it before its first poll."""
        self.mentions.labels(source)
        self.duplicates.labels(source)
        self.poll_errors.labels(source)
        for outcome in POLL_OUTCOMES:
            self.polls.labels(source, outcome)
        self.consecutive_failures.labels(source).set(0)
        self.last_success.labels(source)
        self.poll_duration.labels(source)

    def record_poll(self, outcome: PollOutcome, *, failures: int, at: datetime) -> None:
        """One finished poll; ``failures`` is the runner's consecutive-failure count after it."""
        source = outcome.source
        label = poll_label(outcome)
        self.polls.labels(source, label).inc()
        if label == "skipped":
            return
        self.poll_duration.labels(source).observe(outcome.seconds)
        self.consecutive_failures.labels(source).set(failures)
        if outcome.errors:
            self.poll_errors.labels(source).inc(outcome.errors)
        if label == "ok":
            self.mentions.labels(source).inc(outcome.new)
            self.duplicates.labels(source).inc(outcome.duplicates)
            self.last_success.labels(source).set(at.timestamp())

    def record_signals(self, signals: Iterable[Signal]) -> None:
        for signal in signals:
            self.signals.labels(signal.brand, signal.severity).inc()

    def record_delivery(self, report: DeliveryReport, target: str) -> None:
        if report.sent:
            self.alerts_sent.labels(target).inc(report.sent)
        if report.failed:
            self.alerts_failed.labels(target).inc(report.failed)

    def set_outbox_pending(self, pending: int) -> None:
        self.outbox_pending.set(pending)

    def set_up(self, up: bool) -> None:
        self.up.set(1 if up else 0)

    def observe_classify(self, seconds: float) -> None:
        self.classify_seconds.observe(seconds)

    @contextmanager
    def time_classify(self) -> Iterator[None]:
        """``with metrics.time_classify(): results = classifier.classify(texts)``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.classify_seconds.observe(time.perf_counter() - started)

    # -- exposition --------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric in this registry."""
        return generate_latest(self.registry)
