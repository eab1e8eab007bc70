"""Stories: complaints about the same thing, grouped online, and a story's growth as a signal.

Each new complaint joins the most similar *open* story of its brand when the similarity reaches
``join_threshold``; otherwise it opens a new story. With topic embeddings (MiniLM-L6's full six
layers, ``monitor.detect.topic``) the similarity of a complaint and a story is

    CENTROID_WEIGHT × cos(post, story centroid) × decay(time since the story's last mention)
    + (1 − CENTROID_WEIGHT) × max over the story's recent members of cos(post, member) × decay(age)

where ``decay(t) = exp(−t / decay)``: a story told an hour ago is likelier than one told
yesterday. The centroid keeps a story on topic; the nearest member lets it follow a story that
drifts (the first reports, then the reactions). Without an embedding the similarity is the share
of the complaint's key phrases (idf-weighted, brand name removed, ``monitor.detect.phrases``)
that the story's mentions share.

When a story's centroid comes close to another open story's (``merge_threshold``, same decay),
the two are one story told twice: the younger is absorbed into the older (counts, history, posts
combined; ``merged_into`` names the survivor) and the merge is reported to the caller.

A story is closed once no complaint could join it any more (its last mention is older than
``decay × ln(1 / join_threshold)``, or ``idle``): closing never splits a live story. The
``max_open`` cap only guards memory against a flood of one-post stories; when it bites, the
stalest stories close and it is logged.

Titles are a post's own words (:func:`headline`): the seed post's at first, replaced only when
another post represents the story clearly better (``TITLE_MARGIN``); ``previous_title`` keeps the
old one so the alert thread can say so.

:meth:`StoryTracker.evaluate` turns a story that grows fast into a ``story_growth`` signal, and
:meth:`StoryTracker.enrich` attaches the busiest story to a brand's volume signal: its title,
its numbers, and its seed and most-shared posts (which may be older than the volume window).
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from monitor.detect.phrases import PhraseStats, brand_words, phrases
from monitor.signals import Example, Severity, Signal

log = logging.getLogger(__name__)

# A story remembers its most-shared posts up to this many.
MAX_TOP_POSTS = 5
# Phrase counts kept per story (the most frequent); bounds memory on a very large story.
MAX_STORY_PHRASES = 400
# A phrase shared by this share of a story's mentions counts fully as "shared".
FULL_SUPPORT = 0.2
# How much a post's own (unshared) phrases count against the phrases it shares with a story.
UNSHARED_WEIGHT = 0.5
# Weight of the centroid in the similarity; the rest is the nearest recent member. 0.7 and 0.5
# scored within 0.4 F1 of each other on the dev headlines (bench/stories); the centroid alone
# 3 points less (it cannot follow a story whose wording drifts).
CENTROID_WEIGHT = 0.7
# A story is compared with the other open stories for a merge every this many joins: a
# centroid drifts slowly, and the check costs as much as grouping a post.
MERGE_EVERY = 4
# Recent member embeddings kept per brand for the nearest-member term (~6 MB at 384 floats).
NEIGHBOURS = 4096
# Candidate posts for a story's title (the most representative of them may become the title).
TITLE_CANDIDATES = 12
# A title still this close (cosine) to the story's centroid says what the story is: it stays.
TITLE_FIT = 0.6
# Below that, a candidate replaces it only when this much closer to the centroid: titles stay
# put unless a clearly better one appears (the seed's own words are usually the best).
TITLE_MARGIN = 0.12
# Titles are cut to this many characters (at a word).
TITLE_CHARS = 90
HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class StorySettings:
    """Grouping and the story-growth signal (defaults measured in ``bench/stories`` and
    ``bench/story_scenario.py``)."""

    join_threshold: float = 0.35  # to join an open story (the daemon: detection.story_similarity)
    decay: timedelta = timedelta(hours=12)  # time proximity: similarity × exp(-gap / decay)
    merge_threshold: float = 0.5  # centroid similarity at which two open stories merge
    idle: timedelta = timedelta(hours=24)  # a story without a mention this long is closed
    max_open: int = 2000  # open stories per brand (memory guard); the stalest close first
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
        if not 0.0 < self.merge_threshold <= 1.0:
            raise ValueError("merge_threshold must be in (0, 1]")
        if self.idle <= timedelta(0) or self.window <= timedelta(0) or self.decay <= timedelta(0):
            raise ValueError("idle, decay and window must be positive")

    def horizon(self) -> timedelta:
        """How long after its last mention a story can still be joined (then it closes)."""
        if self.join_threshold >= 1:
            return self.idle
        return min(self.idle, self.decay * math.log(1.0 / self.join_threshold))


@dataclass(slots=True)
class Story:
    """One story of one brand, in memory. ``id`` is the archive's, once saved."""

    brand: str
    brand_name: str
    first_seen: datetime
    last_seen: datetime
    id: int | None = None
    serial: int = -1  # the tracker's own number for it (the archive's ``id`` comes later)
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
    previous_title: str | None = None  # the title before the last change, until it is shown
    title_vec: np.ndarray | None = None
    candidates: list[tuple[str, np.ndarray]] = field(default_factory=list)
    texts: Counter[str] = field(default_factory=Counter)  # posts per text (reposts are one)
    last_key: datetime | None = None  # last_seen when last_h was computed
    last_h: float = 0.0
    merged_into: Story | None = None  # set when this story was absorbed into another
    absorbed: list[Story] = field(default_factory=list)  # stories merged into this one
    dirty: bool = True
    alerted_at: datetime | None = None
    alerted_count: int = 0

    def centroid(self) -> np.ndarray | None:
        if self.centroid_sum is None or self.embedded == 0:
            return None
        return self.centroid_sum / self.embedded

    def survivor(self) -> Story:
        """This story, or the story it was merged into (followed to the end)."""
        story = self
        while story.merged_into is not None:
            story = story.merged_into
        return story

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
        """The seed first, then the most-shared posts; one post per text (reposts are one)."""
        out: list[Example] = []
        seen: set[str] = set()
        for ex in ([self.seed] if self.seed else []) + self.top:
            key = text_key(ex.text)
            if key not in seen:
                seen.add(key)
                out.append(ex)
        return out

    def reposts(self, example: Example) -> int:
        """Other posts of this story with the same text as ``example``."""
        return max(self.texts.get(text_key(example.text), 1) - 1, 0)


@dataclass(frozen=True, slots=True)
class Assignment:
    story: Story
    similarity: float  # to the story before joining it (1.0 for a story it opened)
    opened: bool
    merged: tuple[Story, ...] = ()  # stories absorbed into ``story`` by this complaint


_RT_PREFIX = re.compile(r"^\s*RT\s+@\w+:?\s*", re.IGNORECASE)
_NOT_WORD = re.compile(r"[\W_]+")


def text_key(text: str) -> str:
    """What makes two posts "the same text": words only, case and "RT @x:" ignored."""
    return _NOT_WORD.sub(" ", _RT_PREFIX.sub("", text).lower()).strip()[:300]


def _share_key(ex: Example) -> tuple[int, int, datetime]:
    return (-ex.reach, -(ex.author_followers or 0), ex.created_at)


def reach_of(example: Example) -> int:
    """Total reach of one post: author followers plus its engagement."""
    return (example.author_followers or 0) + example.reach


_URL = re.compile(r"https?://\S+|www\.\S+|pic\.twitter\.com/\S+", re.IGNORECASE)
_LEADING = re.compile(r"^(?:\s*(?:RT\b:?|@\w+:?|[-–—:|•]+))+\s*", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
_SPACE = re.compile(r"\s+")


def headline(text: str, limit: int = TITLE_CHARS) -> str:
    """A post's own words as a title: links and leading @handles dropped, its first sentence
    (when that says enough), cut at a word to ``limit`` characters."""
    text = _SPACE.sub(" ", _URL.sub(" ", text)).strip()
    text = _LEADING.sub("", text).strip()
    sentences = _SENTENCE_END.split(text)
    first = sentences[0]
    for more in sentences[1:]:  # a short first sentence says too little on its own
        if len(first.split()) >= 6 or len(first) + 1 + len(more) > limit:
            break
        first = f"{first} {more}"
    if len(first.split()) >= 4:
        text = first
    text = text.rstrip(" ,;:-–—")
    if len(text) <= limit:
        return text or "(no text)"
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:-–—")
    return (cut or text[: limit - 1]) + "…"


class _Neighbours:
    """One brand's most recent member embeddings, their times and stories (a ring buffer)."""

    def __init__(self, dim: int, capacity: int = NEIGHBOURS) -> None:
        self.vecs = np.zeros((capacity, dim), dtype=np.float32)
        self.hours = np.zeros(capacity, dtype=np.float64)
        self.owner = np.full(capacity, -1, dtype=np.int64)  # Story.serial
        self.size = 0
        self.next = 0

    def add(self, vec: np.ndarray, hours: float, story: Story) -> None:
        i = self.next
        self.vecs[i] = vec
        self.hours[i] = hours
        self.owner[i] = story.serial
        self.next = (i + 1) % len(self.owner)
        self.size = min(self.size + 1, len(self.owner))

    def rename(self, old: int, new: int) -> None:
        """Members of story ``old`` now belong to story ``new`` (a merge)."""
        self.owner[self.owner == old] = new

    def nearest(
        self, stories: Sequence[Story], vec: np.ndarray, hours: float, decay_hours: float
    ) -> np.ndarray:
        """For each of ``stories``: max over its remembered members of cos × decay(age)."""
        out = np.zeros(len(stories))
        if not self.size:
            return out
        owner = self.owner[: self.size]
        serials = np.fromiter((s.serial for s in stories), dtype=np.int64, count=len(stories))
        position = np.full(max(int(owner.max()), int(serials.max())) + 1, -1, dtype=np.int64)
        position[serials] = np.arange(len(stories))
        index = position[np.maximum(owner, 0)]
        index[owner < 0] = -1
        live = np.flatnonzero(index >= 0)
        if not len(live):
            return out
        members = self.vecs[: self.size]
        sims = members @ vec.astype(np.float32)
        ages = np.maximum(hours - self.hours[: self.size], 0.0)
        sims = sims * np.exp(-ages / decay_hours)
        np.maximum.at(out, index[live], sims[live])
        return out


def _hours(at: datetime) -> float:
    return at.timestamp() / 3600.0


def _last_hours(story: Story) -> float:
    """``story.last_seen`` in hours since the epoch (cached: asked for every story, every post)."""
    if story.last_key != story.last_seen:
        story.last_key, story.last_h = story.last_seen, _hours(story.last_seen)
    return story.last_h


def _unit(vec: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec


class StoryTracker:
    """Every brand's open stories, on any clock; deterministic for the same input order."""

    def __init__(self, settings: StorySettings | None = None) -> None:
        self.settings = settings or StorySettings()
        self.stats = PhraseStats()
        self._open: dict[str, list[Story]] = {}
        self._brand_words: dict[str, set[str]] = {}
        self._brand_times: dict[str, deque[datetime]] = {}
        self._neighbours: dict[str, _Neighbours] = {}
        self.capped = 0  # stories closed by max_open while still joinable (should stay 0)
        self._merged: list[Story] = []

        self._serial = 0  # absorbed stories not yet taken by take_dirty

    # -- input ----------------------------------------------------------------------------

    def assign(
        self,
        brand: str,
        brand_name: str,
        text: str,
        example: Example,
        at: datetime,
        embedding: np.ndarray | None = None,
    ) -> Assignment:
        """Put one complaint into a story of ``brand``: the most similar open one, or a new one;
        then merge that story with another open one that turned out to be the same."""
        at = _utc(at)
        drop = self._brand_words.get(brand)
        if drop is None:
            drop = self._brand_words[brand] = brand_words(brand, brand_name)
        doc = phrases(text, drop)
        vec = None if embedding is None else _unit(np.asarray(embedding, dtype=np.float64))
        self.stats.add(doc)
        stories = self._open_stories(brand, at)
        best, best_sim = None, -1.0
        if stories:
            scores = self.similarities(brand, stories, doc, vec, at)
            i = int(np.argmax(scores))
            best, best_sim = stories[i], float(scores[i])
        opened = best is None or best_sim < self.settings.join_threshold
        if opened:
            best = Story(brand=brand, brand_name=brand_name, first_seen=at, last_seen=at)
            best.serial, self._serial = self._serial, self._serial + 1
            stories.append(best)
            self._cap(stories, at)
            best_sim = 1.0
        assert best is not None
        best.brand_name = brand_name
        self._join(best, doc, vec, example, at, text)
        if vec is not None:
            neighbours = self._neighbours.get(brand)
            if neighbours is None:
                neighbours = self._neighbours[brand] = _Neighbours(len(vec))
            neighbours.add(vec, _hours(at), best)
        merged: list[Story] = []
        if vec is not None and not opened and best.count % MERGE_EVERY == 0:
            best = self._merge_into_one(brand, best, at, merged)
        times = self._brand_times.setdefault(brand, deque())
        times.append(at)
        _trim(times, at - 2 * HOUR)
        return Assignment(best, best_sim, opened, tuple(merged))

    def similarities(
        self,
        brand: str,
        stories: Sequence[Story],
        doc: set[str],
        vec: np.ndarray | None,
        at: datetime,
    ) -> np.ndarray:
        """The similarity of one complaint (phrases ``doc``, embedding ``vec``) to each story."""
        with_centroid = [i for i, story in enumerate(stories) if story.embedded]
        if vec is None or not with_centroid:
            weights = {p: self.stats.idf(p) for p in doc}
            total = sum(weights.values())
            return np.array([self._phrase_share(story, weights, total) for story in stories])
        decay = self.settings.decay.total_seconds() / 3600.0
        now = _hours(at)
        out = np.zeros(len(stories))
        centroids = np.stack([stories[i].centroid_sum for i in with_centroid])  # type: ignore[misc]
        norms = np.linalg.norm(centroids, axis=1)
        cosines = np.divide(centroids @ vec, norms, out=np.zeros(len(norms)), where=norms > 0)
        last = np.fromiter((_last_hours(stories[i]) for i in with_centroid), dtype=np.float64,
                           count=len(with_centroid))
        gaps = np.maximum(now - last, 0.0)
        out[with_centroid] = CENTROID_WEIGHT * cosines * np.exp(-gaps / decay)
        neighbours = self._neighbours.get(brand)
        if neighbours is not None:
            out += (1.0 - CENTROID_WEIGHT) * neighbours.nearest(stories, vec, now, decay)
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
        self,
        story: Story,
        doc: set[str],
        vec: np.ndarray | None,
        example: Example,
        at: datetime,
        text: str,
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
        key = text_key(example.text)
        story.texts[key] += 1
        if len(story.texts) > 2 * MAX_STORY_PHRASES:
            story.texts = Counter(dict(story.texts.most_common(MAX_STORY_PHRASES)))
        same = next((i for i, ex in enumerate(story.top) if text_key(ex.text) == key), None)
        if same is None:
            story.top.append(example)
        elif _share_key(example) < _share_key(story.top[same]):  # one text is quoted once
            story.top[same] = example
        story.top.sort(key=_share_key)
        del story.top[MAX_TOP_POSTS:]
        story.times.append(at)
        _trim(story.times, story.last_seen - 2 * HOUR)
        self._retitle(story, text, vec)
        story.dirty = True

    # -- titles ---------------------------------------------------------------------------

    def _retitle(self, story: Story, text: str, vec: np.ndarray | None) -> None:
        """The seed's words first; later a clearly more representative post's."""
        if not story.title:
            story.title = headline(text)
            story.title_vec = vec
        if vec is None:
            return
        if story.title_vec is None:
            story.title_vec = vec
        if all(t != text for t, _ in story.candidates):
            story.candidates.append((text, vec))
        centroid = story.centroid()
        if centroid is None:
            return
        centroid = _unit(centroid)
        scored = sorted(story.candidates, key=lambda c: -float(c[1] @ centroid))
        del scored[TITLE_CANDIDATES:]
        story.candidates = scored
        if story.count < 3:  # two posts say too little about what the story is
            return
        best_text, best_vec = scored[0]
        current = float(story.title_vec @ centroid)
        title = headline(best_text)
        if current >= TITLE_FIT:
            return
        if float(best_vec @ centroid) >= current + TITLE_MARGIN and title != story.title:
            if story.previous_title is None:
                story.previous_title = story.title
            story.title, story.title_vec = title, best_vec

    def title(self, story: Story) -> str:
        """The story's title (see :func:`headline`)."""
        return story.title or "(no text)"

    # -- merging --------------------------------------------------------------------------

    def _merge_into_one(self, brand: str, story: Story, at: datetime, out: list[Story]) -> Story:
        """Merge ``story`` with the open story of ``brand`` whose centroid is closest, while
        one reaches ``merge_threshold``; returns the survivor (the older story)."""
        stories = self._open.get(brand, [])
        decay = self.settings.decay.total_seconds() / 3600.0
        while True:
            others = [s for s in stories if s is not story and s.embedded]
            mine = story.centroid()
            if not others or mine is None:
                return story
            centroids = np.stack([s.centroid_sum for s in others])  # type: ignore[misc]
            norms = np.linalg.norm(centroids, axis=1) * float(np.linalg.norm(mine))
            cosines = np.divide(centroids @ mine, norms, out=np.zeros(len(others)), where=norms > 0)
            last = np.fromiter((_last_hours(s) for s in others), dtype=np.float64,
                               count=len(others))
            gaps = np.abs(_hours(at) - last)
            scores = cosines * np.exp(-gaps / decay)
            i = int(np.argmax(scores))
            if scores[i] < self.settings.merge_threshold:
                return story
            other = others[i]
            survivor, absorbed = sorted((story, other), key=_age_key)
            self._absorb(survivor, absorbed)
            if brand in self._neighbours:
                self._neighbours[brand].rename(absorbed.serial, survivor.serial)
            stories.remove(absorbed)
            out.append(absorbed)
            self._merged.append(absorbed)
            story = survivor

    def _absorb(self, survivor: Story, absorbed: Story) -> None:
        """``absorbed``'s members, numbers and posts become ``survivor``'s."""
        survivor.count += absorbed.count
        survivor.reach += absorbed.reach
        survivor.first_seen = min(survivor.first_seen, absorbed.first_seen)
        survivor.last_seen = max(survivor.last_seen, absorbed.last_seen)
        survivor.sources.update(absorbed.sources)
        survivor.phrase_counts.update(absorbed.phrase_counts)
        if absorbed.centroid_sum is not None:
            survivor.centroid_sum = (
                absorbed.centroid_sum.copy()
                if survivor.centroid_sum is None
                else survivor.centroid_sum + absorbed.centroid_sum
            )
            survivor.embedded += absorbed.embedded
        if absorbed.seed is not None and (
            survivor.seed is None or absorbed.seed.created_at < survivor.seed.created_at
        ):
            survivor.seed = absorbed.seed
        keys = {text_key(e.text) for e in survivor.top}
        survivor.top += [e for e in absorbed.top if text_key(e.text) not in keys]
        survivor.top.sort(key=_share_key)
        del survivor.top[MAX_TOP_POSTS:]
        survivor.texts.update(absorbed.texts)
        survivor.times = deque(sorted([*survivor.times, *absorbed.times]))
        survivor.candidates += absorbed.candidates
        survivor.absorbed.append(absorbed)
        survivor.alerted_count = max(survivor.alerted_count, absorbed.alerted_count)
        if absorbed.alerted_at is not None and (
            survivor.alerted_at is None or absorbed.alerted_at > survivor.alerted_at
        ):
            survivor.alerted_at = absorbed.alerted_at
        absorbed.merged_into = survivor
        survivor.dirty = absorbed.dirty = True

    def restore(self, story: Story) -> None:
        """Put a story loaded from the archive back among the open ones (on start-up)."""
        self._open.setdefault(story.brand, []).append(story)
        story.serial, self._serial = self._serial, self._serial + 1
        story.dirty = False

    # -- output ---------------------------------------------------------------------------

    def open_stories(self, brand: str, now: datetime) -> list[Story]:
        return list(self._open_stories(brand, _utc(now)))

    def all_open(self) -> list[Story]:
        return [s for stories in self._open.values() for s in stories]

    def take_dirty(self) -> list[Story]:
        """Stories changed since the last call (for the archive), marked clean."""
        out = [s for s in self.all_open() if s.dirty] + self._merged
        self._merged = []
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
            story_facts=self.facts(story, now),
        )

    def facts(self, story: Story, now: datetime) -> dict[str, Any]:
        """The story in numbers for an alert (see ``Signal.story_facts``)."""
        story = story.survivor()
        return {
            "count": story.count,
            "since": story.first_seen.isoformat(),
            "last_hour": story.rate_per_hour(now),
            "growth_per_hour": round(story.growth_per_hour(now), 3),
            "reach": story.reach,
            "sources": dict(story.sources.most_common(4)),
            "seed": story.seed,
            "reposts": {text_key(e.text): story.reposts(e) for e in story.most_shared()},
            "previous_title": story.previous_title,
        }

    def story_reasons(self, story: Story, now: datetime) -> tuple[str, ...]:
        """The story in numbers: size, age, reach, sources, its most-shared post."""
        sources = ", ".join(f"{k} {v}" for k, v in story.sources.most_common(4))
        lines = [
            f"the story: {story.count:,} complaints since "
            f"{story.first_seen:%Y-%m-%d %H:%M} UTC, {story.rate_per_hour(now)} in the last "
            f"hour; reach {story.reach:,} (followers + engagement); sources: {sources}"
        ]
        top = story.top[0] if story.top else None
        seed = story.seed
        is_seed = seed is not None and top is not None and (top.source, top.source_id) == (
            seed.source, seed.source_id)
        if top is not None and top.reach > 0 and not is_seed:  # the seed is quoted anyway
            lines.append(
                f"top post by @{top.author_handle.lstrip('@')}: {top.reach:,} likes, reposts "
                f"and replies; {top.author_followers or 0:,} followers"
            )
        return tuple(lines)

    def enrich(self, signal: Signal, story: Story | None = None, min_share: float = 0.2) -> Signal:
        """A volume (or spread) signal with ``story`` or its brand's busiest story attached.

        The examples are the story's seed and most-shared posts (one per text), even when they
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
        story = story.survivor()
        examples = story.most_shared()
        if len(examples) < 2:  # too young to speak for itself: the window's posts help
            keys = {text_key(e.text) for e in examples}
            examples += [e for e in signal.examples if text_key(e.text) not in keys]
        limit = max(len(signal.examples), self.settings.max_examples)
        return replace(
            signal,
            reasons=(*signal.reasons, *self.story_reasons(story, _utc(signal.at))),
            examples=tuple(examples[:limit]),
            story_id=story.id,
            story_title=story.title,
            story_facts=self.facts(story, _utc(signal.at)),
        )

    # -- internals ------------------------------------------------------------------------

    def _open_stories(self, brand: str, at: datetime) -> list[Story]:
        """``brand``'s stories that a complaint at ``at`` could still join (the rest close)."""
        stories = self._open.setdefault(brand, [])
        idle = at - self.settings.idle
        embedded = at - self.settings.horizon()  # the decay alone keeps anything older out
        if any(s.last_seen < (embedded if s.embedded else idle) for s in stories):
            stories[:] = [s for s in stories if s.last_seen >= (embedded if s.embedded else idle)]
        return stories

    def _cap(self, stories: list[Story], at: datetime) -> None:
        """Close the stalest stories beyond ``max_open`` (logged: it may split a live story)."""
        extra = len(stories) - self.settings.max_open
        if extra <= 0:
            return
        stories.sort(key=lambda s: s.last_seen, reverse=True)
        closed = stories[-extra:]
        del stories[-extra:]
        self.capped += extra
        log.warning(
            "%d open stories of %s reached stories.max_open (%d): closed %d still joinable, "
            "the oldest last heard %s", len(stories) + extra, closed[0].brand,
            self.settings.max_open, extra, min(s.last_seen for s in closed).isoformat())


def _age_key(story: Story) -> tuple[datetime, int]:
    """Older first: the first seen, then the one saved first."""
    return (story.first_seen, story.id if story.id is not None else 1 << 62)


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
