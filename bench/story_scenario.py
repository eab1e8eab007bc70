#!/usr/bin/env python3
"""A complaint story breaking out of ordinary traffic: how soon does Uproar alert, how often not?

Four weeks of ordinary mentions for three brands (texts drawn from ``complaints/train.csv``,
complaints and not, with a diurnal and weekly volume cycle and log-normal follower counts), then
three stories made of real complaint texts (one per brand, on different days): a first post and
its spread — reshares of it and real complaints on the same topic — growing at different speeds.

Everything runs through the daemon's own detection on a simulated clock: the bundled classifier
decides what is a complaint (each distinct text classified once), ``BrandMonitor`` (volume) and
``StoryStage`` (stories, story growth, engagement velocity, high-reach authors) see every mention
in time order and are evaluated every 5-minute bucket. Signals are grouped into incidents as the
daemon does (a brand's signals within ``join_window`` of its last one join its incident).

Reported: minutes from each story's first post, and from its 20th complaint, to its brand's
first alert; and false alerts (incidents opened) per brand per week of ordinary traffic (days
8-21: after a week of learning, before any story).

    bench/story_scenario.py [--data ../shared/data] [--seed 7]
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import re
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.base import Author, Engagement, Mention  # noqa: E402
from models.base import Classification  # noqa: E402
from monitor.archive.records import StoredMention  # noqa: E402
from monitor.backtest import number_incidents  # noqa: E402
from monitor.detect.brand import BrandMonitor, DetectionSettings  # noqa: E402
from monitor.detect.stage import build_story_stage  # noqa: E402
from monitor.detect.stories import StorySettings  # noqa: E402
from monitor.pipeline import example_of  # noqa: E402
from monitor.signals import Signal  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data"
START = datetime(2026, 2, 2, tzinfo=UTC)  # a Monday
DAYS = 28
BUCKET = timedelta(minutes=5)
COMPLAINT_THRESHOLD = 0.5  # the config's default classifier.complaint_threshold
BRANDS = {"acme": "Acme Air", "globex": "Globex Power", "initech": "Initech Parcel"}
MENTIONS_PER_HOUR = 12.0  # a brand's mean volume; ~290 mentions a day
JOIN_WINDOW = timedelta(hours=6)
QUIET = (timedelta(days=7), timedelta(days=21))  # ordinary traffic scored for false alerts


@dataclass(frozen=True)
class StorySpec:
    brand: str
    topic: str  # a regex over the complaints' texts: the story's related complaints
    seed_contains: str  # picks the first post among them
    start: datetime
    doubling: timedelta  # the story's rate doubles this often
    first_rate: float = 0.15  # posts per minute at the start
    max_rate: float = 6.0
    length: timedelta = timedelta(hours=5)


STORIES = [
    StorySpec("acme", r"\b(luggage|suitcases?|bags?)\b", "lost our suitcases",
              START + timedelta(days=22, hours=14, minutes=7), timedelta(minutes=20)),
    StorySpec("globex", r"\b(power|outages?|outtage|blackout)\b", "lost power",
              START + timedelta(days=24, hours=19, minutes=31), timedelta(minutes=40)),
    StorySpec("initech", r"\b(package|parcel|deliver\w*)\b", "out for delivery",
              START + timedelta(days=26, hours=9, minutes=52), timedelta(minutes=60)),
]


def volume(at: datetime) -> float:
    """Mentions per hour: a diurnal cycle (low at 04:00, high at 16:00), quieter weekends."""
    hour = at.hour + at.minute / 60
    diurnal = 1.0 + 0.75 * math.cos((hour - 16) / 24 * 2 * math.pi)
    weekly = 0.7 if at.weekday() >= 5 else 1.08
    return MENTIONS_PER_HOUR * diurnal * weekly


def followers(rng: random.Random) -> int:
    return int(rng.lognormvariate(math.log(300), 1.8))


def load_texts(data: Path) -> list[dict[str, str]]:
    path = data / "complaints" / "train.csv"
    if not path.exists():
        sys.exit(f"no complaints data at {path}")
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def mention(n: int, text: str, at: datetime, rng: random.Random, *, reposts: int = 0,
            handle: str | None = None, fans: int | None = None) -> Mention:
    return Mention(
        source="twitter",
        source_id=str(n),
        url=f"https://x.com/i/status/{n}",
        text=text,
        author=Author(handle=handle or f"user{rng.randrange(10**6)}", name="",
                      followers=followers(rng) if fans is None else fans),
        created_at=at,
        engagement=Engagement(likes=rng.randrange(3), reposts=reposts, replies=rng.randrange(2)),
    )


def ordinary(rng: random.Random, texts: list[str]) -> list[tuple[str, Mention]]:
    out: list[tuple[str, Mention]] = []
    n = 0
    for brand in BRANDS:
        at = START
        end = START + timedelta(days=DAYS)
        while at < end:  # a Poisson process with the time-varying rate
            at += timedelta(hours=rng.expovariate(volume(at)))
            n += 1
            out.append((brand, mention(n, rng.choice(texts), at, rng)))
    return out


def story_posts(
    spec: StorySpec, rng: random.Random, rows: list[dict[str, str]], first_id: int
) -> list[tuple[str, Mention]]:
    topic = re.compile(spec.topic, re.IGNORECASE)
    related = [r["text"] for r in rows if r["complaint"] == "1" and topic.search(r["text"])]
    seed = next(t for t in related if spec.seed_contains in t)
    out = [(spec.brand, mention(first_id, seed, spec.start, rng, handle="firstpost", fans=4200))]
    t, k = 0.0, 0
    end = spec.length.total_seconds() / 60
    doubling = spec.doubling.total_seconds() / 60
    while True:
        rate = min(spec.first_rate * 2 ** (t / doubling), spec.max_rate)
        t += rng.expovariate(rate)
        if t > end:
            break
        k += 1
        text = f"RT @firstpost: {seed}" if rng.random() < 0.75 else rng.choice(related)
        out.append((spec.brand, mention(first_id + k, text, spec.start + timedelta(minutes=t),
                                        rng)))
    return out


@dataclass
class Classifications:
    by_text: dict[str, Classification]
    seconds: float


def classify_all(classifier: object, texts: list[str]) -> Classifications:
    unique = sorted(set(texts))
    began = time.perf_counter()
    results = classifier.classify(unique)  # type: ignore[attr-defined]
    return Classifications(dict(zip(unique, results, strict=True)), time.perf_counter() - began)


def run(data: Path, seed: int, story_settings: StorySettings | None = None) -> None:
    from models.loader import load_classifier

    rng = random.Random(seed)
    rows = load_texts(data)
    texts = [r["text"] for r in rows]
    traffic = ordinary(rng, texts)
    next_id = len(traffic) + 1
    story_of: dict[str, int] = {}  # source_id -> the story it belongs to
    for i, spec in enumerate(STORIES):
        posts = story_posts(spec, rng, rows, next_id)
        next_id += len(posts) + 1
        traffic.extend(posts)
        story_of.update({m.source_id: i for _, m in posts})
    traffic.sort(key=lambda item: item[1].created_at)
    classifier = load_classifier("default")
    classified = classify_all(classifier, [m.text for _, m in traffic])

    monitor = BrandMonitor(DetectionSettings())
    stage = build_story_stage(
        engine=None,
        classifier=classifier,
        example_of=example_of,
        complaint_threshold=COMPLAINT_THRESHOLD,
        brand_names=BRANDS,
    )
    if story_settings is not None:
        stage.tracker.settings = story_settings
    signals: list[Signal] = []
    complaints_seen: dict[int, list[datetime]] = {i: [] for i in range(len(STORIES))}
    began = time.perf_counter()
    next_detect = START + BUCKET
    index = 0
    end = START + timedelta(days=DAYS)
    while next_detect <= end:
        batch: list[StoredMention] = []
        while index < len(traffic) and traffic[index][1].created_at < next_detect:
            brand, m = traffic[index]
            index += 1
            c = classified.by_text[m.text]
            batch.append(StoredMention(m, (brand,), c, classifier.name, classifier.version))
            if c.complaint >= COMPLAINT_THRESHOLD:
                monitor.observe(brand, BRANDS[brand], m.created_at, example_of(m))
                story = story_of.get(m.source_id)
                if story is not None:
                    complaints_seen[story].append(m.created_at)
        if batch:
            stage.ingest(batch, [], next_detect)
        signals.extend(stage.evaluate(monitor.evaluate(next_detect), next_detect))
        next_detect += BUCKET
    elapsed = time.perf_counter() - began

    signals.sort(key=lambda s: (s.at, s.brand))
    incidents = number_incidents(signals, JOIN_WINDOW)
    opened: dict[int, Signal] = {}
    for signal, number in zip(signals, incidents, strict=True):
        opened.setdefault(number, signal)
    alerts = sorted(opened.values(), key=lambda s: s.at)

    print(f"story scenario: {len(BRANDS)} brands, {DAYS} days, {len(traffic):,} mentions "
          f"({sum(1 for c in classified.by_text.values() if c.complaint >= 0.5):,} distinct "
          f"complaint texts), seed {seed}; detection {elapsed:.1f} s, "
          f"classification {classified.seconds:.1f} s")
    header = (f"{'brand':<9}{'story (first post)':<22}{'doubles':>8}{'20th complaint':>16}"
              f"{'first alert':>13}  {'kind/severity':<28}{'min from start':>15}"
              f"{'min from 20th':>14}")
    print(header)
    for i, spec in enumerate(STORIES):
        seen = complaints_seen[i]
        twentieth = seen[19] if len(seen) >= 20 else None
        first = next((a for a in alerts if a.brand == spec.brand and a.at >= spec.start), None)
        before = [a for a in alerts if a.brand == spec.brand and a.at < spec.start
                  and spec.start - a.at <= JOIN_WINDOW]
        joined = " (joined an open incident)" if before else ""
        start_min = _minutes(first.at - spec.start) if first else "never"
        twentieth_min = (_minutes(first.at - twentieth) if first and twentieth else "n/a")
        print(f"{spec.brand:<9}{spec.start:%a %d %H:%M} UTC{'':<6}"
              f"{_minutes(spec.doubling):>7}m"
              f"{(twentieth.strftime('%H:%M') if twentieth else 'never'):>16}"
              f"{(first.at.strftime('%H:%M') if first else 'never'):>13}  "
              f"{(first.kind + '/' + first.severity) if first else '-':<28}"
              f"{start_min:>15}{twentieth_min:>14}{joined}")
        if first:
            print(f"{'':<9}reasons: {' | '.join(first.reasons)[:300]}")
    quiet_start, quiet_end = START + QUIET[0], START + QUIET[1]
    weeks = (quiet_end - quiet_start) / timedelta(days=7)
    quiet = [a for a in alerts if quiet_start <= a.at < quiet_end]
    serious = [a for a in quiet if a.severity != "info"]
    per = len(quiet) / len(BRANDS) / weeks
    per_serious = len(serious) / len(BRANDS) / weeks
    kinds = ", ".join(sorted({f"{a.kind}/{a.severity}" for a in quiet})) or "none"
    print(f"false alerts in ordinary traffic (days {QUIET[0].days + 1}-{QUIET[1].days}, "
          f"{weeks:.0f} weeks x {len(BRANDS)} brands): {len(quiet)} = {per:.2f} per brand per "
          f"week (warning or critical: {per_serious:.2f}); kinds: {kinds}")
    print("targets: first alert within 30 min of a story's 20th complaint; "
          "at most 1 false alert per brand per week")


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--growth-ratio", type=float, help="StorySettings.growth_ratio to try")
    args = parser.parse_args()
    settings = None
    if args.growth_ratio is not None:
        settings = replace(StorySettings(), growth_ratio=args.growth_ratio)
    run(args.data, args.seed, settings)


if __name__ == "__main__":
    main()
