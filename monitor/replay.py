"""`uproar replay`: recorded mentions through the whole pipeline on a simulated clock.

Mentions are fed in time order, one simulated step at a time (as if polled every ``step``);
detection runs at every bucket boundary; queued alerts are delivered as the clock passes their
due time. Replay returns only when every alert it raised was delivered or failed for good.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from connectors.base import Mention
from monitor.alerts.dispatch import DeliveryReport
from monitor.archive import Archive
from monitor.clock import SimulatedClock, floor_time
from monitor.errors import UproarError
from monitor.pipeline import Pipeline


class ReplayError(UproarError):
    """The replay file could not be read."""


@dataclass(slots=True)
class ReplayReport:
    mentions: int = 0
    new: int = 0
    duplicates: int = 0
    unmatched: int = 0
    bad_lines: list[str] = field(default_factory=list)
    signals: int = 0
    sent: int = 0
    failed: list[str] = field(default_factory=list)
    started: datetime | None = None
    ended: datetime | None = None


def read_mentions(path: Path) -> tuple[list[Mention], list[str]]:
    """Read a JSONL file of mentions; bad lines (not UTF-8, not JSON, not a mention) are
    reported with their line numbers and skipped, never fatal to the rest."""
    mentions: list[Mention] = []
    bad: list[str] = []
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ReplayError(f"{path}: cannot open: {exc.strerror or exc}") from exc
    with handle:
        for number, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad.append(
                    f"{path}:{number}: not UTF-8 text (byte 0x{raw[exc.start]:02x} "
                    f"at column {exc.start + 1})"
                )
                continue
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if not isinstance(data, dict):
                    raise ValueError("expected a JSON object")
                mentions.append(Mention.from_json(data))
            except (ValueError, TypeError) as exc:
                bad.append(f"{path}:{number}: {exc}")
    mentions.sort(key=lambda m: m.created_at)
    return mentions, bad


def live_sources(archive: Archive) -> list[str]:
    """Sources a daemon (or `uproar poll`) has polled into ``archive``: they leave a cursor or
    a health row, which a replay never does."""
    from sqlalchemy import select, union

    from monitor.archive.schema import cursors, source_health

    with archive.engine.connect() as connection:
        query = union(select(cursors.c.source), select(source_health.c.source))
        return sorted(str(row[0]) for row in connection.execute(query))


def archive_place(url: str) -> str:
    """Where an archive is, for people: a SQLite file's absolute path, else the (redacted) URL."""
    from sqlalchemy.engine import make_url

    from monitor.archive.engine import redact

    try:
        parsed = make_url(url)
    except Exception:
        return redact(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return str(Path(parsed.database).resolve())
    return redact(url)


def _steps(start: datetime, end: datetime, step: timedelta) -> Iterator[datetime]:
    at = start
    while at <= end:
        yield at
        at += step


def replay(
    mentions: list[Mention],
    pipeline: Pipeline,
    clock: SimulatedClock,
    *,
    bucket: timedelta,
    tail: timedelta,
    step: timedelta = timedelta(minutes=1),
    speed: float | None = None,
    progress: Callable[[int], None] | None = None,
    max_delivery_rounds: int = 1000,
) -> ReplayReport:
    """Push ``mentions`` (sorted by time) through ``pipeline``; ``tail`` extends the run past the
    last mention so the final buckets close. ``speed`` = simulated seconds per real second
    (``None``: as fast as possible)."""
    report = ReplayReport(mentions=len(mentions))
    if not mentions:
        return report
    first = floor_time(mentions[0].created_at, step)
    last = mentions[-1].created_at + tail
    report.started = first
    index = 0
    next_detect = floor_time(first, bucket) + bucket
    for at in _steps(first + step, last + step, step):
        batch: list[Mention] = []
        while index < len(mentions) and mentions[index].created_at < at:
            batch.append(mentions[index])
            index += 1
        clock.set(at)
        if batch:
            result = pipeline.ingest(batch)
            report.new += len(result.new)
            report.duplicates += result.duplicates
            report.unmatched += result.unmatched
            if progress is not None:
                progress(len(batch))
        while next_detect <= at:
            report.signals += len(pipeline.evaluate())
            next_detect += bucket
        delivered = pipeline.deliver()
        report.sent += delivered.sent
        report.failed.extend(_describe(delivered))
        if speed:
            time.sleep(step.total_seconds() / speed)
    _drain(pipeline, clock, report, max_delivery_rounds)
    report.ended = clock.now()
    return report


def _describe(report: DeliveryReport) -> list[str]:
    return [f"incident {f.incident_id}: {f.error}" for f in report.failures]


def _drain(pipeline: Pipeline, clock: SimulatedClock, report: ReplayReport, rounds: int) -> None:
    """Deliver what is still queued, moving simulated time to each retry's due time."""
    dispatcher = pipeline.dispatcher
    for _ in range(rounds):
        if not dispatcher.has_pending():
            return
        due = dispatcher.next_due()
        if due is not None:
            clock.set(due)
        delivered = pipeline.deliver()
        report.sent += delivered.sent
        report.failed.extend(_describe(delivered))
    if dispatcher.has_pending():
        pending = dispatcher.pending_count()
        report.failed.append(f"{pending} alerts still queued after {rounds} tries")
