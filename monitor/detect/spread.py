"""Spread signals: one complaint spreading fast, or a complaint from an author many people follow.

* ``engagement_velocity``: between two reads of the same complaint (a source's refresh of a post
  it already returned), reposts + likes per minute, against the brand's norm — an EWMA of
  ``log1p(per-minute gain)`` and its mean absolute deviation over every complaint re-read.
* ``high_reach_author``: a complaint whose author has at least ``high_reach_followers``
  followers ("warning"; ten times that: "critical"), or at least the brand's 99th percentile of
  author followers (over its last ``FOLLOWER_SAMPLE`` mentions) and ``min_percentile_followers``
  ("info"; only with ``percentile_signals``, as 1% of all complaints pass it).

Posts are remembered in memory for ``track_for`` after they were first heard; a restart forgets
them (the next refresh is then a first read again).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from monitor.signals import Example, Severity, Signal

# Followers of this many recent mentions per brand give its 99th percentile.
FOLLOWER_SAMPLE = 5000
# The percentile needs this many samples before it means anything.
MIN_FOLLOWER_SAMPLES = 300
# Velocity norms need this many re-reads per brand before a relative test applies.
MIN_VELOCITY_SAMPLES = 30
_MAD_TO_SIGMA = 0.7979


@dataclass(frozen=True, slots=True)
class SpreadSettings:
    high_reach_followers: int = 100_000  # a complaint from an author this big is "warning"
    min_percentile_followers: int = 10_000  # the brand's 99th percentile rule needs at least this
    # The 99th-percentile rule as a signal of its own: off by default, since 1% of a brand's
    # complaints pass it (~6 "info" incidents per brand per week in bench/story_scenario.py).
    percentile_signals: bool = False
    min_velocity: float = 5.0  # reposts + likes per minute, never alert below
    absolute_velocity: float = 50.0  # per minute: alert even before the brand's norm is known
    velocity_threshold: float = 4.0  # σ above the brand's norm (log space)
    min_gain: int = 50  # reposts + likes gained between two reads, never alert below
    track_for: timedelta = timedelta(hours=48)
    max_tracked: int = 20_000


@dataclass(slots=True)
class _Post:
    brand: str
    brand_name: str
    example: Example
    at: datetime  # when its engagement was last read
    shares: int  # reposts + likes then
    alerted: bool = False


@dataclass(slots=True)
class _Norm:
    n: int = 0
    mean: float = 0.0
    dev: float = 0.3
    followers: deque[int] = field(default_factory=lambda: deque(maxlen=FOLLOWER_SAMPLE))
    _p99: float | None = None
    _p99_at: int = -1

    def p99(self) -> float | None:
        if len(self.followers) < MIN_FOLLOWER_SAMPLES:
            return None
        if self._p99 is None or len(self.followers) != self._p99_at or self._p99_at % 50 == 0:
            ordered = sorted(self.followers)
            self._p99 = float(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))])
            self._p99_at = len(self.followers)
        return self._p99


class SpreadMonitor:
    """Engagement velocity and high-reach authors of every brand's complaints."""

    def __init__(self, settings: SpreadSettings | None = None) -> None:
        self.settings = settings or SpreadSettings()
        self._posts: dict[tuple[str, str], list[_Post]] = {}
        self._order: deque[tuple[tuple[str, str], datetime]] = deque()
        self._norms: dict[str, _Norm] = {}
        self._pending: list[Signal] = []

    def observe_author(self, brand: str, followers: int | None) -> None:
        """Any mention of a brand (complaint or not): its author's followers, for the percentile."""
        if followers is not None and followers >= 0:
            self._norm(brand).followers.append(followers)

    def complaint(
        self, brand: str, brand_name: str, example: Example, shares: int, now: datetime
    ) -> None:
        """A new complaint: check its author's reach and start following its engagement."""
        now = _utc(now)
        key = (example.source, example.source_id)
        self._posts.setdefault(key, []).append(
            _Post(brand, brand_name, example, now, max(shares, 0))
        )
        self._order.append((key, now))
        self._forget(now)
        signal = self._reach_signal(brand, brand_name, example, now)
        if signal is not None:
            self._pending.append(signal)

    def refresh(
        self, source: str, source_id: str, example: Example, shares: int, now: datetime
    ) -> None:
        """A later read of a post: if it is a followed complaint, measure how fast it spreads."""
        now = _utc(now)
        for post in self._posts.get((source, source_id), []):
            minutes = (now - post.at).total_seconds() / 60.0
            if minutes <= 0:
                continue
            gain = max(shares - post.shares, 0)
            velocity = gain / minutes
            signal = self._velocity_signal(post, example, gain, minutes, velocity, now)
            norm = self._norm(post.brand)
            self._learn(norm, velocity)
            post.at, post.shares, post.example = now, max(shares, post.shares), example
            if signal is not None:
                post.alerted = True
                self._pending.append(signal)

    def take_signals(self) -> list[Signal]:
        out, self._pending = self._pending, []
        return out

    # -- internals ------------------------------------------------------------------------

    def _norm(self, brand: str) -> _Norm:
        norm = self._norms.get(brand)
        if norm is None:
            norm = self._norms[brand] = _Norm()
        return norm

    def _learn(self, norm: _Norm, velocity: float) -> None:
        y = math.log1p(velocity)
        alpha = max(0.02, 1.0 / (norm.n + 1))
        sigma = norm.dev / _MAD_TO_SIGMA
        resid = min(y - norm.mean, 4.0 * sigma) if norm.n else y - norm.mean
        norm.mean += alpha * resid
        norm.dev += alpha * (abs(resid) - norm.dev)
        norm.n += 1

    def _velocity_signal(
        self,
        post: _Post,
        example: Example,
        gain: int,
        minutes: float,
        velocity: float,
        now: datetime,
    ) -> Signal | None:
        s = self.settings
        if post.alerted or gain < s.min_gain or velocity < s.min_velocity:
            return None
        norm = self._norm(post.brand)
        sigma = max(norm.dev / _MAD_TO_SIGMA, 0.2)
        score = (math.log1p(velocity) - norm.mean) / sigma if norm.n else 0.0
        if norm.n < MIN_VELOCITY_SAMPLES:
            if velocity < s.absolute_velocity:
                return None
        elif score < s.velocity_threshold:
            return None
        usual = math.expm1(norm.mean) if norm.n else 0.0
        ratio = velocity / max(usual, 0.1)
        if velocity >= 10 * s.absolute_velocity:
            severity: Severity = "critical"
        elif velocity >= s.absolute_velocity or ratio >= 50:
            severity = "warning"
        else:
            severity = "info"
        who = f"@{example.author_handle.lstrip('@')}"
        reasons = (
            f"top post {gain:,} reposts and likes in {minutes:.0f} min "
            f"({velocity:,.1f} per minute), usual {usual:,.1f} per minute for "
            f"{post.brand_name} complaints",
            f"post by {who}, {example.author_followers or 0:,} followers, first heard "
            f"{_utc(post.example.created_at):%Y-%m-%d %H:%M} UTC",
        )
        return Signal(
            brand=post.brand,
            brand_name=post.brand_name,
            kind="engagement_velocity",
            severity=severity,
            at=now,
            window=timedelta(minutes=max(1, round(minutes))),
            count=1,  # one complaint (incidents count complaints); the numbers are in reasons
            expected=0.0,
            spread=0.0,
            score=score,
            reasons=reasons,
            examples=(example,),
        )

    def _reach_signal(
        self, brand: str, brand_name: str, example: Example, now: datetime
    ) -> Signal | None:
        s = self.settings
        followers = example.author_followers
        if followers is None:
            return None
        p99 = self._norm(brand).p99()
        if followers >= 10 * s.high_reach_followers:
            severity: Severity = "critical"
        elif followers >= s.high_reach_followers:
            severity = "warning"
        elif (
            s.percentile_signals
            and p99 is not None
            and followers >= max(p99, s.min_percentile_followers)
        ):
            severity = "info"
        else:
            return None
        usual = f"; {brand_name}'s 99th percentile {p99:,.0f}" if p99 is not None else ""
        reasons = (
            f"complaint from @{example.author_handle.lstrip('@')} with {followers:,} followers "
            f"(threshold {s.high_reach_followers:,}{usual})",
        )
        return Signal(
            brand=brand,
            brand_name=brand_name,
            kind="high_reach_author",
            severity=severity,
            at=now,
            window=timedelta(minutes=1),
            count=1,  # one complaint (incidents count complaints); the numbers are in reasons
            expected=0.0,
            spread=0.0,
            score=followers / max(float(s.high_reach_followers), 1.0),
            reasons=reasons,
            examples=(example,),
        )

    def _forget(self, now: datetime) -> None:
        horizon = now - self.settings.track_for
        while self._order and (
            self._order[0][1] < horizon or len(self._order) > self.settings.max_tracked
        ):
            key, _ = self._order.popleft()
            posts = self._posts.get(key)
            if posts:
                posts.pop(0)
                if not posts:
                    del self._posts[key]


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("spread signals need timezone-aware datetimes")
    return at.astimezone(UTC)
