"""A streaming, causal spike detector for count series (mentions or complaints per bucket) and,
with its record channel, for any other measured series (CPU, temperatures, prices, speeds).

Each ``update(ts, value)`` decides from that row and the rows before it only, in O(1) time and
a few microseconds of pure Python.

How it works, in log space (``y = log1p(count)``, so ×10 from 3 and from 300 look alike):

* ``level`` — the normal level: an exponentially weighted mean (half-life ``baseline_halflife``)
  of *winsorised* values: a value above ``expected + clip × spread`` is learned as that bound,
  so a spike moves the baseline only a little and cannot become the new normal within the hour;
* ``season`` (optional) — an hour-of-day profile: per hour, a slow average of how far that hour
  sits above or below ``level`` (half-life ``season_halflife``, counted in days);
* ``spread`` — an exponentially weighted mean absolute deviation (as σ), floored by the Poisson
  noise of a small count (``1/sqrt(expected + 1)`` in log space) and by ``min_spread``;
* ``score`` — ``(log1p(smoothed count) - expected) / spread``; the count is smoothed by a short
  EWMA (``fast_halflife``) so one stray row weighs less than a burst that lasts;
* ``peak`` (optional) — the highest recent score, decaying with ``peak_halflife``: a new alert
  needs ``score ≥ peak_ratio × peak``, i.e. a spike larger than the recent ones. A series whose
  bursts are routine (a bot posting every day) thus stops alerting on them.
* ``typical`` (optional) — the median of the highest score of each of the last ``typical_days``
  UTC days: how surprising an ordinary day's biggest moment is *on this series*. An alert needs
  ``score ≥ typical + typical_margin`` as well, so the threshold adapts to each series' own
  score scale online (a bursty series needs a larger surprise than a calm one), with no
  per-series tuning. Updated once a day; the median ignores the few days with real bursts.
* ``weekly`` (optional, ``weekly_halflife``) — per hour of the week, the best score of earlier
  weeks, decayed: a surge needs that + ``typical_margin``, so a Monday-morning peak that
  recurs every week stops alerting from its second week.

An alert needs ``score ≥ threshold`` (and ``≥ typical + typical_margin``), ``count ≥ min_count``,
the recent-peak test, the end of the previous alert's ``cooldown`` and the end of the
``warmup``: that is the *surge* channel, built for counts.

* ``record`` (optional, ``record_margin > 0``) — a second channel for any series, counts or
  not: a value above the highest (or below the lowest) of the last ``record_rows`` rows by more
  than ``record_margin`` × their range. It has no notion of scale or units, so nothing in it is
  fitted to one kind of series; the horizon, warm-up and cooldown count rows, the series' own
  clock. Two monotonic deques give the horizon's extremes in O(1) amortised time and memory
  bounded by ``record_rows``. A record also needs ``record_min_score`` σ of surprise on the
  series' own scale (the surge score for a count series — whole numbers ≥ 0 — else the raw
  values' σ) and, for a count series, ``min_count``; one excursion into new territory alerts
  once (the channel re-arms when the series is back in the middle of the range it left).

Two presets: :data:`NAB` (the defaults and ``uproar detect``'s configuration for every series;
surge knobs tuned on the five NAB Twitter series, record knobs on all 53 NAB files, judged
leave-one-category-out by ``bench/detect``) and
:data:`DAEMON` (per-brand complaint counts in ``monitor.detect.brand``: a sliding 30-minute
count every 5-minute bucket; faster to learn, seasonal, re-alerts within hours if it grows).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# The mean absolute deviation of a normal variable is 0.798 σ; dividing by it reports σ units.
_MAD_TO_SIGMA = 0.7979


@dataclass(frozen=True, slots=True)
class SpikeSettings:
    """Knobs of :class:`SpikeDetector`. Durations are wall-clock, so any bucket size works.

    The defaults are the NAB preset (see ``bench/detect``); see :data:`DAEMON` for the daemon's.
    """

    threshold: float = 3.0  # alert when the score (σ above expected) reaches this
    min_count: float = 10.0  # never alert on a count below this, however unusual
    cooldown: timedelta = timedelta(hours=8)  # after an alert, stay quiet this long
    warmup: timedelta = timedelta(days=1)  # learn only, never alert, for this long
    baseline_halflife: timedelta = timedelta(days=3)  # how fast the normal level follows change
    spread_halflife: timedelta = timedelta(days=5)  # how fast the normal noise follows change
    seasonality: bool = False  # learn an hour-of-day profile
    season_halflife: timedelta = timedelta(days=7)  # how fast the hour-of-day profile learns
    fast_halflife: timedelta = timedelta(minutes=5)  # smoothing of the current count (0: none)
    clip: float = 4.0  # winsorise learning at expected ± clip × spread
    min_spread: float = 0.2  # floor of σ in log units
    peak_halflife: timedelta = timedelta(days=30)  # memory of recent peak scores (0: off)
    peak_ratio: float = 1.0  # a new alert needs score ≥ peak_ratio × the decayed recent peak
    typical_days: int = 14  # days of daily-maximum scores in the typical-day median (0: off)
    typical_margin: float = 1.0  # a new alert needs score ≥ that median + this
    # A surge at an hour of the week that scored as high in the last weeks (a Monday-morning
    # peak) is routine: it needs that hour's decayed best + typical_margin (0: off).
    weekly_halflife: timedelta = timedelta(days=21)
    # The record channel (0: off): a value beyond the highest (or lowest) of the last
    # ``record_rows`` rows by more than ``record_margin`` × their range alerts, whatever the
    # series measures; it needs no scale, so it carries to series unlike the ones it was tried
    # on. It counts rows, not time: a series' own sampling rate is its clock.
    record_margin: float = 0.02
    record_rows: int = 5000  # how far back "the highest so far" looks
    record_warmup_rows: int = 150  # records count only after this many rows (and ``warmup``)
    record_cooldown_rows: int = 100  # after any alert, a record must wait this many rows
    # A record also needs this much surprise (σ from expected) on the series' own scale: the
    # surge channel's log-count scale for a count series (whole numbers ≥ 0), the raw values'
    # σ for a measurement. A count series' new highs made by plain noise stay quiet.
    record_min_score: float = 1.0
    # ... and must exceed the range it leaves by this many σ of the raw values (their
    # exponentially weighted mean absolute deviation over about ``record_halflife_rows``)
    record_min_excess: float = 0.0
    record_halflife_rows: int = 288

    def __post_init__(self) -> None:
        if self.threshold <= 0 or self.clip <= 0 or self.min_spread <= 0:
            raise ValueError("threshold, clip and min_spread must be positive")
        if self.typical_days < 0:
            raise ValueError("typical_days must be 0 (off) or positive")
        if self.record_margin < 0 or self.record_rows <= 0:
            raise ValueError("record_margin must be 0 (off) or positive, record_rows positive")
        for name in ("baseline_halflife", "spread_halflife", "season_halflife"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be positive")


# ``uproar detect``'s default, for any series (counts, CPU, temperatures, prices, speeds). The
# surge channel keeps the knobs fitted on the five NAB Twitter series (bench/DETECT.md); the
# record channel was added for every other kind of series with two knobs fitted on all 53 NAB
# files (record_margin 0.02 of the horizon's range, cooldown 8 h instead of 24 h) and judged
# leave-one-category-out (bench/detect prints that first). ``record_min_score`` 1.0 keeps a count
# series' noise records quiet. Without the channel the preset scored 24.9 on all 53 files, with
# it 59.4 (bench/DETECT.md has every attempt).
NAB = SpikeSettings()

# Per-brand complaint counts (monitor.detect.brand): BrandMonitor feeds the complaint count of a
# sliding window (already smooth), learns in hours with an hour-of-day profile, and may alert
# again the same day when the story grows beyond what it already reported.
DAEMON = SpikeSettings(
    threshold=3.5,
    min_count=5.0,
    cooldown=timedelta(hours=2),
    warmup=timedelta(hours=3),
    baseline_halflife=timedelta(days=1),
    spread_halflife=timedelta(days=3),
    seasonality=True,
    season_halflife=timedelta(days=7),
    fast_halflife=timedelta(0),
    clip=3.0,
    min_spread=0.2,
    peak_halflife=timedelta(hours=6),
    # 1.0, not more: the peak includes the previous row's score, so a ratio above 1 would veto
    # a story that grows steadily (each 5-minute score a little above the last) forever.
    peak_ratio=1.0,
    # off: the daemon re-alerts within hours as a story grows; its score scale is set by
    # ``threshold`` alone (tests/detect/test_stories.py, bench/story_scenario.py)
    typical_days=0,
    # off: the surge channel's hour-of-day profile is what complaint counts need; a record of a
    # count already far above normal is a surge too.
    record_margin=0.0,
)

PRESETS: dict[str, SpikeSettings] = {"nab": NAB, "daemon": DAEMON}

# The knobs fitted on the NAB corpus and the values they were chosen from, so that
# ``bench/detect`` can refit them on all but one category and score the one left out (its
# headline). The surge knobs were fitted on the Twitter series in an earlier round and stay as
# they are; the NAB preset is one point of this grid.
TUNING_GRID: list[dict[str, object]] = [
    {
        "record_margin": margin,
        "cooldown": timedelta(hours=hours),
        "record_min_score": surprise,
        "record_warmup_rows": warmup,
    }
    for margin in (0.01, 0.02, 0.05)
    for hours in (8, 24)
    for surprise in (0.5, 1.0, 2.0)
    for warmup in (150, 300)
]


@dataclass(frozen=True, slots=True)
class Decision:
    score: float  # σ above expected (negative: below)
    alert: bool
    expected: float  # the count the baseline expected for this row
    spread: float  # one σ above ``expected``, in counts
    channel: str = ""  # which test raised the alert: "surge" or "record" ("" when none)


def _alpha(step: float, halflife: float) -> float:
    """EWMA weight of a new value ``step`` seconds after the previous one."""
    if halflife <= 0.0:
        return 1.0
    return 1.0 - 0.5 ** (step / halflife)


class SpikeDetector:
    """One series. Feed rows in time order; each call returns the decision for that row.

    Naive timestamps are taken as UTC. Deterministic: same rows in, same decisions out.
    """

    def __init__(self, settings: SpikeSettings | None = None) -> None:
        self.settings = s = settings or NAB
        self._hl_level = s.baseline_halflife.total_seconds()
        self._hl_spread = s.spread_halflife.total_seconds()
        self._hl_season = s.season_halflife.total_seconds()
        self._hl_fast = s.fast_halflife.total_seconds()
        self._hl_peak = s.peak_halflife.total_seconds()
        self._cooldown = s.cooldown.total_seconds()
        self._warmup = s.warmup.total_seconds()
        self._start = 0.0
        self._last: float | None = None
        self._last_alert = -math.inf
        self._level = 0.0
        self._dev = 0.0
        self._fast = 0.0
        self._peak = 0.0
        self._season = [0.0] * 24
        self._weights_step = -1.0
        self._weights = (0.0, 0.0, 0.0, 0.0, 0.0)
        self._day = -1  # UTC day number of the current row (typical-day test)
        self._day_max = -math.inf  # the highest score so far today
        self._day_maxima: list[float] = []  # the last ``typical_days`` days' highest scores
        self._threshold = s.threshold  # max(threshold, typical + margin), updated once a day
        self._record = s.record_margin > 0.0
        self._hl_week = s.weekly_halflife.total_seconds()
        # per hour of the week: [best of earlier weeks, when it was set, best this week, week]
        self._week = [[-math.inf, 0.0, -math.inf, -1.0] for _ in range(168)]
        self._integers = True  # every value so far a whole number ≥ 0: a count series
        # after a record alert: the edge of the range the series left (None: armed)
        self._left_above: float | None = None
        self._left_below: float | None = None
        self._left_row = 0
        self._raw_mean: float | None = None  # EW mean and mean absolute deviation of raw values
        self._raw_dev = 0.0
        self._raw_alpha = 1.0 - 0.5 ** (1.0 / max(1, s.record_halflife_rows))
        self._row = 0  # rows seen (the record channel's clock)
        self._last_alert_row = -(1 << 62)
        # monotonic deques of (row, value): the highest / lowest value of the horizon first.
        # Their length is bounded by ``record_rows``, whatever the series' length.
        self._highs: deque[tuple[int, float]] = deque()
        self._lows: deque[tuple[int, float]] = deque()

    def _weights_for(self, step: float) -> tuple[float, float, float, float, float]:
        # rows are usually evenly spaced: compute the five weights once per distinct step
        if step != self._weights_step:
            self._weights_step = step
            self._weights = (
                _alpha(step, self._hl_level),
                _alpha(step, self._hl_spread),
                # an hour-of-day slot sees 3600/step rows a day, so one row ages it by 24 × step
                _alpha(24.0 * step, self._hl_season),
                _alpha(step, self._hl_fast),
                0.5 ** (step / self._hl_peak) if self._hl_peak > 0.0 else 0.0,
            )
        return self._weights

    def update(self, ts: datetime, value: float) -> Decision:
        s = self.settings
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        now = ts.timestamp()
        if value != value:  # NaN counts as zero
            value = 0.0
        raw = value  # the record channel takes any real value, negative ones too
        if value < 0.0:  # the log channel counts: a negative count counts as zero
            value = 0.0
        y = math.log1p(value)
        if self._last is None:
            self._start = self._last = now
            self._level = y
            self._dev = 0.5
            self._fast = value
            if self._record:
                self._highs.append((0, raw))
                self._lows.append((0, raw))
            return Decision(0.0, False, value, 0.0)
        step = now - self._last
        if step <= 0.0:
            step = 1.0  # a repeated timestamp still moves time a little
        self._last = now
        a_level, a_dev, a_season, a_fast, peak_decay = self._weights_for(step)

        slot = ts.astimezone(UTC).hour if s.seasonality else 0
        season = self._season[slot]
        expected = self._level + season
        spread = self._dev / _MAD_TO_SIGMA
        lam = math.expm1(expected) if expected > 0.0 else 0.0
        poisson = math.sqrt(lam) / (1.0 + lam)  # σ of log1p(Poisson(lam)), about
        if spread < poisson:
            spread = poisson
        if spread < s.min_spread:
            spread = s.min_spread
        self._fast += a_fast * (value - self._fast)
        score = (math.log1p(self._fast) - expected) / spread
        peak = self._peak * peak_decay
        self._peak = score if score > peak else peak
        if s.typical_days:
            day = int(now // 86400.0)
            if day != self._day:
                self._new_day(day)
            if score > self._day_max:
                self._day_max = score

        alert = (
            score >= self._threshold
            and value >= s.min_count
            and score >= s.peak_ratio * peak
            and now - self._last_alert >= self._cooldown
            and now - self._start >= self._warmup
        )
        if self._hl_week > 0.0:
            alert = self._weekly(now, score) and alert
        channel = "surge" if alert else ""
        if self._record:
            self._row += 1
            if raw < 0.0 or not float(raw).is_integer():  # inf too, without OverflowError
                self._integers = False
            record, excess, raw_z, middle = self._is_record(raw)
            if record and not alert:
                # surprise on the series' own scale: log counts for a count series, the raw
                # values' σ for a measurement (log1p says little about 0.03 or -20)
                surprise = abs(score) if self._integers else abs(raw_z)
                alert = (
                    surprise >= s.record_min_score
                    and excess >= s.record_min_excess
                    # a count series keeps min_count: 5 after a month of 0-4 is not news
                    and (not self._integers or raw >= s.min_count or record < 0)
                    and (self._left_above is None if record > 0 else self._left_below is None)
                    and self._row - self._last_alert_row >= s.record_cooldown_rows
                    and self._row >= s.record_warmup_rows
                    and now - self._start >= self._warmup  # and a day of history (NAB: 1 d)
                    and now - self._last_alert >= self._cooldown
                )
                channel = "record" if alert else ""
                # re-armed once the series is back in the middle of the range it left
                if alert and record > 0:
                    self._left_above, self._left_row = middle, self._row
                elif alert:
                    self._left_below, self._left_row = middle, self._row
        if alert:
            self._last_alert = now
            self._last_alert_row = self._row

        # learn, winsorised so the spike itself barely moves the baseline
        hi = expected + s.clip * spread
        lo = expected - s.clip * spread
        resid = (hi if y > hi else lo if y < lo else y) - expected
        self._level += a_level * resid
        self._dev += a_dev * ((resid if resid >= 0.0 else -resid) - self._dev)
        if s.seasonality:
            # the hour's offset from the level absorbs a share of what the level did not expect
            self._season[slot] = season + a_season * resid

        exp_count = math.expm1(expected)
        return Decision(
            score, alert, exp_count, math.expm1(expected + spread) - exp_count, channel
        )

    def _weekly(self, now: float, score: float) -> bool:
        """Whether ``score`` beats what this hour of the week reached in earlier weeks.

        Remembers the score either way. The hour's two neighbours count too, so a routine peak
        that moves by an hour from week to week is still the same peak; rows of the current
        week never veto each other.
        """
        week = int(now // 604800.0)
        slot = int(now // 3600.0) % 168
        best = -math.inf
        for k in (slot - 1, slot, (slot + 1) % 168):
            memory = self._week[k]
            if memory[3] != week and memory[2] > -math.inf:  # fold the finished week in
                memory[0] = max(self._decayed(memory, now), memory[2])
                memory[1] = now
                memory[2] = -math.inf
            memory[3] = week
            earlier = self._decayed(memory, now)
            if earlier > best:
                best = earlier
        current = self._week[slot]
        if score > current[2]:
            current[2] = score
        return score >= best + self.settings.typical_margin

    def _decayed(self, memory: list[float], now: float) -> float:
        if memory[0] <= 0.0:
            return memory[0]
        return memory[0] * 0.5 ** ((now - memory[1]) / self._hl_week)

    def _is_record(self, value: float) -> tuple[int, float, float, float]:
        """Whether ``value`` is a record, then remember it: (+1 above the horizon's range by the
        margin, -1 below it, else 0; how far past the range it went and how far from the raw
        mean it lies, both in raw σ; the middle of the range).

        One excursion into new territory is one record: after a record alert upwards (or
        downwards), the next one needs the series to have come back inside the range it left,
        so a level that moves for good alerts once, not at each new high of its own noise.
        "Back" means back in the middle of that range, not a dip of the new level's noise.
        """
        highs, lows, row = self._highs, self._lows, self._row
        cutoff = row - self.settings.record_rows
        while highs and highs[0][0] < cutoff:
            highs.popleft()
        while lows and lows[0][0] < cutoff:
            lows.popleft()
        record, excess, raw_z, middle = 0, 0.0, 0.0, 0.0
        if highs and lows:
            top, bottom = highs[0][1], lows[0][1]
            middle = (top + bottom) / 2.0
            margin = self.settings.record_margin * (top - bottom)
            if value > top + margin:
                record = 1
            elif value < bottom - margin:
                record = -1
            sigma = self._raw_dev / _MAD_TO_SIGMA
            beyond = value - top if record > 0 else bottom - value
            excess = beyond / sigma if sigma > 0.0 else math.inf
            mean = self._raw_mean if self._raw_mean is not None else value
            raw_z = (value - mean) / sigma if sigma > 0.0 else math.inf
            if self._left_above is not None and (
                value <= self._left_above or row - self._left_row > self.settings.record_rows
            ):
                self._left_above = None  # back inside (or long gone): re-armed upwards
            if self._left_below is not None and (
                value >= self._left_below or row - self._left_row > self.settings.record_rows
            ):
                self._left_below = None
        if self._raw_mean is None:
            self._raw_mean = value
        else:
            resid = value - self._raw_mean
            self._raw_mean += self._raw_alpha * resid
            self._raw_dev += self._raw_alpha * (abs(resid) - self._raw_dev)
        while highs and highs[-1][1] <= value:
            highs.pop()
        highs.append((row, value))
        while lows and lows[-1][1] >= value:
            lows.pop()
        lows.append((row, value))
        return record, excess, raw_z, middle

    def _new_day(self, day: int) -> None:
        # close the previous day (if any): remember its highest score, re-derive the threshold
        s = self.settings
        if self._day >= 0:
            self._day_maxima.append(self._day_max)
            del self._day_maxima[: -s.typical_days]
            ranked = sorted(self._day_maxima)
            typical = ranked[len(ranked) // 2]
            self._threshold = max(s.threshold, typical + s.typical_margin)
        self._day = day
        self._day_max = -math.inf
