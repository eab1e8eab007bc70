"""Stories in the archive: ``stories`` rows kept up to date, ``story_mentions`` for each member.

:func:`save` writes the stories a batch changed and the batch's memberships in one transaction;
:func:`load_open` reads the stories still open at start-up so grouping resumes where it stopped.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, select

from monitor.archive.schema import mentions, stories, story_mentions
from monitor.detect.stories import MAX_STORY_PHRASES, Story
from monitor.signals import Example, example_dict

# Key phrases stored per story row (the most frequent); the tracker keeps more in memory.
STORED_PHRASES = 50


@dataclass(frozen=True, slots=True)
class Membership:
    """One complaint (by its identity) joined ``story`` for one brand."""

    story: Story
    source: str
    source_id: str
    similarity: float
    created_at: datetime


def save(
    connection: Connection, changed: Sequence[Story], members: Sequence[Membership], now: datetime
) -> None:
    """Insert or update ``changed`` stories (setting their ``id``), then add ``members``.

    A story merged into another is saved after its survivor, with ``merged_into``, and its
    members move to the survivor."""
    for story in sorted(changed, key=lambda s: s.merged_into is not None):
        values = _row(story, now)
        if story.id is None:
            result = connection.execute(stories.insert().values(**values))
            key = result.inserted_primary_key
            assert key is not None
            story.id = int(key[0])
        else:
            connection.execute(stories.update().where(stories.c.id == story.id).values(**values))
    for story in changed:
        survivor = story.survivor()
        if survivor is not story and story.id is not None and survivor.id is not None:
            connection.execute(
                story_mentions.update()
                .where(story_mentions.c.story_id == story.id)
                .values(story_id=survivor.id)
            )
            connection.execute(
                stories.update()
                .where(stories.c.merged_into == story.id)
                .values(merged_into=survivor.id)
            )
    ids = _mention_ids(connection, {(m.source, m.source_id) for m in members})
    rows, seen = [], set()
    for m in members:
        mention_id = ids.get((m.source, m.source_id))
        story = m.story.survivor()
        if mention_id is None or story.id is None or (story.id, mention_id) in seen:
            continue
        seen.add((story.id, mention_id))
        rows.append(
            {
                "story_id": story.id,
                "mention_id": mention_id,
                "brand": story.brand,
                "similarity": round(float(m.similarity), 4),
                "created_at": m.created_at.astimezone(UTC),
            }
        )
    if rows:
        connection.execute(story_mentions.insert(), rows)


def load_open(connection: Connection, now: datetime, idle: timedelta) -> list[Story]:
    """Stories whose last mention is within ``idle`` of ``now``, with their recent member times."""
    rows = connection.execute(
        select(stories)
        .where(stories.c.last_seen >= now - idle, stories.c.merged_into.is_(None))
        .order_by(stories.c.id)
    ).mappings()
    out = []
    for row in rows:
        story = _story(row)
        times = connection.execute(
            select(story_mentions.c.created_at)
            .where(
                story_mentions.c.story_id == story.id,
                story_mentions.c.created_at >= now - timedelta(hours=2),
            )
            .order_by(story_mentions.c.created_at)
        ).scalars()
        story.times = deque(_aware(t) for t in times)
        out.append(story)
    return out


def example_from(data: dict[str, Any]) -> Example:
    return Example(
        source=str(data.get("source", "")),
        source_id=str(data.get("source_id", "")),
        url=str(data.get("url", "")),
        text=str(data.get("text", "")),
        author_handle=str(data.get("author_handle", "")),
        author_followers=data.get("author_followers"),
        reach=int(data.get("reach", 0)),
        created_at=_aware(datetime.fromisoformat(str(data["created_at"]))),
    )


# -- rows -----------------------------------------------------------------------------------------


def _row(story: Story, now: datetime) -> dict[str, Any]:
    centroid = story.centroid()
    return {
        "brand": story.brand,
        "title": story.title,
        "first_seen": story.first_seen,
        "last_seen": story.last_seen,
        "mention_count": story.count,
        "rate_per_hour": float(story.rate_per_hour(story.last_seen)),
        "growth_per_hour": float(story.growth_per_hour(story.last_seen)),
        "total_reach": float(story.reach),
        "sources": dict(story.sources),
        "top_posts": [example_dict(e) for e in story.most_shared()],
        "key_phrases": dict(story.phrase_counts.most_common(STORED_PHRASES)),
        "centroid": None if centroid is None else [round(float(x), 5) for x in centroid],
        "embedded": story.embedded,
        "updated_at": now,
        "merged_into": story.merged_into.survivor().id if story.merged_into is not None else None,
    }


def _story(row: Any) -> Story:
    posts = [example_from(p) for p in row["top_posts"] or []]
    seed = min(posts, key=lambda e: e.created_at) if posts else None
    centroid = row["centroid"]
    embedded = int(row["embedded"] or 0)
    story = Story(
        brand=row["brand"],
        brand_name=row["brand"],
        first_seen=_aware(row["first_seen"]),
        last_seen=_aware(row["last_seen"]),
        id=int(row["id"]),
        count=int(row["mention_count"]),
        reach=int(row["total_reach"]),
        centroid_sum=None if centroid is None else np.asarray(centroid, np.float64) * embedded,
        embedded=embedded if centroid is not None else 0,
        phrase_counts=Counter(dict(list((row["key_phrases"] or {}).items())[:MAX_STORY_PHRASES])),
        sources=Counter(row["sources"] or {}),
        seed=seed,
        top=sorted(posts, key=lambda e: -e.reach),
        title=row["title"],
    )
    return story


def _mention_ids(connection: Connection, keys: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    by_source: dict[str, list[str]] = {}
    for source, source_id in keys:
        by_source.setdefault(source, []).append(source_id)
    out: dict[tuple[str, str], int] = {}
    for source, ids in by_source.items():
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = connection.execute(
                select(mentions.c.id, mentions.c.source_id).where(
                    mentions.c.source == source, mentions.c.source_id.in_(chunk)
                )
            )
            out.update({(source, sid): int(mid) for mid, sid in rows})
    return out


def _aware(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
