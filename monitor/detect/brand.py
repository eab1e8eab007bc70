"""Per-brand complaint volume: count complaints in buckets, detect spikes, emit Signals.

The daemon calls :meth:`BrandMonitor.observe` for every mention it classified as a complaint and
:meth:`BrandMonitor.evaluate` on the injected clock (every bucket, or whenever replay moves the
simulated time). ``evaluate`` closes every bucket that ended by ``now`` — a bucket without
complaints counts as zero — feeds the complaint count of the sliding ``window`` ending at each
closed bucket to that brand's :class:`SpikeDetector`, and returns a :class:`Signal` for each
alert. :meth:`BrandMonitor.seed` warms a brand's baseline from the archive's history, so a
restart neither forgets what normal looks like nor re-alerts on a spike it already reported.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from monitor.detect.spike import DAEMON, Decision, SpikeDetector, SpikeSettings
from monitor.signals import Example, Severity, Signal

# How far back "growing ×N per hour" looks.
_GROWTH_SPAN = timedelta(hours=1)
# Keep at most this many candidate examples per brand; the least shared are dropped first.
_MAX_KEPT_EXAMPLES = 500


@dataclass(frozen=True, slots=True)
class DetectionSettings:
    """Complaint-volume detection for every brand (built by the config loader from YAML)."""

    bucket: timedelta = timedelta(minutes=5)  # complaints are counted per bucket
    window: timedelta = timedelta(minutes=30)  # an alert reports the count in this window
    min_count: int = 5  # never alert with fewer complaints than this in the window
    cooldown: timedelta = timedelta(hours=2)  # per brand, after an alert
    max_examples: int = 5  # most-shared complaints quoted in a signal
    warning_ratio: float = 4.0  # count ≥ this × expected → at least "warning"
    critical_ratio: float = 10.0  # count ≥ this × expected and ≥ critical_count → "critical"
    critical_count: int = 50
    spike: SpikeSettings = DAEMON  # the detector; its min_count and cooldown come from above

    def __post_init__(self) -> None:
        if self.bucket <= timedelta(0):
            raise ValueError("bucket must be positive")
        if self.window < self.bucket:
            raise ValueError("window must be at least one bucket")
        if self.max_examples < 0:
            raise ValueError("max_examples must not be negative")

    def detector_settings(self) -> SpikeSettings:
        return replace(self.spike, min_count=float(self.min_count), cooldown=self.cooldown)


@dataclass(slots=True)
class _Brand:
    name: str
    detector: SpikeDetector
    next_bucket: int | None = None  # index of the first bucket not yet closed
    pending: dict[int, int] = field(default_factory=dict)  # bucket index -> complaints
    closed: deque[int] = field(default_factory=deque)  # counts of recent closed buckets
    examples: list[tuple[datetime, Example]] = field(default_factory=list)


class BrandMonitor:
    """Complaint-volume spikes for every brand, on any clock (real or simulated)."""

    def __init__(self, settings: DetectionSettings | None = None) -> None:
        self.settings = s = settings or DetectionSettings()
        self._bucket = s.bucket.total_seconds()
        self._window_buckets = max(1, math.ceil(s.window / s.bucket))
        self._growth_buckets = max(1, math.ceil(_GROWTH_SPAN / s.bucket))
        self._spike = s.detector_settings()
        self._brands: dict[str, _Brand] = {}

    # -- input ----------------------------------------------------------------------------

    def observe(self, brand_key: str, brand_name: str, at: datetime, example: Example) -> None:
        """Count one complaint about a brand, heard at ``at``.

        A complaint always counts in the bucket of its own timestamp, as the archive counts it.
        One that arrives after its bucket was closed is added to that closed bucket: windows
        decided later include it if they cover its time, decisions already made are never
        revised, and the detector is never fed an older bucket. A complaint older than every
        bucket still kept (``window`` + one hour) can reach no future window; it is only archived.
        """
        brand = self._brand(brand_key, brand_name)
        brand.name = brand_name  # the caller's (config's) name is the latest word
        idx = self._index(at)
        if brand.next_bucket is None or (idx < brand.next_bucket and not brand.closed):
            brand.next_bucket = idx  # nothing closed yet: the brand's first bucket moves back
        if idx >= brand.next_bucket:
            brand.pending[idx] = brand.pending.get(idx, 0) + 1
        else:
            age = brand.next_bucket - idx  # 1: the last closed bucket
            if age <= len(brand.closed):
                brand.closed[-age] += 1
        brand.examples.append((_utc(at), example))
        if len(brand.examples) > 2 * _MAX_KEPT_EXAMPLES:
            brand.examples.sort(key=lambda pair: -pair[1].reach)
            del brand.examples[_MAX_KEPT_EXAMPLES:]

    def seed(
        self, brand_key: str, bucket_start: datetime, count: int, brand_name: str | None = None
    ) -> None:
        """Warm a brand's baseline with a historical bucket (oldest first); never alerts.

        Buckets skipped between two seeds count as zero. Seeding a bucket that is already closed
        is ignored, so replaying the same history twice is harmless.
        """
        brand = self._brand(brand_key, brand_name or brand_key)
        idx = self._index(bucket_start)
        if brand.next_bucket is None:
            brand.next_bucket = idx
        if idx < brand.next_bucket:
            return
        brand.pending[idx] = brand.pending.get(idx, 0) + int(count)
        self._close(brand_key, brand, idx + 1, emit=False)

    # -- output ---------------------------------------------------------------------------

    def evaluate(self, now: datetime) -> list[Signal]:
        """Close every bucket that ended by ``now`` (for every brand) and return the alerts."""
        end_idx = math.floor(_utc(now).timestamp() / self._bucket)
        signals: list[Signal] = []
        for key, brand in self._brands.items():
            signals.extend(self._close(key, brand, end_idx, emit=True))
        return signals

    def brands(self) -> list[str]:
        return list(self._brands)

    # -- internals ------------------------------------------------------------------------

    def _brand(self, key: str, name: str) -> _Brand:
        brand = self._brands.get(key)
        if brand is None:
            brand = self._brands[key] = _Brand(name=name, detector=SpikeDetector(self._spike))
        return brand

    def _index(self, at: datetime) -> int:
        return math.floor(_utc(at).timestamp() / self._bucket)

    def _close(self, key: str, brand: _Brand, end_idx: int, *, emit: bool) -> list[Signal]:
        """Close buckets ``next_bucket .. end_idx - 1``."""
        signals: list[Signal] = []
        if brand.next_bucket is None:
            return signals
        keep = self._window_buckets + self._growth_buckets
        while brand.next_bucket < end_idx:
            idx = brand.next_bucket
            brand.next_bucket = idx + 1
            brand.closed.append(brand.pending.pop(idx, 0))
            while len(brand.closed) > keep:
                brand.closed.popleft()
            window_count = sum(list(brand.closed)[-self._window_buckets :])
            end = datetime.fromtimestamp((idx + 1) * self._bucket, UTC)
            decision = brand.detector.update(end, float(window_count))
            if decision.alert and emit:
                signals.append(self._signal(key, brand, end, window_count, decision))
        horizon = (
            datetime.fromtimestamp(brand.next_bucket * self._bucket, UTC) - self.settings.window
        )
        brand.examples = [pair for pair in brand.examples if pair[0] >= horizon]
        return signals

    def _signal(
        self, key: str, brand: _Brand, end: datetime, count: int, decision: Decision
    ) -> Signal:
        s = self.settings
        expected = max(decision.expected, 0.0)
        spread = max(decision.spread, 0.0)
        ratio = count / max(expected, 1.0)
        if ratio >= s.critical_ratio and count >= s.critical_count:
            severity: Severity = "critical"
        elif ratio >= s.warning_ratio:
            severity = "warning"
        else:
            severity = "info"
        head = f"{count} complaints in {_span(s.window)}, usual {expected:.0f} ± {spread:.0f}"
        growth = self._growth(brand)
        if growth is not None and growth >= 1.5:
            head += (
                f", growing ×{growth:.0f} per hour"
                if growth >= 10
                else f", growing ×{growth:.1f} per hour"
            )
        reasons = (head, f"{ratio:.1f}× the usual volume, {decision.score:.1f}σ above the baseline")
        horizon = end - s.window
        recent = [ex for at, ex in brand.examples if horizon <= at < end + s.bucket]
        recent.sort(key=lambda ex: (-ex.reach, ex.created_at))
        return Signal(
            brand=key,
            brand_name=brand.name,
            kind="complaint_volume",
            severity=severity,
            at=end,
            window=s.window,
            count=count,
            expected=expected,
            spread=spread,
            score=decision.score,
            reasons=reasons,
            examples=tuple(recent[: s.max_examples]),
        )

    def _growth(self, brand: _Brand) -> float | None:
        """The window count now over the window count one hour earlier."""
        closed = list(brand.closed)
        w, g = self._window_buckets, self._growth_buckets
        if len(closed) < w + g:
            return None
        now = sum(closed[-w:])
        before = sum(closed[-w - g : len(closed) - g])
        return now / max(before, 1)


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("BrandMonitor needs timezone-aware datetimes")
    return at.astimezone(UTC)


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes % 60 == 0 and minutes >= 60:
        hours = minutes // 60
        return f"{hours} h"
    return f"{minutes} min"
