"""The API's response shapes, as pydantic models: they are what ``/openapi.json`` documents.

A mention is the JSON-lines shape of ``uproar query --format json`` (DESIGN.md's mention plus
``id``, ``brands`` and ``classification``); every text field is untrusted text from the internet.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class Author(BaseModel):
    handle: str
    name: str
    followers: int | None = None


class Engagement(BaseModel):
    likes: int = 0
    reposts: int = 0
    replies: int = 0
    score: int = 0


class Classification(BaseModel):
    sentiment: str
    scores: dict[str, float]
    complaint: float
    severity: int | None = None  # complaint severity 0-4; None: not rated
    model: str | None = None
    model_version: str | None = None


class Mention(BaseModel):
    id: int
    source: str
    source_id: str
    url: str
    text: str = Field(description="Untrusted text as posted; render it as text, never as HTML.")
    author: Author
    created_at: str = Field(description="ISO 8601, UTC (Z).")
    engagement: Engagement
    lang: str | None = None
    parent_id: str | None = None
    conversation_id: str | None = None
    brands: list[str]
    classification: Classification | None = None


class MentionDetail(Mention):
    fetched_at: str
    raw: dict[str, Any] | None = Field(
        default=None,
        description="The source's raw payload; null when there is none (a replayed mention "
        "without extra keys) or retention cleared it.",
    )


class MentionPage(BaseModel):
    items: list[Mention]
    offset: int
    limit: int
    next_offset: int | None = Field(description="Pass as offset for the next page; null: last.")
    empty: str | None = Field(
        default=None,
        description="When the first page is empty: why, and what the archive holds.",
    )


class VolumeBucket(BaseModel):
    bucket: datetime = Field(description="Start of the UTC hour or day.")
    brand: str
    mentions: int
    complaints: int
    share: float = Field(description="complaints / mentions.")


class SentimentBucket(BaseModel):
    bucket: datetime
    negative: int
    neutral: int
    positive: int
    # Complaints that accuse or blame (severity 3-4): how angry, beside how negative.
    severe_complaints: int = 0


class Story(BaseModel):
    id: int
    brand: str
    title: str = Field(description="Untrusted: made from the posts' words.")
    first_seen: datetime
    last_seen: datetime
    mention_count: int
    rate_per_hour: float = Field(description="Mentions in the hour before last_seen.")
    growth_per_hour: float = Field(description="That hour over the hour before.")
    total_reach: float = Field(description="Author followers + engagement, summed.")
    sources: dict[str, int]
    key_phrases: list[str] = Field(description="The most frequent phrases, most frequent first.")


class StoryPage(BaseModel):
    items: list[Story]
    offset: int
    limit: int
    next_offset: int | None
    empty: str | None = Field(
        default=None,
        description="When the first page is empty: why, and what the archive holds.",
    )


class HourCount(BaseModel):
    bucket: datetime
    mentions: int


class IncidentSignal(BaseModel):
    at: datetime
    kind: str
    severity: str
    count: int
    expected: float
    score: float
    reasons: Any


class Incident(BaseModel):
    id: int
    status: str
    severity: str
    title: str
    opened_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    signals: list[IncidentSignal] = Field(description="What the alert said, oldest first.")


class StoryDetail(Story):
    merged_from: int | None = Field(
        default=None, description="The id asked for, when that story was merged into this one."
    )
    hourly: list[HourCount] = Field(description="The story's mentions per hour, oldest first.")
    incidents: list[Incident] = Field(
        description="Alerts of the brand while the story ran, with their signals and "
        "acknowledgements: the story's timeline."
    )
    posts: list[Mention] = Field(description="Its most-engaged mentions.")
