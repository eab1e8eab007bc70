"""`uproar backtest`: which alerts the detector would have raised, on history, with given settings.

A backtest drives a fresh :class:`BrandMonitor` on simulated time, exactly as ``uproar replay``
does: every complaint (complaint probability ≥ the threshold) is observed at its ``created_at``,
and ``evaluate`` runs at every bucket boundary — before the complaints of the bucket that
boundary opens. Nothing is stored and nothing is sent; the result is the list of signals.

Two inputs, same detection:

* the archive (:func:`archive_complaints`): the complaints already classified and stored, read
  in time order through a server-side cursor — no model needed;
* a replay file (:func:`classify_mentions`): mentions in the DESIGN.md JSON shape, matched to
  the config's brands with :class:`BrandMatcher` and classified with the configured model.

With a :class:`StoryStage` (as ``uproar backtest`` passes), complaints are also grouped into
stories — by key phrases only, so both inputs agree — and story-growth and high-reach signals
join the volume signals, each volume signal naming its story.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from connectors.base import Mention, format_time
from models.base import Classifier
from monitor.archive import Archive
from monitor.brands.query import BrandMatcher
from monitor.clock import floor_time
from monitor.detect.brand import BrandMonitor, DetectionSettings
from monitor.detect.stage import StoryStage
from monitor.durations import format_duration
from monitor.pipeline import example_of
from monitor.signals import Signal

WEEK = timedelta(days=7)
EXAMPLE_TEXT_WIDTH = 80  # characters of the top example shown in the table


@dataclass(frozen=True, slots=True)
class Classified:
    """One brand-matched mention and its complaint probability."""

    mention: Mention
    brands: tuple[str, ...]
    complaint: float


@dataclass(slots=True)
class BacktestResult:
    """The would-be alerts and what the run looked at."""

    signals: list[Signal]
    settings: DetectionSettings
    complaint_threshold: float
    brands: list[str]  # the brands that were watched (alerts per brand per week divide by these)
    brand_names: dict[str, str]
    mentions: int = 0  # brand-matched mentions read
    complaints: int = 0  # of those, complaints (about a watched brand)
    started: datetime | None = None
    ended: datetime | None = None
    notes: list[str] = field(default_factory=list)
    # Per signal, the number (1, 2, ...) of the incident it opens or joins: like the daemon's
    # incident book, a signal joins its brand's last incident if that incident's last signal is
    # within ``join_window``, and then is an update in the thread, not a new alert.
    incidents: list[int] = field(default_factory=list)
    join_window: timedelta = timedelta(hours=6)

    @property
    def alerts(self) -> list[Signal]:
        """The signals that open an incident: the new alerts a team would get."""
        opened: set[int] = set()
        out = []
        for signal, number in zip(self.signals, self.incidents, strict=True):
            if number not in opened:
                opened.add(number)
                out.append(signal)
        return out

    def opens_incident(self, index: int) -> bool:
        return index == 0 or self.incidents[index] not in self.incidents[:index]

    @property
    def period(self) -> timedelta:
        if self.started is None or self.ended is None:
            return timedelta(0)
        return max(self.ended - self.started, timedelta(0))

    def alerts_per_brand_per_week(self) -> float:
        weeks = self.period / WEEK
        if not self.brands or weeks <= 0:
            return 0.0
        return len(self.alerts) / len(self.brands) / weeks

    def alerts_by_brand(self) -> dict[str, int]:
        counts = Counter(signal.brand for signal in self.alerts)
        return {brand: counts.get(brand, 0) for brand in self.brands}

    def summary(self) -> str:
        n, alerting = len(self.alerts), len({s.brand for s in self.signals})
        updates = len(self.signals) - n
        if self.started is None or self.ended is None:
            return "no mentions to backtest in the period; 0 alerts"
        return (
            f"{n} alert{'' if n == 1 else 's'}"
            + (f" (+{updates} update{'' if updates == 1 else 's'})" if updates else "")
            + f" for {alerting} of {len(self.brands)} "
            f"brand{'' if len(self.brands) == 1 else 's'} over {_show_span(self.period)} "
            f"({self.started:%Y-%m-%d %H:%M} to {self.ended:%Y-%m-%d %H:%M} UTC; "
            f"{self.mentions} mentions, {self.complaints} complaints); "
            f"{self.alerts_per_brand_per_week():.2f} alerts per brand per week"
        )


# -- settings ---------------------------------------------------------------------------------


def override_settings(
    base: DetectionSettings,
    *,
    threshold: float | None = None,
    min_count: int | None = None,
    window: timedelta | None = None,
    bucket: timedelta | None = None,
    cooldown: timedelta | None = None,
) -> DetectionSettings:
    """``base`` with the command line's overrides (``None``: keep); raises ``ValueError``."""
    changes: dict[str, Any] = {}
    if min_count is not None:
        changes["min_count"] = min_count
    if window is not None:
        changes["window"] = window
    if bucket is not None:
        changes["bucket"] = bucket
    if cooldown is not None:
        changes["cooldown"] = cooldown
    if threshold is not None:
        changes["spike"] = replace(base.spike, threshold=threshold)
    return replace(base, **changes)


# -- inputs -----------------------------------------------------------------------------------


def classify_mentions(
    mentions: Sequence[Mention],
    matcher: BrandMatcher,
    classifier: Classifier,
    *,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> list[Classified]:
    """Match brands and classify (in batches) like the pipeline does; duplicates are dropped.

    Mentions no brand matches are not classified (and not returned). ``progress`` is called with
    the number of mentions each batch handled.
    """
    seen: set[tuple[str, str]] = set()
    matched: list[tuple[Mention, tuple[str, ...]]] = []
    for mention in mentions:
        if mention.key in seen:
            continue
        seen.add(mention.key)
        brands = matcher.match(mention.text)
        if brands:
            matched.append((mention, tuple(brands)))
    out: list[Classified] = []
    for start in range(0, len(matched), batch_size):
        chunk = matched[start : start + batch_size]
        results = classifier.classify([m.text for m, _ in chunk])
        for (mention, keys), result in zip(chunk, results, strict=True):
            out.append(Classified(mention, keys, float(result.complaint)))
        if progress is not None:
            progress(len(chunk))
    out.sort(key=lambda item: item.mention.created_at)
    return out


def archive_complaints(
    archive: Archive,
    *,
    threshold: float,
    brand: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Iterator[Classified]:
    """The archived complaints (complaint ≥ ``threshold``), oldest first, streamed.

    The query is ``uproar query``'s (:func:`select_mentions`) in time order, read through a
    server-side cursor a batch at a time, like ``uproar export``.
    """
    from monitor.analyst.filters import MentionFilter
    from monitor.analyst.queries import select_mentions, to_archived
    from monitor.archive.schema import mentions

    f = MentionFilter(brand=brand, since=since, until=until, min_complaint=threshold)
    with archive.engine.connect() as connection:
        query = select_mentions(connection, f).order_by(None)
        query = query.order_by(mentions.c.created_at.asc(), mentions.c.id.asc())
        result = connection.execution_options(yield_per=2_000).execute(query)
        try:
            for partition in result.partitions():
                for row in partition:
                    item = to_archived(row._mapping)
                    if item.classification is None:
                        continue
                    yield Classified(item.mention, item.brands, item.classification.complaint)
        finally:
            result.close()


def archive_first_time(archive: Archive, brand: str | None = None) -> datetime | None:
    """When the archive's oldest mention (of ``brand``) was created: where its history starts."""
    from sqlalchemy import func, select

    from monitor.archive.convert import from_db_time
    from monitor.archive.schema import mention_brands, mentions

    with archive.engine.connect() as connection:
        if brand is None:
            query = select(func.min(mentions.c.created_at))
        else:
            query = select(func.min(mention_brands.c.created_at)).where(
                mention_brands.c.brand == brand
            )
        first = connection.execute(query).scalar()
    if first is None:
        return None
    if isinstance(first, str):  # SQLite hands an aggregate's datetime back as text
        first = datetime.fromisoformat(first)
    return from_db_time(first)


def archive_brands(archive: Archive) -> list[str]:
    """Every brand key the archive holds a mention of."""
    from sqlalchemy import select

    from monitor.archive.schema import mention_brands

    with archive.engine.connect() as connection:
        rows = connection.execute(select(mention_brands.c.brand).distinct())
        return sorted(row[0] for row in rows)


def seed_from_archive(
    monitor: BrandMonitor,
    archive: Archive,
    brands: Iterable[str],
    *,
    before: datetime,
    history: timedelta,
    threshold: float,
) -> int:
    """Warm each brand's baseline with the ``history`` before ``before``, as a restart does."""
    seeded = 0
    bucket = monitor.settings.bucket
    for brand in brands:
        for start, count in archive.complaint_counts(
            brand, before - history, before, bucket, threshold
        ):
            monitor.seed(brand, start, count)
            seeded += 1
    return seeded


# -- the run ----------------------------------------------------------------------------------


def run_backtest(
    items: Iterable[Classified],
    settings: DetectionSettings,
    *,
    complaint_threshold: float,
    brands: Sequence[str] | None = None,
    brand_names: dict[str, str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    monitor: BrandMonitor | None = None,
    join_window: timedelta = timedelta(hours=6),
    stories: StoryStage | None = None,
) -> BacktestResult:
    """Drive a :class:`BrandMonitor` over ``items`` (oldest first) and collect its signals.

    ``brands``: watch only these (``None``: every brand seen). ``since``/``until``: only
    mentions in ``[since, until)``; detection runs until ``until``, or else until the last
    complaint's window and one more bucket have closed (as ``uproar replay`` does).
    ``monitor``: a monitor already seeded (see :func:`seed_from_archive`). ``join_window``:
    as ``alerts.join_window``, groups the signals into incidents (see :class:`BacktestResult`).
    ``stories``: also group complaints into stories and add story-growth and spread signals,
    as the daemon does (an in-memory stage: nothing is stored).
    """
    names = dict(brand_names or {})
    watched = set(brands) if brands is not None else None
    monitor = monitor or BrandMonitor(settings)
    bucket = settings.bucket
    result = BacktestResult(
        signals=[],
        settings=settings,
        complaint_threshold=complaint_threshold,
        brands=list(brands) if brands is not None else [],
        brand_names=names,
        join_window=join_window,
    )
    seen_brands: dict[str, None] = {}
    next_detect: datetime | None = None
    last: datetime | None = None
    for item in items:
        at = item.mention.created_at.astimezone(UTC)
        if (since is not None and at < since) or (until is not None and at >= until):
            continue
        keys = [b for b in item.brands if watched is None or b in watched]
        if not keys:
            continue
        result.mentions += 1
        if result.started is None:
            result.started = since or at
            next_detect = floor_time(at, bucket) + bucket
        assert next_detect is not None
        while next_detect <= at:
            result.signals.extend(_evaluate(monitor, stories, next_detect))
            next_detect += bucket
        last = at
        for key in keys:
            seen_brands.setdefault(key, None)
        if item.complaint < complaint_threshold:
            continue
        result.complaints += 1
        example = example_of(item.mention)
        for key in keys:
            monitor.observe(key, names.get(key, key), at, example)
        if stories is not None:
            stories.add_complaint(item.mention, keys, at)
    if last is None or next_detect is None:
        result.started = since
        result.ended = until
    else:
        end = until if until is not None else last + settings.window + bucket
        while next_detect <= end:
            result.signals.extend(_evaluate(monitor, stories, next_detect))
            next_detect += bucket
        result.ended = end
    if brands is None:
        result.brands = list(seen_brands)
    result.signals.sort(key=lambda s: (s.at, s.brand))
    result.incidents = number_incidents(result.signals, join_window)
    return result


def _evaluate(monitor: BrandMonitor, stories: StoryStage | None, at: datetime) -> list[Signal]:
    signals = monitor.evaluate(at)
    return signals if stories is None else stories.evaluate(signals, at)


def number_incidents(signals: Sequence[Signal], join_window: timedelta) -> list[int]:
    """The incident number of each signal (sorted by time), numbered from 1 in opening order."""
    last: dict[str, tuple[int, datetime]] = {}  # brand -> (incident, its last signal's time)
    numbers: list[int] = []
    for signal in signals:
        current = last.get(signal.brand)
        if current is not None and signal.at - current[1] <= join_window:
            number = current[0]
        else:
            number = max(numbers, default=0) + 1
        last[signal.brand] = (number, signal.at)
        numbers.append(number)
    return numbers


# -- output -----------------------------------------------------------------------------------

CSV_HEADER = [
    "time", "incident", "alert", "brand", "brand_name", "severity", "count", "window",
    "expected", "spread", "score", "reasons", "example_text", "example_url",
]


def signal_json(signal: Signal, incident: int, new: bool) -> dict[str, Any]:
    """One signal; ``alert`` is "new" when it opens incident ``incident``, else "update"."""
    top = signal.examples[0] if signal.examples else None
    return {
        "time": format_time(signal.at),
        "incident": incident,
        "alert": "new" if new else "update",
        "brand": signal.brand,
        "brand_name": signal.brand_name,
        "kind": signal.kind,
        "story": signal.story_title,
        "severity": signal.severity,
        "count": signal.count,
        "window": format_duration(signal.window),
        "expected": round(signal.expected, 3),
        "spread": round(signal.spread, 3),
        "score": round(signal.score, 3),
        "reasons": list(signal.reasons),
        "examples": [
            {
                "source": ex.source,
                "source_id": ex.source_id,
                "url": ex.url,
                "text": ex.text,
                "author": ex.author_handle,
                "reach": ex.reach,
                "created_at": format_time(ex.created_at),
            }
            for ex in signal.examples
        ],
        "top_example_url": top.url if top else None,
    }


def result_json(result: BacktestResult) -> dict[str, Any]:
    s = result.settings
    return {
        "settings": {
            "threshold": s.spike.threshold,
            "min_count": s.min_count,
            "window": format_duration(s.window),
            "bucket": format_duration(s.bucket),
            "cooldown": format_duration(s.cooldown),
            "complaint_threshold": result.complaint_threshold,
        },
        "period": {
            "start": format_time(result.started) if result.started else None,
            "end": format_time(result.ended) if result.ended else None,
        },
        "summary": {
            "alerts": len(result.alerts),
            "updates": len(result.signals) - len(result.alerts),
            "brands": len(result.brands),
            "brands_alerted": len({sig.brand for sig in result.signals}),
            "mentions": result.mentions,
            "complaints": result.complaints,
            "alerts_per_brand_per_week": round(result.alerts_per_brand_per_week(), 4),
            "alerts_by_brand": result.alerts_by_brand(),
            "text": result.summary(),
        },
        "alerts": [
            signal_json(signal, result.incidents[i], result.opens_incident(i))
            for i, signal in enumerate(result.signals)
        ],
    }


def write_json(result: BacktestResult, stream: IO[str]) -> None:
    json.dump(result_json(result), stream, ensure_ascii=False, indent=2)
    stream.write("\n")


def write_csv(result: BacktestResult, stream: IO[str]) -> None:
    from monitor.analyst.output import defuse

    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for i, signal in enumerate(result.signals):
        top = signal.examples[0] if signal.examples else None
        writer.writerow([
            format_time(signal.at),
            result.incidents[i],
            "new" if result.opens_incident(i) else "update",
            signal.brand,
            defuse(signal.brand_name),
            signal.severity,
            signal.count,
            format_duration(signal.window),
            f"{signal.expected:.2f}",
            f"{signal.spread:.2f}",
            f"{signal.score:.2f}",
            defuse("; ".join(signal.reasons)),
            defuse(" ".join(top.text.split())) if top else "",
            defuse(top.url) if top else "",
        ])


def render_table(result: BacktestResult, console: Any) -> None:
    """A rich table of the would-be alerts, then the summary line."""
    from rich.table import Table
    from rich.text import Text

    table = Table(header_style="bold", expand=True, title="Alerts that would have fired")
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("alert", no_wrap=True)
    table.add_column("brand", no_wrap=True, max_width=20)
    table.add_column("severity", no_wrap=True)
    table.add_column("count", justify="right", no_wrap=True)
    table.add_column("expected", justify="right", no_wrap=True)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("reasons", ratio=1, min_width=20, overflow="fold")
    table.add_column("top example", ratio=1, min_width=20, overflow="fold")
    styles = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
    for i, signal in enumerate(result.signals):
        top = signal.examples[0] if signal.examples else None
        example = Text()
        if top is not None:
            # Text(), not markup: a post's "[bold]" is its author's text.
            example.append(_cut(top.text), style=f"link {top.url}" if top.url else "")
            if top.url:
                example.append(f"\n{top.url}", style=f"dim link {top.url}")
        table.add_row(
            Text(signal.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")),
            Text(f"#{result.incidents[i]} " + ("new" if result.opens_incident(i) else "update")),
            Text(signal.brand_name or signal.brand),
            Text(signal.severity, style=styles.get(signal.severity, "")),
            Text(f"{signal.count} in {format_duration(signal.window)}"),
            Text(f"{signal.expected:.1f} ± {signal.spread:.1f}"),
            Text(f"{signal.score:.1f}σ"),
            Text("\n".join(signal.reasons)),
            example,
        )
    if result.signals:
        console.print(table)
    else:
        console.print("No alerts would have fired.")
    for note in result.notes:
        console.print(Text(note, style="dim"))
    console.print(Text(result.summary()))


def _cut(text: str, width: int = EXAMPLE_TEXT_WIDTH) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _show_span(delta: timedelta) -> str:
    days = delta / timedelta(days=1)
    if days >= 1:
        return f"{days:.1f} days"
    return f"{delta / timedelta(hours=1):.1f} hours"
