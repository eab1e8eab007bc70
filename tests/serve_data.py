"""A small archive for the API and dashboard tests: varied mentions, hostile texts, a story."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from connectors.base import Author, Engagement, Mention
from models.base import Classification
from monitor.archive import Archive, StoredMention
from monitor.archive.schema import incidents, mentions, signals, stories, story_mentions

T0 = datetime(2026, 3, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=10)
HOSTILE_SCRIPT = '<script>document.title="pwned"</script> guitar broke'
HOSTILE_IMG = '<img src=x onerror="document.title=\'pwned\'"> guitar case'
TEXTS = (
    "United broke my guitar on the tarmac",
    "Lost luggage again, refund please",
    "Great crew on my flight today",
    "Delayed three hours, no information at the gate",
)
SENTIMENTS = ("negative", "negative", "positive", "neutral")


def _classification(sentiment: str, complaint: float) -> Classification:
    scores = {"negative": 0.1, "neutral": 0.1, "positive": 0.1}
    scores[sentiment] = 0.8
    return Classification(sentiment=sentiment, scores=scores, complaint=complaint)  # type: ignore[arg-type]


def build_data() -> list[StoredMention]:
    data = []
    for i in range(120):
        kind = i % len(TEXTS)
        sentiment = SENTIMENTS[kind]
        mention = Mention(
            source=("twitter", "reddit", "rss")[i % 3],
            source_id=f"m{i}",
            url=f"https://example.com/{i}",
            text=f"{TEXTS[kind]} #{i}",
            created_at=T0 + timedelta(hours=2 * i),
            author=Author(handle=f"user{i % 7}", name=f"User {i % 7}", followers=i),
            engagement=Engagement(likes=i % 11, reposts=i % 3),
            lang="en",
            raw={"id": f"m{i}", "note": "<b>raw</b>"},
        )
        complaint = 0.9 if sentiment == "negative" else 0.1
        brands = ("united",) if i % 2 == 0 else ("larkspur",)
        data.append(StoredMention(mention, brands, _classification(sentiment, complaint), "m", "1"))
    for j, text in enumerate((HOSTILE_SCRIPT, HOSTILE_IMG)):
        mention = Mention(
            source="twitter",
            source_id=f"hostile{j}",
            url="javascript:alert(1)",
            text=text,
            created_at=T0 + timedelta(days=9, hours=j),
            author=Author(handle="<b>evil</b>", name="<i>x</i>"),
            engagement=Engagement(likes=500),
        )
        classification = _classification("negative", 0.95)
        data.append(StoredMention(mention, ("united",), classification, "m", "1"))
    return data


STORY_START = T0 + timedelta(days=2)
STORY_END = STORY_START + timedelta(hours=12)


def story_members() -> list[str]:
    """source_ids of the story's mentions: united's guitar posts in its 12 hours."""
    return [
        s.mention.source_id
        for s in build_data()
        if "united" in s.brands
        and "guitar" in s.mention.text
        and STORY_START <= s.mention.created_at <= STORY_END
    ]


def fill(archive: Archive) -> tuple[int, int]:
    """Store the data, one story with its members and one incident with two signals.

    Returns ``(story id, incident id)``.
    """
    archive.store(build_data(), fetched_at=NOW)
    opened = STORY_START
    with archive.write() as connection:
        incident_id = connection.execute(
            incidents.insert().values(
                brand="united", status="acknowledged", severity="high",
                title="Guitar <incident>", opened_at=opened, updated_at=opened,
                last_signal_at=opened + timedelta(hours=6), peak_count=12,
                acknowledged_by="U123", acknowledged_at=opened + timedelta(minutes=20),
            )
        ).inserted_primary_key[0]
        connection.execute(signals.insert(), [_signal(incident_id, opened + timedelta(hours=h), h)
                                              for h in (0, 6)])
        members = story_members()
        story_id = connection.execute(
            stories.insert().values(
                brand="united", title="Guitar <story>", first_seen=STORY_START,
                last_seen=STORY_END, mention_count=len(members), rate_per_hour=1.0,
                growth_per_hour=0.5, total_reach=123.0, sources={"twitter": len(members)},
                top_posts=[], key_phrases={"broke guitar": 3, "tarmac": 2}, embedded=0,
                updated_at=NOW,
            )
        ).inserted_primary_key[0]
        rows = connection.execute(
            select(mentions.c.id, mentions.c.created_at).where(mentions.c.source_id.in_(members))
        ).all()
        connection.execute(story_mentions.insert(), [
            {"story_id": story_id, "mention_id": row.id, "brand": "united", "similarity": 0.9,
             "created_at": row.created_at} for row in rows
        ])
    return int(story_id), int(incident_id)
def _signal(story_id: int, at: datetime, h: int) -> dict[str, Any]:
    return {"incident_id": story_id, "brand": "united", "kind": "volume", "severity": "high",
            "at": at, "count": 10 + h, "expected": 2.0, "spread": 1.0, "score": 5.0,
            "reasons": ["spike"], "examples": []}
