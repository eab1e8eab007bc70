"""One pass of heard mentions: match brands -> drop duplicates -> classify -> archive -> detect.

Each stage is its own function and returns results; nothing here is an exception for "nothing
changed". The detector's state is in memory, so ingest and evaluate run under one lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from connectors.base import Mention
from models.base import Classification, Classifier
from models.language import detect_language, is_english
from monitor.alerts.dispatch import DeliveryReport, Dispatcher
from monitor.alerts.incidents import IncidentBook
from monitor.archive import Archive
from monitor.archive.records import StoredMention
from monitor.brands.query import BrandMatcher
from monitor.clock import Clock
from monitor.detect.brand import BrandMonitor
from monitor.detect.stage import StoryStage
from monitor.signals import Example, Signal

log = logging.getLogger(__name__)


@dataclass(slots=True)
class IngestResult:
    """What happened to one batch of mentions from one poll (or one replay step)."""

    received: int = 0
    unmatched: int = 0
    new: list[StoredMention] = field(default_factory=list)
    duplicates: int = 0


def example_of(mention: Mention) -> Example:
    eng = mention.engagement
    return Example(
        source=mention.source,
        source_id=mention.source_id,
        url=mention.url,
        text=mention.text,
        author_handle=mention.author.handle or mention.author.name,
        author_followers=mention.author.followers,
        reach=eng.likes + eng.reposts + eng.replies + max(eng.score, 0),
        created_at=mention.created_at,
    )


class Pipeline:
    """Wires the stages together; one per process, shared by every source job."""

    def __init__(
        self,
        *,
        archive: Archive,
        classifier: Classifier,
        matcher: BrandMatcher,
        brand_names: dict[str, str],
        monitor: BrandMonitor,
        incidents: IncidentBook,
        dispatcher: Dispatcher,
        clock: Clock,
        complaint_threshold: float,
        fresh_within: timedelta,
        batch_size: int = 64,
        stories: StoryStage | None = None,
    ) -> None:
        self.archive = archive
        self.classifier = classifier
        self.matcher = matcher
        self.brand_names = brand_names
        self.monitor = monitor
        self.incidents = incidents
        self.dispatcher = dispatcher
        self.clock = clock
        self.complaint_threshold = complaint_threshold
        # Only mentions at most this old feed detection: a first poll's old entries and late
        # arrivals are archived but must not look like a spike happening now.
        self.fresh_within = fresh_within
        self.batch_size = batch_size
        # Story grouping and spread signals (monitor.detect.stage); None: volume signals only.
        self.stories = stories
        self._lock = threading.Lock()
        # Called with the seconds each classifier batch took (the daemon feeds its metrics).
        self.on_classify: Callable[[float], None] | None = None
        # Classifies non-English mentions (classifier.multilingual_model); None: unclassified.
        self.multilingual: Classifier | None = None

    # -- stages --------------------------------------------------------------------------

    def match(self, mentions: Iterable[Mention]) -> tuple[list[tuple[Mention, list[str]]], int]:
        matched, unmatched = [], 0
        for mention in mentions:
            brands = self.matcher.match(mention.text)
            if brands:
                matched.append((mention, brands))
            else:
                unmatched += 1
        return matched, unmatched

    def split_known(
        self, matched: list[tuple[Mention, list[str]]]
    ) -> tuple[list[tuple[Mention, list[str]]], list[tuple[Mention, list[str]]]]:
        by_source: dict[str, list[str]] = defaultdict(list)
        for mention, _ in matched:
            by_source[mention.source].append(mention.source_id)
        known = {
            (source, sid)
            for source, ids in by_source.items()
            for sid in self.archive.known_ids(source, ids)
        }
        fresh, seen = [], []
        seen_in_batch: set[tuple[str, str]] = set()
        for item in matched:
            key = item[0].key
            if key in known or key in seen_in_batch:
                seen.append(item)
            else:
                seen_in_batch.add(key)
                fresh.append(item)
        return fresh, seen

    def classify(self, mentions: Sequence[Mention]) -> list[Classification]:
        results: list[Classification] = []
        for start in range(0, len(mentions), self.batch_size):
            chunk = mentions[start : start + self.batch_size]
            began = time.perf_counter()
            results.extend(self.classifier.classify([m.text for m in chunk]))
            if self.on_classify is not None:
                self.on_classify(time.perf_counter() - began)
        return results

    def classify_by_language(
        self, mentions: Sequence[Mention]
    ) -> list[tuple[Mention, Classification | None, Classifier | None]]:
        """Each mention (its ``lang`` filled in when the source did not say) with its result.

        English goes to the main classifier; other languages to ``multilingual`` when one is
        configured, else they stay unclassified (``None``): never scored as if English.
        """
        tagged = [
            m if m.lang else replace(m, lang=detect_language(m.text) or None) for m in mentions
        ]
        english = [i for i, m in enumerate(tagged) if is_english(m.text, m.lang)]
        other = [i for i in range(len(tagged)) if i not in set(english)]
        out: list[tuple[Mention, Classification | None, Classifier | None]] = [
            (m, None, None) for m in tagged
        ]
        for i, c in zip(english, self.classify([tagged[i] for i in english]), strict=True):
            out[i] = (tagged[i], c, self.classifier)
        if other and self.multilingual is not None:
            found = self.multilingual.classify([tagged[i].text for i in other])
            for i, c in zip(other, found, strict=True):
                out[i] = (tagged[i], c, self.multilingual)
        return out

    # -- the whole pass -------------------------------------------------------------------

    def ingest(
        self,
        mentions: Sequence[Mention],
        *,
        source: str | None = None,
        cursor: dict[str, Any] | None = None,
        dry_run: bool = False,
        backfill: bool = False,
    ) -> IngestResult:
        """Match, dedupe, classify and archive a batch (with the source's cursor, atomically).

        ``backfill``: the batch is history (a source's first poll): archived, never alerted on.
        """
        result = IngestResult(received=len(mentions))
        matched, result.unmatched = self.match(mentions)
        with self._lock:
            fresh, seen = self.split_known(matched)
        # Classification runs outside the lock: another source's batch is matched, classified
        # and stored meanwhile (a source never races itself: its runner polls one at a time,
        # and the archive turns a repeated mention into an engagement update anyway).
        classified = self.classify_by_language([m for m, _ in fresh])
        with self._lock:
            result.duplicates = len(seen)
            batch = [
                StoredMention(
                    mention=m,
                    brands=tuple(brands),
                    classification=c,
                    model_name=model.name if model else None,
                    model_version=model.version if model else None,
                )
                for (_, brands), (m, c, model) in zip(fresh, classified, strict=True)
            ]
            updates = [
                StoredMention(mention=m, brands=tuple(b), classification=None, model_name=None,
                              model_version=None)
                for m, b in seen
            ]
            if dry_run:
                result.new = batch
                return result
            if batch or updates or cursor is not None:
                stored = self.archive.store(
                    batch + updates, source=source, cursor=cursor, fetched_at=self.clock.now()
                )
                result.new = list(stored.inserted)
            if not backfill:
                self._observe(result.new)
            self._group(result.new, seen, quiet=backfill)
            return result

    def _group(
        self,
        new: Sequence[StoredMention],
        refreshed: Sequence[tuple[Mention, list[str]]],
        *,
        quiet: bool,
    ) -> None:
        if self.stories is None:
            return
        try:
            self.stories.ingest(
                new, refreshed, self.clock.now(), fresh_within=self.fresh_within, quiet=quiet
            )
        except Exception:  # the batch is archived; a story bug must not fail the source's poll
            log.exception("grouping %d mentions into stories failed", len(new))

    def _observe(self, stored: Sequence[StoredMention]) -> None:
        now = self.clock.now()
        for item in stored:
            c = item.classification
            if c is None or c.complaint < self.complaint_threshold:
                continue
            at = min(item.mention.created_at, now)
            if now - at > self.fresh_within:
                continue
            example = example_of(item.mention)
            for brand in item.brands:
                self.monitor.observe(brand, self.brand_names.get(brand, brand), at, example)

    def refreshed(self, mentions: Sequence[Mention]) -> None:
        """Mentions whose engagement a source re-read (``daemon.refresh``): spread signals."""
        if self.stories is None or not mentions:
            return
        with self._lock:
            self._group([], [(m, []) for m in mentions], quiet=False)

    def evaluate(self) -> list[Signal]:
        """Run detection at the clock's now and record every signal as an incident + outbox row."""
        with self._lock:
            signals = self.monitor.evaluate(self.clock.now())
            if self.stories is not None:
                for absorbed, survivor in self.stories.take_merges():  # one story, one thread
                    self.incidents.merge_stories(absorbed, survivor)
                signals = self.stories.evaluate(signals, self.clock.now())
            for signal in signals:
                self.incidents.record(signal)
                log.info(
                    "signal %s for %s: %s (%s)",
                    signal.kind, signal.brand, signal.severity,
                    "; ".join(signal.reasons) or f"{signal.count} complaints",
                )
            return signals

    def deliver(self) -> DeliveryReport:
        return self.dispatcher.deliver_due()

    def warm_up(self, brands: Iterable[str], history: timedelta, bucket: timedelta) -> int:
        """Seed each brand's baseline from the archive, so a restart keeps what it learned."""
        now = self.clock.now()
        seeded = 0
        for brand in brands:
            counts = self.archive.complaint_counts(
                brand, now - history, now, bucket, self.complaint_threshold
            )
            for bucket_start, count in counts:
                self.monitor.seed(brand, bucket_start, count)
                seeded += 1
        if self.stories is not None:
            resumed = self.stories.warm_up(now)
            log.info("resumed %d open stories from the archive", resumed)
        return seeded

