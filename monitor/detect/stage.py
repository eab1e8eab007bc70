"""The pipeline's story and spread stage: every classified complaint joins a story; signals out.

:meth:`StoryStage.ingest` is called by the pipeline after each archived batch: new complaints
are embedded (when the classifier can), assigned to stories and saved to the archive with their
``story_mentions`` rows; refreshed posts feed engagement velocity. :meth:`StoryStage.evaluate`
runs with the volume detector: it attaches each volume signal's story and adds the story-growth
and spread signals.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import Engine

from connectors.base import Mention
from monitor.archive.records import StoredMention
from monitor.detect import story_store
from monitor.detect.phrases import brand_words
from monitor.detect.spread import SpreadMonitor
from monitor.detect.stories import Assignment, Story, StoryTracker
from monitor.detect.topic import without_brand
from monitor.signals import Example, Signal

log = logging.getLogger(__name__)

# Posts whose story a spread signal can name (as many as SpreadMonitor follows by default).
MAX_REMEMBERED_POSTS = 20_000

Embed = Callable[[Sequence[str]], np.ndarray]
ExampleOf = Callable[[Mention], Example]


def shares_of(mention: Mention) -> int:
    """What engagement velocity counts: reposts + likes."""
    return mention.engagement.reposts + mention.engagement.likes


class StoryStage:
    """Stories and spread for every brand; ``engine`` None keeps everything in memory."""

    def __init__(
        self,
        tracker: StoryTracker,
        spread: SpreadMonitor,
        *,
        engine: Engine | None,
        embed: Embed | None,
        example_of: ExampleOf,
        complaint_threshold: float,
        brand_names: dict[str, str],
    ) -> None:
        self.tracker = tracker
        self.spread = spread
        self.engine = engine
        self.embed = embed
        self.example_of = example_of
        self.complaint_threshold = complaint_threshold
        self.brand_names = brand_names
        self._brand_words: dict[str, set[str]] = {}
        self._merges: list[tuple[Story, Story]] = []  # (absorbed, survivor) not yet taken
        # (brand, source, source_id) -> its story, for the spread signals of followed posts
        self._story_of: OrderedDict[tuple[str, str, str], Story] = OrderedDict()

    def ingest(
        self,
        new: Sequence[StoredMention],
        refreshed: Sequence[tuple[Mention, Sequence[str]]],
        now: datetime,
        *,
        fresh_within: timedelta | None = None,
        quiet: bool = False,
    ) -> int:
        """Group ``new``'s complaints into stories and save them; returns how many were grouped.

        ``fresh_within``: spread signals only for complaints at most this old; ``quiet``: none
        at all (a first poll's history). Stories take every complaint.
        """
        complaints = [
            item
            for item in new
            if item.classification is not None
            and item.classification.complaint >= self.complaint_threshold
        ]
        for item in new:
            for brand in item.brands:
                self.spread.observe_author(brand, item.mention.author.followers)
        vectors = self._embed([self.topic_text(item.mention.text, item.brands)
                               for item in complaints])
        members: list[story_store.Membership] = []
        for i, item in enumerate(complaints):
            at = min(item.mention.created_at, now)
            members += self.add_complaint(
                item.mention,
                item.brands,
                now,
                vectors[i] if vectors is not None else None,
                spread=not quiet and (fresh_within is None or now - at <= fresh_within),
            )
        for mention, _brands in [] if quiet else refreshed:
            self.spread.refresh(
                mention.source, mention.source_id, self.example_of(mention), shares_of(mention),
                now,
            )
        self._save(members, now)
        return len(complaints)

    def add_complaint(
        self,
        mention: Mention,
        brands: Sequence[str],
        now: datetime,
        embedding: np.ndarray | None = None,
        *,
        spread: bool = True,
    ) -> list[story_store.Membership]:
        """One complaint into a story of each of its brands (and, with ``spread``, followed for
        engagement and checked for a high-reach author). Nothing is saved here."""
        example = self.example_of(mention)
        at = min(mention.created_at, now)
        out = []
        for brand in brands:
            name = self.brand_names.get(brand, brand)
            assigned = self.tracker.assign(brand, name, mention.text, example, at, embedding)
            self._merges += [(gone, assigned.story) for gone in assigned.merged]
            self._story_of[(brand, mention.source, mention.source_id)] = assigned.story
            if len(self._story_of) > MAX_REMEMBERED_POSTS:
                self._story_of.popitem(last=False)
            out.append(
                story_store.Membership(
                    assigned.story,
                    mention.source,
                    mention.source_id,
                    assigned.similarity,
                    mention.created_at,
                )
            )
            if spread:
                self.spread.complaint(brand, name, example, shares_of(mention), now)
        return out

    def assign_one(
        self, mention: Mention, brand: str, embedding: np.ndarray | None
    ) -> Assignment:
        """One complaint into a story of ``brand`` at its own time (``uproar group``)."""
        name = self.brand_names.get(brand, brand)
        return self.tracker.assign(
            brand, name, mention.text, self.example_of(mention), mention.created_at, embedding
        )

    def topic_text(self, text: str, brands: Sequence[str]) -> str:
        """What the topic embedding sees: ``text`` without its brands' own names."""
        words: set[str] = set()
        for brand in brands:
            words |= self._words_of(brand)
        return without_brand(text, words)

    def _words_of(self, brand: str) -> set[str]:
        found = self._brand_words.get(brand)
        if found is None:
            found = self._brand_words[brand] = brand_words(
                brand, self.brand_names.get(brand, brand))
        return found

    def embed_texts(self, texts: list[str]) -> np.ndarray | None:
        """Topic embeddings of ``texts`` (None without an embedder, or when it failed)."""
        return self._embed(texts)

    def take_merges(self) -> list[tuple[int, int]]:
        """Stories merged since the last call, as archive ids (absorbed, survivor)."""
        out = [(gone.id, keep.survivor().id) for gone, keep in self._merges
               if gone.id is not None and keep.survivor().id is not None]
        self._merges = [(g, k) for g, k in self._merges if g.id is None or k.survivor().id is None]
        return out  # type: ignore[return-value]

    def warm_up(self, now: datetime) -> int:
        """Resume the stories still open (from the archive) after a restart."""
        if self.engine is None:
            return 0
        with self.engine.connect() as connection:
            loaded = story_store.load_open(connection, now, self.tracker.settings.idle)
        for story in loaded:
            story.brand_name = self.brand_names.get(story.brand, story.brand)
            self.tracker.restore(story)
        return len(loaded)

    def evaluate(self, volume: Sequence[Signal], now: datetime) -> list[Signal]:
        """``volume`` signals with their stories, then story-growth and spread signals."""
        out = [self.tracker.enrich(signal) for signal in volume]
        out.extend(self.tracker.evaluate(now))
        for signal in self.spread.take_signals():
            post = signal.examples[0] if signal.examples else None
            key = (signal.brand, post.source, post.source_id) if post else None
            story = self._story_of.get(key) if key else None
            story = story.survivor() if story is not None else None  # merged since
            out.append(self.tracker.enrich(signal, story))
        return out

    # -- internals ------------------------------------------------------------------------

    def _embed(self, texts: list[str]) -> np.ndarray | None:
        if self.embed is None or not texts:
            return None
        try:
            return np.asarray(self.embed(texts))
        except Exception:  # a model bug must not stop archiving; grouping falls back to phrases
            log.exception("embedding %d complaints for stories failed", len(texts))
            return None

    def _save(self, members: list[story_store.Membership], now: datetime) -> None:
        changed = self.tracker.take_dirty()
        if self.engine is None or not (changed or members):
            return
        with self.engine.begin() as connection:
            story_store.save(connection, changed, members, now)


def build_story_stage(
    *,
    engine: Engine | None,
    classifier: object,
    example_of: ExampleOf,
    complaint_threshold: float,
    brand_names: dict[str, str],
    story_similarity: float | None = None,
    embed: Embed | None = None,
    high_reach_followers: int = 100_000,
    max_examples: int = 5,
    min_count: int = 1,
) -> StoryStage:
    """The stage with the config's knobs.

    Stories embed with ``embed``, by default the topic embedder (``monitor.detect.topic``:
    MiniLM-L6 as shipped, whatever the classifier) whenever a ``classifier`` is given; without
    a classifier (the archive-only backtest) they group by key phrases.

    ``min_count`` (``detection.min_count``) also holds for story growth: a story signals with
    no fewer complaints in its window than this (nor than ``StorySettings.min_count``).
    """
    from monitor.detect.spread import SpreadSettings
    from monitor.detect.stories import StorySettings
    from monitor.detect.topic import single_threaded_blas, topic_embedder

    if embed is None and classifier is not None:
        embed = topic_embedder()
    single_threaded_blas()
    defaults = StorySettings()
    return StoryStage(
        StoryTracker(
            StorySettings(
                join_threshold=story_similarity or defaults.join_threshold,
                max_examples=max_examples,
                min_count=max(StorySettings().min_count, min_count),
            )
        ),
        SpreadMonitor(SpreadSettings(high_reach_followers=high_reach_followers)),
        engine=engine,
        embed=embed,
        example_of=example_of,
        complaint_threshold=complaint_threshold,
        brand_names=brand_names,
    )
