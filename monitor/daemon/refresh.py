"""Engagement refresh: re-read likes, reposts, replies, score and author followers of recent
complaints, store the new counts and keep every reading as a timestamped sample, so detection
can tell how fast a post spreads (reposts or likes per minute).

One :class:`EngagementRefresher` per source whose connector can refresh
(:attr:`connectors.base.Connector.can_refresh`), scheduled by the daemon every
``refresh.every`` (per source, else the top-level ``refresh:``). It picks the source's mentions
classified as complaints and posted within ``refresh.max_age`` (newest first, at most
``refresh.max_items``), asks the connector for their current counts, and in one transaction
updates the mentions and appends a sample per mention to ``engagement_samples`` (a mention's
first refresh also records the counts it was archived with, at the time it was fetched, so the
first rate is known right away). A paused or backing-off source is not refreshed; a failed
refresh is logged once until it works again and never stops the daemon.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from connectors.base import Author, Connector, ConnectorError, Mention
from monitor.archive import Archive
from monitor.archive.bulk import refresh_engagement
from monitor.archive.convert import engagement_row, from_db_time, to_db_time
from monitor.archive.engine import error_reason
from monitor.archive.records import StoredMention
from monitor.archive.schema import engagement_samples, mentions
from monitor.clock import Clock
from monitor.config import RefreshConfig
from monitor.errors import ArchiveError

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

    from monitor.daemon.app import App
    from monitor.daemon.runner import SourceRunner

log = logging.getLogger("uproar.refresh")

# Ids per IN (...) query: far below SQLite's and PostgreSQL's bound-parameter limits.
_ID_CHUNK = 500


@dataclass(slots=True)
class RefreshOutcome:
    source: str
    ok: bool = True
    skipped: bool = False
    asked: int = 0  # complaints whose counts were asked for
    refreshed: int = 0  # of those, the ones the source answered (the rest were deleted)
    error: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Sample:
    at: datetime
    likes: int
    reposts: int
    replies: int
    score: int
    author_followers: int | None = None


@dataclass(frozen=True, slots=True)
class Velocity:
    """How fast a mention's counts grew between two samples, per minute."""

    since: datetime
    until: datetime
    likes: float
    reposts: float
    replies: float
    score: float


@dataclass(frozen=True, slots=True)
class _Target:
    mention_id: int
    source_id: str
    fetched_at: datetime
    counts: Sample  # as archived


class EngagementRefresher:
    def __init__(
        self,
        name: str,
        connector: Connector,
        archive: Archive,
        clock: Clock,
        settings: RefreshConfig,
        complaint_threshold: float,
        runner: SourceRunner | None = None,
    ) -> None:
        self.name = name
        self.connector = connector
        self.archive = archive
        self.clock = clock
        self.settings = settings
        self.complaint_threshold = complaint_threshold
        self.runner = runner  # its pause and backoff apply to refreshes too
        self.last_error: str | None = None
        # Told the re-read mentions after they are stored (detection: engagement velocity).
        self.on_refreshed: Callable[[Sequence[Mention]], None] | None = None

    def targets(self) -> list[_Target]:
        """The complaints to refresh now: this source's, recent enough, newest first."""
        since = to_db_time(self.clock.now() - self.settings.max_age)
        m = mentions.c
        query = (
            select(m.id, m.source_id, m.fetched_at, m.likes, m.reposts, m.replies, m.score,
                   m.author_followers)
            .where(m.source == self.name, m.complaint >= self.complaint_threshold,
                   m.created_at >= since)
            .order_by(m.created_at.desc(), m.id.desc())
            .limit(self.settings.max_items)
        )
        with self.archive.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [_Target(r.id, r.source_id, from_db_time(r.fetched_at),
                        Sample(from_db_time(r.fetched_at), r.likes, r.reposts, r.replies,
                               r.score, r.author_followers))
                for r in rows]

    def complaint_posts(self) -> list[str]:
        """Source ids of the recent top-level complaints (videos, not their comments), newest
        first: YouTube follows their view counts and comment threads on every poll."""
        since = to_db_time(self.clock.now() - self.settings.max_age)
        m = mentions.c
        query = (
            select(m.source_id)
            .where(m.source == self.name, m.complaint >= self.complaint_threshold,
                   m.created_at >= since, m.parent_id.is_(None))
            .order_by(m.created_at.desc(), m.id.desc())
            .limit(self.settings.max_items)
        )
        try:
            with self.archive.engine.connect() as connection:
                return [r.source_id for r in connection.execute(query)]
        except SQLAlchemyError as exc:  # the poll goes on without the watched videos
            log.warning("refresh %s: could not list complaint videos: %s", self.name,
                        error_reason(exc))
            return []

    def refresh_once(self) -> RefreshOutcome:
        outcome = RefreshOutcome(self.name)
        runner = self.runner
        if runner is not None and runner.backoff_until is not None \
                and self.clock.now() < runner.backoff_until:
            outcome.skipped = True
            return outcome
        started = time.monotonic()
        try:
            targets = self.targets()
            outcome.asked = len(targets)
            fresh = self._ask([t.source_id for t in targets]) if targets else []
            outcome.refreshed = self._store(targets, fresh)
            if self.on_refreshed is not None and outcome.refreshed:
                self.on_refreshed(fresh)
        except (ConnectorError, ArchiveError, SQLAlchemyError) as exc:
            self._failed(outcome, exc.message if isinstance(exc, ConnectorError) else
                         error_reason(exc) if isinstance(exc, SQLAlchemyError) else str(exc))
        except Exception as exc:  # a connector bug must not stop the daemon
            log.exception("refresh %s: unexpected error (a bug, please report it)", self.name)
            self._failed(outcome, f"{type(exc).__name__}: {exc}")
        else:
            if self.last_error is not None:
                log.warning("refresh %s works again", self.name)
            self.last_error = None
        outcome.seconds = time.monotonic() - started
        if outcome.ok:
            log.info("refresh %s: %d of %d complaints re-read, %.1fs", self.name,
                     outcome.refreshed, outcome.asked, outcome.seconds)
        return outcome

    def _ask(self, ids: list[str]) -> list[Mention]:
        if self.runner is None:
            return self.connector.refresh(ids)
        with self.runner.lock:  # never while the same connector is polling
            return self.connector.refresh(ids)

    def _failed(self, outcome: RefreshOutcome, message: str) -> None:
        outcome.ok = False
        outcome.error = message
        if message != self.last_error:
            log.error("refresh %s failing: %s", self.name, message)
        self.last_error = message

    def _store(self, targets: Sequence[_Target], fresh: Sequence[Mention]) -> int:
        """Update the counts and append the samples, in one transaction; returns how many."""
        by_id = {t.source_id: t for t in targets}
        latest = {m.source_id: m for m in fresh if m.source == self.name and m.source_id in by_id}
        if not latest:
            return 0
        now = to_db_time(self.clock.now())
        updates, samples = [], []
        with self.archive.write() as connection:
            sampled = _sampled(connection, [by_id[k].mention_id for k in latest])
            for source_id, mention in sorted(latest.items()):
                target = by_id[source_id]
                if mention.author.followers is None and target.counts.author_followers is not None:
                    mention = replace(mention, author=Author(
                        mention.author.handle, mention.author.name, target.counts.author_followers))
                updates.append(engagement_row(StoredMention(mention, (), None, None, None)))
                if target.mention_id not in sampled:
                    samples.append(_sample_row(target.mention_id, target.counts))
                eng = mention.engagement
                samples.append(_sample_row(target.mention_id, Sample(
                    now, eng.likes, eng.reposts, eng.replies, eng.score, mention.author.followers)))
            refresh_engagement(connection, updates)
            connection.execute(engagement_samples.insert(), samples)
        return len(latest)


def _sample_row(mention_id: int, sample: Sample) -> dict[str, Any]:
    return {"mention_id": mention_id, "at": to_db_time(sample.at), "likes": sample.likes,
            "reposts": sample.reposts, "replies": sample.replies, "score": sample.score,
            "author_followers": sample.author_followers}


def _chunks(items: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), _ID_CHUNK):
        yield items[start:start + _ID_CHUNK]


def _sampled(connection: Any, mention_ids: Sequence[int]) -> set[int]:
    found: set[int] = set()
    s = engagement_samples.c
    for chunk in _chunks(list(mention_ids)):
        found.update(connection.execute(
            select(s.mention_id).where(s.mention_id.in_(chunk)).distinct()).scalars())
    return found


# -- reading the history ---------------------------------------------------------------------


def engagement_history(engine: Engine, source: str, source_id: str) -> list[Sample]:
    """Every sample of one mention, oldest first."""
    s, m = engagement_samples.c, mentions.c
    query = (select(s.at, s.likes, s.reposts, s.replies, s.score, s.author_followers)
             .join_from(engagement_samples, mentions, s.mention_id == m.id)
             .where(m.source == source, m.source_id == source_id)
             .order_by(s.at, s.id))
    with engine.connect() as connection:
        return [Sample(from_db_time(r.at), r.likes, r.reposts, r.replies, r.score,
                       r.author_followers) for r in connection.execute(query)]


def velocity(samples: Sequence[Sample], *, window: timedelta | None = None) -> Velocity | None:
    """Growth per minute from the first sample in the last ``window`` (all, when None) to the
    newest; None with fewer than two samples or no time between them."""
    if len(samples) < 2:
        return None
    last = samples[-1]
    first = samples[0]
    if window is not None:
        first = next(x for x in samples if x.at >= last.at - window)
    minutes = (last.at - first.at).total_seconds() / 60
    if minutes <= 0:
        return None
    return Velocity(first.at, last.at, (last.likes - first.likes) / minutes,
                    (last.reposts - first.reposts) / minutes,
                    (last.replies - first.replies) / minutes, (last.score - first.score) / minutes)


# -- wiring into the daemon ------------------------------------------------------------------


def build_refreshers(app: App, runners: Sequence[SourceRunner]) -> list[EngagementRefresher]:
    """One refresher per polled source that can refresh and has refresh enabled."""
    from monitor.daemon.sources import refresh_settings

    out = []
    for runner in runners:
        settings = refresh_settings(app.config, runner.name)
        if runner.connector.can_refresh and settings.enabled:
            out.append(EngagementRefresher(
                runner.name, runner.connector, app.archive, app.clock, settings,
                app.config.classifier.complaint_threshold, runner))
            out[-1].on_refreshed = app.pipeline.refreshed
            watch = getattr(runner.connector, "watch", None)
            if callable(watch):  # YouTube: statistics and comments of complaint videos
                watch(out[-1].complaint_posts)
    return out


def schedule_refreshers(scheduler: BaseScheduler, refreshers: Sequence[EngagementRefresher],
                        first_run: datetime) -> None:
    from apscheduler.triggers.interval import IntervalTrigger

    for refresher in refreshers:
        scheduler.add_job(
            refresher.refresh_once,
            IntervalTrigger(seconds=refresher.settings.every.total_seconds()),
            id=f"refresh:{refresher.name}", name=f"refresh {refresher.name}",
            next_run_time=first_run + refresher.settings.every,
        )
