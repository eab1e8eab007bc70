"""Stories: complaints about the same thing, grouped online, and a story's growth as a signal.

Each new complaint joins the most similar *open* story of its brand (one whose last mention is
within ``idle``) when the similarity reaches ``join_threshold``; otherwise it opens a new story.
The similarity of a complaint and a story is the mean of

* the cosine of the classifier's sentence embedding of the complaint and the story's centroid,
  both centred on the running mean of every embedding seen (without centring, any two posts
  score 0.7–0.8 on the bundled model's shallow layers); used once ``MIN_CENTRING`` embeddings
  were seen, and only when the classifier provides embeddings;
* the share of the complaint's key phrases (idf-weighted, brand name removed, see
  ``monitor.detect.phrases``) that the story's mentions share.

Without an embedding the similarity is the phrase share alone.

:meth:`StoryTracker.evaluate` turns a story that grows fast into a ``story_growth`` signal, and
:meth:`StoryTracker.enrich` attaches the busiest story to a brand's volume signal: its title,
its numbers, and its seed and most-shared posts (which may be older than the volume window).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import numpy as np

from monitor.detect.phrases import PhraseStats, brand_words, phrases
from monitor.signals import Example, Severity, Signal

# Centring needs a mean of this many embeddings before it helps more than it distorts.
MIN_CENTRING = 20
# A story remembers its most-shared posts up to this many.
MAX_TOP_POSTS = 5
# Phrase counts kept per story (the most frequent); bounds memory on a very large story.
MAX_STORY_PHRASES = 400
# A phrase shared by this share of a story's mentions counts fully as "shared".
FULL_SUPPORT = 0.2
# How much a post's own (unshared) phrases count against the phrases it shares with a story.
UNSHARED_WEIGHT = 0.5
HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class StorySettings:
    """Grouping and the story-growth signal (defaults measured in ``bench/story_scenario.py``)."""

    join_threshold: float = 0.35  # similarity needed to join an open story
    idle: timedelta = timedelta(hours=24)  # a story without a mention this long is closed
    max_open: int = 300  # open stories per brand; the stalest are closed first
    window: timedelta = timedelta(minutes=30)  # story growth counts mentions in this window
    min_count: int = 10  # a story needs this many complaints in the window to signal
    min_share: float = 0.5  # ... and this share of the brand's complaints in the window
    # ... and this × its count in the window before (×1.5 per 30 min is ×2.25 per hour; 2.0
    # missed stories doubling every 40-60 min, bench/story_scenario.py --growth-ratio)
    growth_ratio: float = 1.5
    cooldown: timedelta = timedelta(hours=2)  # per story; a doubling signals sooner
    warning_count: int = 20  # window count for "warning" (or growth ≥ warning_growth)
    warning_growth: float = 3.0
    critical_count: int = 50  # window count and growth for "critical"
    critical_growth: float = 4.0
    max_examples: int = 5

    def __post_init__(self) -> None:
        if not 0.0 < self.join_threshold <= 1.0:
            raise ValueError("join_threshold must be in (0, 1]")
        if self.idle <= timedelta(0) or self.window <= timedelta(0):
            raise ValueError("idle and window must be positive")


@dataclass(slots=True)
class Story:
    """One story of one brand, in memory. ``id`` is the archive's, once saved."""

    brand: str
    brand_name: str
    first_seen: datetime
    last_seen: datetime
    id: int | None = None
    count: int = 0
    reach: int = 0
    centroid_sum: np.ndarray | None = None
    embedded: int = 0
    phrase_counts: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)
    seed: Example | None = None
    top: list[Example] = field(default_factory=list)
    times: deque[datetime] = field(default_factory=deque)  # member times, the last 2 hours
    title: str = ""
    dirty: bool = True
    alerted_at: datetime | None = None
    alerted_count: int = 0

    def centroid(self) -> np.ndarray | None:
        if self.centroid_sum is None or self.embedded == 0:
            return None
        return self.centroid_sum / self.embedded

    def in_window(self, end: datetime, span: timedelta) -> int:
        """Members heard in ``(end - span, end]``."""
        start = end - span
        return sum(1 for t in self.times if start < t <= end)

    def rate_per_hour(self, now: datetime) -> int:
        return self.in_window(now, HOUR)

    def growth_per_hour(self, now: datetime) -> float:
        """Mentions in the last hour over the hour before (the hour before counts at least 1)."""
        last = self.in_window(now, HOUR)
        before = self.in_window(now - HOUR, HOUR)
        return last / max(before, 1)

    def most_shared(self) -> list[Example]:
        """The seed first, then the most-shared posts, without repeats."""
        out: list[Example] = []
        seen: set[tuple[str, str]] = set()
        for ex in ([self.seed] if self.seed else []) + self.top:
            if (ex.source, ex.source_id) not in seen:
                seen.add((ex.source, ex.source_id))
                out.append(ex)
        return out


@dataclass(frozen=True, slots=True)
class Assignment:
    story: Story
    similarity: float  # to the story before joining it (1.0 for a story it opened)
    opened: bool


def reach_of(example: Example) -> int:
    """Total reach of one post: author followers plus its engagement."""
    return (example.author_followers or 0) + example.reach


class StoryTracker:
    """Every brand's open stories, on any clock; deterministic for the same input order."""

    def __init__(self, settings: StorySettings | None = None) -> None:
        self.settings = settings or StorySettings()
        self.stats = PhraseStats()
        self._open: dict[str, list[Story]] = {}
        self._brand_words: dict[str, set[str]] = {}
        self._brand_times: dict[str, deque[datetime]] = {}
        self._mean_sum: np.ndarray | None = None
        self._mean_n = 0

    # -- input ----------------------------------------------------------------------------

    def observe_embedding(self, embedding: np.ndarray) -> None:
        """Add any mention's embedding to the running mean used for centring."""
        vec = np.asarray(embedding, dtype=np.float64)
        self._mean_sum = vec.copy() if self._mean_sum is None else self._mean_sum + vec
        self._mean_n += 1

    def assign(
        self,
        brand: str,
        brand_name: str,
        text: str,
        example: Example,
        at: datetime,
        embedding: np.ndarray | None = None,
    ) -> Assignment:
        """Put one complaint into a story of ``brand``: the most similar open one, or a new one."""
        at = _utc(at)
        drop = self._brand_words.get(brand)
        if drop is None:
            drop = self._brand_words[brand] = brand_words(brand, brand_name)
        doc = phrases(text, drop)
        vec = None if embedding is None else np.asarray(embedding, dtype=np.float64)
        if vec is not None:
            self.observe_embedding(vec)
        self.stats.add(doc)
        stories = self._open_stories(brand, at)
        best, best_sim = None, -1.0
        if stories:
            scores = self.similarities(stories, doc, vec)
            i = int(np.argmax(scores))
            best, best_sim = stories[i], float(scores[i])
        opened = best is None or best_sim < self.settings.join_threshold
        if opened:
            best = Story(brand=brand, brand_name=brand_name, first_seen=at, last_seen=at)
            stories.append(best)
            if len(stories) > self.settings.max_open:
                stories.sort(key=lambda s: s.last_seen, reverse=True)
                del stories[self.settings.max_open :]
            best_sim = 1.0
        assert best is not None
        best.brand_name = brand_name
        self._join(best, doc, vec, example, at)
        times = self._brand_times.setdefault(brand, deque())
        times.append(at)
        _trim(times, at - 2 * HOUR)
        return Assignment(best, best_sim, opened)

    def similarities(
        self, stories: Sequence[Story], doc: set[str], vec: np.ndarray | None
    ) -> np.ndarray:
        """The similarity of one complaint (phrases ``doc``, embedding ``vec``) to each story."""
        weights = {p: self.stats.idf(p) for p in doc}
        total = sum(weights.values())
        shares = np.array([self._phrase_share(story, weights, total) for story in stories])
        if vec is None or self._mean_n < MIN_CENTRING or self._mean_sum is None:
            return shares
        with_centroid = [i for i, story in enumerate(stories) if story.embedded]
        if not with_centroid:
            return shares
        mean = self._mean_sum / self._mean_n
        a = vec - mean
        centroids = np.stack([stories[i].centroid_sum for i in with_centroid])  # type: ignore[misc]
        counts = np.array([stories[i].embedded for i in with_centroid], dtype=np.float64)
        b = centroids / counts[:, None] - mean
        norms = np.linalg.norm(b, axis=1) * float(np.linalg.norm(a))
        cosines = np.divide(b @ a, norms, out=np.zeros(len(with_centroid)), where=norms > 0)
        out = shares.copy()
        out[with_centroid] = 0.5 * cosines + 0.5 * shares[with_centroid]
        return out

    def _phrase_share(self, story: Story, weights: dict[str, float], total: float) -> float:
        """Idf-weighted share of the complaint's phrases that the story's mentions use."""
        if not total or story.count == 0:
            return 0.0
        common = story.phrase_counts.keys() & weights.keys()
        if not common:
            return 0.0
        full = max(1.0, FULL_SUPPORT * story.count)
        counts = story.phrase_counts
        shared = sum(weights[p] * min(1.0, counts[p] / full) for p in common)
        # Unshared phrases count half: a post adds its own details to the story it joins.
        return shared / (shared + UNSHARED_WEIGHT * (total - shared))

    def _join(
        self, story: Story, doc: set[str], vec: np.ndarray | None, example: Example, at: datetime
    ) -> None:
        story.count += 1
        story.first_seen = min(story.first_seen, at)
        story.last_seen = max(story.last_seen, at)
        story.reach += reach_of(example)
        story.sources[example.source] += 1
        story.phrase_counts.update(doc)
        if len(story.phrase_counts) > 2 * MAX_STORY_PHRASES:
            story.phrase_counts = Counter(dict(story.phrase_counts.most_common(MAX_STORY_PHRASES)))
        if vec is not None:
            total = story.centroid_sum
            story.centroid_sum = vec.copy() if total is None else total + vec
            story.embedded += 1
        if story.seed is None or at < _utc(story.seed.created_at):
            story.seed = example
        story.top.append(example)
        story.top.sort(key=lambda ex: (-ex.reach, -(ex.author_followers or 0), ex.created_at))
        del story.top[MAX_TOP_POSTS:]
        story.times.append(at)
        _trim(story.times, story.last_seen - 2 * HOUR)
        story.title = self.title(story)
        story.dirty = True

    def title(self, story: Story, words: int = 3) -> str:
        """A few words: the story's top key phrases by count × idf, without repeating a word."""
        ranked = sorted(
            story.phrase_counts.items(),
            # ties (every post of a young story shares every phrase): longer words say more
            key=lambda kv: (-round(kv[1] * self.stats.idf(kv[0]), 6), -len(kv[0]), kv[0]),
        )
        if story.count >= 2:  # a phrase only one post used is no title for many
            ranked = [kv for kv in ranked if kv[1] >= 2] or ranked
        chosen: list[str] = []
        used: set[str] = set()
        for phrase, _ in ranked:
            parts = set(phrase.split())
            if parts & used:
                continue
            chosen.append(phrase)
            used |= parts
            if len(used) >= words:
                break
        return ", ".join(chosen) if chosen else "(no key phrases)"

    def restore(self, story: Story) -> None:
        """Put a story loaded from the archive back among the open ones (on start-up)."""
        self._open.setdefault(story.brand, []).append(story)
        story.dirty = False

    # -- output ---------------------------------------------------------------------------

    def open_stories(self, brand: str, now: datetime) -> list[Story]:
        return list(self._open_stories(brand, _utc(now)))

    def all_open(self) -> list[Story]:
        return [s for stories in self._open.values() for s in stories]

    def take_dirty(self) -> list[Story]:
        """Stories changed since the last call (for the archive), marked clean."""
        out = [s for s in self.all_open() if s.dirty]
        for story in out:
            story.dirty = False
        return out

    def busiest(self, brand: str, end: datetime, span: timedelta) -> Story | None:
        """The story of ``brand`` with the most mentions in ``(end - span, end]``."""
        end = _utc(end)
        best, best_n = None, 0
        for story in self._open.get(brand, []):
            if story.last_seen <= end - span:
                continue
            n = story.in_window(end, span)
            if n > best_n or (n == best_n and best is not None and story.count > best.count):
                best, best_n = story, n
        return best if best_n > 0 else None

    def evaluate(self, now: datetime) -> list[Signal]:
        """``story_growth`` signals for stories that grow fast at ``now``."""
        s = self.settings
        now = _utc(now)
        signals: list[Signal] = []
        for brand, stories in self._open.items():
            brand_n = _count_since(self._brand_times.get(brand, deque()), now - s.window, now)
            for story in stories:
                if story.last_seen <= now - s.window:  # nothing new: most stories, most buckets
                    continue
                n = story.in_window(now, s.window)
                if n < s.min_count:
                    continue
                before = story.in_window(now - s.window, s.window)
                if n / max(brand_n, 1) < s.min_share or n < s.growth_ratio * before:
                    continue
                recently = story.alerted_at is not None and now - story.alerted_at < s.cooldown
                if recently and n < 2 * story.alerted_count:
                    continue
                story.alerted_at, story.alerted_count = now, n
                signals.append(self._growth_signal(story, now, n, before, brand_n))
        return signals

    def _growth_signal(
        self, story: Story, now: datetime, n: int, before: int, brand_n: int
    ) -> Signal:
        s = self.settings
        growth = story.growth_per_hour(now)
        if n >= s.critical_count and growth >= s.critical_growth:
            severity: Severity = "critical"
        elif n >= s.warning_count or growth >= s.warning_growth:
            severity = "warning"
        else:
            severity = "info"
        minutes = round(s.window.total_seconds() / 60)
        head = (
            f"{n} complaints in {minutes} min about one story ({n} of {brand_n} about "
            f"{story.brand_name}), {before} in the {minutes} min before"
        )
        if growth >= 1.5:
            head += f", growing ×{_factor(growth)} per hour"
        return Signal(
            brand=story.brand,
            brand_name=story.brand_name,
            kind="story_growth",
            severity=severity,
            at=now,
            window=s.window,
            count=n,
            expected=float(before),
            spread=0.0,
            score=float(growth),
            reasons=(head, *self.story_reasons(story, now)),
            examples=tuple(story.most_shared()[: s.max_examples]),
            story_id=story.id,
            story_title=story.title,
        )

    def story_reasons(self, story: Story, now: datetime) -> tuple[str, ...]:
        """The story in numbers: size, age, reach, sources, its most-shared post."""
        sources = ", ".join(f"{k} {v}" for k, v in story.sources.most_common(4))
        lines = [
            f"story “{story.title}”: {story.count:,} complaints since "
            f"{story.first_seen:%Y-%m-%d %H:%M} UTC, {story.rate_per_hour(now)} in the last "
            f"hour; reach {story.reach:,} (followers + engagement); sources: {sources}"
        ]
        top = story.top[0] if story.top else None
        if top is not None and top.reach > 0:
            lines.append(
                f"top post by @{top.author_handle.lstrip('@')}: {top.reach:,} likes, reposts "
                f"and replies; {top.author_followers or 0:,} followers"
            )
        return tuple(lines)

    def enrich(self, signal: Signal, story: Story | None = None, min_share: float = 0.2) -> Signal:
        """A volume (or spread) signal with ``story`` or its brand's busiest story attached.

        The story's seed and most-shared posts come first among the examples, even when they
        are older than the signal's window; its numbers are added to the reasons. A busiest
        story that holds less than ``min_share`` of the signal's complaints is not attached.
        """
        if signal.story_id is not None or signal.kind == "story_growth":
            return signal
        if story is None:
            story = self.busiest(signal.brand, signal.at, signal.window)
            if story is None:
                return signal
            n = story.in_window(_utc(signal.at), signal.window)
            if signal.count and n < min_share * signal.count:
                return signal
        examples = story.most_shared()
        keys = {(e.source, e.source_id) for e in examples}
        examples += [e for e in signal.examples if (e.source, e.source_id) not in keys]
        limit = max(len(signal.examples), self.settings.max_examples)
        return replace(
            signal,
            reasons=(*signal.reasons, *self.story_reasons(story, _utc(signal.at))),
            examples=tuple(examples[:limit]),
            story_id=story.id,
            story_title=story.title,
        )

    # -- internals ------------------------------------------------------------------------

    def _open_stories(self, brand: str, at: datetime) -> list[Story]:
        stories = self._open.setdefault(brand, [])
        horizon = at - self.settings.idle
        if any(s.last_seen < horizon for s in stories):
            stories[:] = [s for s in stories if s.last_seen >= horizon]
        return stories


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("stories need timezone-aware datetimes")
    return at.astimezone(UTC)


def _trim(times: deque[datetime], horizon: datetime) -> None:
    while times and times[0] < horizon:
        times.popleft()


def _count_since(times: deque[datetime], start: datetime, end: datetime) -> int:
    return sum(1 for t in times if start < t <= end)


def _factor(growth: float) -> str:
    return f"{growth:.0f}" if growth >= 10 else f"{growth:.1f}"
