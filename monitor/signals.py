"""What detection hands to alerting: a signal that something about a brand is unusual."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True, slots=True)
class Example:
    """A post quoted in an alert. All text here is untrusted and must be escaped by the sender."""

    source: str
    source_id: str
    url: str
    text: str
    author_handle: str
    author_followers: int | None
    reach: int  # likes + reposts + replies + score, for ranking "most shared"
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Signal:
    """One detector firing for one brand.

    ``count`` complaints were heard in the ``window`` ending at ``at``; the baseline expected
    ``expected`` ± ``spread``. ``reasons`` are the numbers in words, ready to show a person.
    For a ``story_growth`` signal ``count`` is the story's complaints in the window and
    ``expected`` its count in the window before; the spread signals (one post) count 1, and
    their first reason holds the number that matters (reposts per minute, followers).
    """

    brand: str
    brand_name: str
    # "complaint_volume", "story_growth", "engagement_velocity" or "high_reach_author"
    kind: str
    severity: Severity
    at: datetime
    window: timedelta
    count: int
    expected: float
    spread: float
    score: float
    reasons: tuple[str, ...] = ()
    examples: tuple[Example, ...] = field(default_factory=tuple)
    story_id: int | None = None  # the archive's story this signal is about, if any
    story_title: str | None = None
    # The story in numbers, for people (monitor.detect.stories.StoryTracker.facts): count,
    # since, last_hour, growth_per_hour, reach, sources, seed (its first complaint, an
    # Example), reposts ({text key: other posts with that text}), previous_title.
    story_facts: dict[str, Any] | None = None


# A post's text is cut here before it is stored; Slack could never show more in one section.
MAX_STORED_TEXT = 3000


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def example_dict(example: Example) -> dict[str, Any]:
    """An example as stored in an incident's signal summary and a story's top posts."""
    text = example.text
    if len(text) > MAX_STORED_TEXT:
        text = text[: MAX_STORED_TEXT - 1] + "…"
    return {
        "source": example.source,
        "source_id": example.source_id,
        "url": example.url,
        "text": text,
        "author_handle": example.author_handle,
        "author_followers": example.author_followers,
        "reach": example.reach,
        "created_at": _utc(example.created_at).isoformat(),
    }
