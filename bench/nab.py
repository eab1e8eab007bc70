"""The Numenta Anomaly Benchmark scorer, for binary alerts.

Follows ``data/README.md`` (and NAB's ``sweeper.py``):

* the first ``min(floor(15% of rows), 750)`` rows are a warm-up; alerts there are ignored;
* every labelled window (the rows whose timestamps fall inside it) that holds at least one alert
  earns its best (earliest) alert: ``sig(-(right - i + 1) / width) / sig(-1)`` × TP weight;
* a window without an alert costs the FN weight;
* an alert outside every window costs the FP weight, scaled by ``-sig((i - prev_right) /
  (prev_width - 1))`` when a window ended before it (the full weight past three widths), and the
  full weight before the first window;
* a set of files scores ``100 * (raw - null) / (perfect - null)`` with ``perfect`` = windows × TP
  weight and ``null`` = −windows × FN weight.

``sig(x) = 2 / (1 + exp(5x)) - 1``. Used by ``bench/detect`` and ``tests/bench/test_nab_score.py``.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

# NAB's probationary period: 15% of the file, but never more than 750 rows (0.15 × 5000).
WARMUP_FRACTION = 0.15
WARMUP_MAX_ROWS = 750


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    tp: float
    fp: float
    fn: float


PROFILES: dict[str, Profile] = {
    "standard": Profile("standard", tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP": Profile("reward_low_FP", tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN": Profile("reward_low_FN", tp=1.0, fp=0.11, fn=2.0),
}


@dataclass(frozen=True, slots=True)
class Window:
    """A labelled window as row indices (inclusive)."""

    left: int
    right: int

    @property
    def width(self) -> int:
        return self.right - self.left + 1


@dataclass(frozen=True, slots=True)
class FileScore:
    raw: float
    windows: int
    detected: int  # windows with at least one alert
    tp: float  # sum of the windows' earned scores (weighted)
    fp_count: int  # alerts outside every window, after the warm-up
    fp_cost: float  # their total (weighted, positive) cost
    fn_cost: float  # missed windows × FN weight


def sig(x: float) -> float:
    """NAB's scaled sigmoid; -1 past three widths (as NAB does)."""
    if x > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def warmup_rows(n_rows: int) -> int:
    return min(math.floor(WARMUP_FRACTION * n_rows), WARMUP_MAX_ROWS)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.strip())


def load_windows(path: Path) -> dict[str, list[tuple[datetime, datetime]]]:
    """``windows.json``: file name -> list of [start, end] timestamps."""
    data = json.loads(Path(path).read_text())
    return {
        name: [(parse_time(a), parse_time(b)) for a, b in pairs] for name, pairs in data.items()
    }


def load_series(path: Path) -> tuple[list[datetime], list[float]]:
    """A NAB CSV file with header ``timestamp,value``."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        rows = [(parse_time(r["timestamp"]), float(r["value"])) for r in reader]
    return [t for t, _ in rows], [v for _, v in rows]


def window_rows(
    timestamps: Sequence[datetime], spans: Iterable[tuple[datetime, datetime]]
) -> list[Window]:
    """The rows inside each [start, end] span (inclusive), in time order; empty spans dropped."""
    windows = []
    for start, end in spans:
        idx = [i for i, t in enumerate(timestamps) if start <= t <= end]
        if idx:
            windows.append(Window(idx[0], idx[-1]))
    return sorted(windows, key=lambda w: w.left)


def score_file(alerts: Sequence[bool], windows: Sequence[Window], profile: Profile) -> FileScore:
    """Score one file's alerts (one bool per row) against its windows."""
    n = len(alerts)
    start = warmup_rows(n)
    max_tp = sig(-1.0)
    best: dict[int, float] = {}  # window number -> best earned score
    fp_count = 0
    fp_cost = 0.0
    w_next = 0  # first window whose right edge is not yet behind us
    for i in range(start, n):
        while w_next < len(windows) and windows[w_next].right < i:
            w_next += 1
        if not alerts[i]:
            continue
        if w_next < len(windows) and windows[w_next].left <= i:
            w = windows[w_next]
            earned = sig(-(w.right - i + 1) / w.width) / max_tp * profile.tp
            best[w_next] = max(best.get(w_next, -math.inf), earned)
            continue
        fp_count += 1
        if w_next == 0:
            fp_cost += profile.fp
        else:
            prev = windows[w_next - 1]
            position = abs(prev.right - i) / (prev.width - 1) if prev.width > 1 else math.inf
            fp_cost += -sig(position) * profile.fp
    tp = sum(best.values())
    fn_cost = (len(windows) - len(best)) * profile.fn
    return FileScore(
        raw=tp - fp_cost - fn_cost,
        windows=len(windows),
        detected=len(best),
        tp=tp,
        fp_count=fp_count,
        fp_cost=fp_cost,
        fn_cost=fn_cost,
    )


def normalised(scores: Iterable[FileScore], profile: Profile) -> float:
    """``100 * (raw - null) / (perfect - null)`` over a set of files."""
    scores = list(scores)
    n_windows = sum(s.windows for s in scores)
    if n_windows == 0:
        raise ValueError("no labelled windows to score against")
    raw = sum(s.raw for s in scores)
    perfect = n_windows * profile.tp
    null = -n_windows * profile.fn
    return 100.0 * (raw - null) / (perfect - null)


def perfect_alerts(n_rows: int, windows: Sequence[Window]) -> list[bool]:
    """An alert at each window's first row and nowhere else (scores 100)."""
    alerts = [False] * n_rows
    for w in windows:
        alerts[w.left] = True
    return alerts
