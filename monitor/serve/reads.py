"""The reads the API needs beyond ``monitor.analyst``: one mention by id, and the stories.

A story is a row of ``stories`` (complaints about the same thing, grouped by
``monitor.detect.stories``) with its members in ``story_mentions``. Its timeline is its
members per hour plus the signals of the incidents (alerts) of its brand while it ran.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, exists, func, select

from monitor.analyst.queries import _brands_column, to_archived
from monitor.analyst.stats import bucket_start
from monitor.archive.convert import from_db_time, to_db_time
from monitor.archive.records import ArchivedMention
from monitor.archive.schema import incidents, mentions, signals, stories, story_mentions

KEY_PHRASES = 10  # key phrases listed per story (the table keeps more)

STORY_COLUMNS = (
    stories.c.id,
    stories.c.brand,
    stories.c.title,
    stories.c.first_seen,
    stories.c.last_seen,
    stories.c.mention_count,
    stories.c.rate_per_hour,
    stories.c.growth_per_hour,
    stories.c.total_reach,
    stories.c.sources,
    stories.c.key_phrases,
)


def _aware(row: dict[str, Any], *names: str) -> dict[str, Any]:
    for name in names:
        if row.get(name) is not None:
            row[name] = from_db_time(row[name])
    return row


def mention_by_id(connection: Connection, mention_id: int) -> ArchivedMention | None:
    """The mention with this row id, raw payload included; None when there is none."""
    query = select(*mentions.c, _brands_column(connection)).where(mentions.c.id == mention_id)
    row = connection.execute(query).first()
    return to_archived(row._mapping) if row is not None else None


def in_story(story_id: int) -> ColumnElement[bool]:
    """Condition on ``mentions``: the mention is a member of story ``story_id``."""
    return (
        exists()
        .where(story_mentions.c.mention_id == mentions.c.id, story_mentions.c.story_id == story_id)
        .correlate(mentions)
    )


def _story(row: Any) -> dict[str, Any]:
    out = _aware(dict(row._mapping), "first_seen", "last_seen")
    phrases = out.get("key_phrases") or {}
    out["key_phrases"] = sorted(phrases, key=lambda p: (-phrases[p], p))[:KEY_PHRASES]
    out["sources"] = dict(out.get("sources") or {})
    return out


def list_stories(
    connection: Connection,
    *,
    brand: str | None,
    since: datetime | None,
    until: datetime | None,
    offset: int,
    limit: int,
) -> list[dict[str, Any]]:
    """Stories most recently active first; ``since``/``until`` keep those active in the range."""
    query = select(*STORY_COLUMNS).where(stories.c.merged_into.is_(None))
    if brand is not None:
        query = query.where(stories.c.brand == brand)
    if until is not None:
        query = query.where(stories.c.first_seen < to_db_time(until))
    if since is not None:
        query = query.where(stories.c.last_seen >= to_db_time(since))
    query = query.order_by(stories.c.last_seen.desc(), stories.c.id.desc())
    return [_story(row) for row in connection.execute(query.offset(offset).limit(limit))]


def get_story(connection: Connection, story_id: int) -> dict[str, Any] | None:
    """The story ``story_id`` — or, for a story merged into another, the one it became part of
    (``merged_from`` then says which id was asked for)."""
    live = resolve_story(connection, story_id)
    row = connection.execute(select(*STORY_COLUMNS).where(stories.c.id == live)).first()
    if row is None:
        return None
    out = _story(row)
    if live != story_id:
        out["merged_from"] = story_id
    return out


def resolve_story(connection: Connection, story_id: int) -> int:
    """The live story ``story_id`` is now part of (itself unless it was merged)."""
    seen = {story_id}
    while True:
        merged = connection.execute(
            select(stories.c.merged_into).where(stories.c.id == story_id)
        ).scalar()
        if merged is None or merged in seen:
            return story_id
        seen.add(merged)
        story_id = int(merged)



def story_hourly(connection: Connection, story_id: int) -> list[dict[str, Any]]:
    """The story's members per UTC hour (hours without any omitted), oldest first."""
    hour = bucket_start(connection, "hour", story_mentions.c.created_at).label("bucket")
    query = (
        select(hour, func.count().label("mentions"))
        .where(story_mentions.c.story_id == story_id)
        .group_by(hour)
        .order_by(hour)
    )
    return [
        {"bucket": _utc(row.bucket), "mentions": int(row.mentions)}
        for row in connection.execute(query)
    ]


def story_incidents(connection: Connection, story: dict[str, Any]) -> list[dict[str, Any]]:
    """The incidents of the story's brand that were open at some time while it ran."""
    end = func.coalesce(incidents.c.resolved_at, incidents.c.last_signal_at)
    query = (
        select(
            incidents.c.id,
            incidents.c.status,
            incidents.c.severity,
            incidents.c.title,
            incidents.c.opened_at,
            incidents.c.acknowledged_at,
            incidents.c.acknowledged_by,
            incidents.c.resolved_at,
        )
        .where(
            incidents.c.brand == story["brand"],
            incidents.c.opened_at <= to_db_time(story["last_seen"]),
            end >= to_db_time(story["first_seen"]),
        )
        .order_by(incidents.c.opened_at, incidents.c.id)
    )
    found = []
    for row in connection.execute(query):
        item = _aware(dict(row._mapping), "opened_at", "acknowledged_at", "resolved_at")
        item["signals"] = incident_signals(connection, item["id"])
        found.append(item)
    return found


def incident_signals(connection: Connection, incident_id: int) -> list[dict[str, Any]]:
    """The signals that opened or updated an incident, oldest first."""
    query = (
        select(
            signals.c.at,
            signals.c.kind,
            signals.c.severity,
            signals.c.count,
            signals.c.expected,
            signals.c.score,
            signals.c.reasons,
        )
        .where(signals.c.incident_id == incident_id)
        .order_by(signals.c.at, signals.c.id)
    )
    return [_aware(dict(row._mapping), "at") for row in connection.execute(query)]


def _utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return from_db_time(value)


__all__ = [
    "get_story",
    "in_story",
    "incident_signals",
    "list_stories",
    "mention_by_id",
    "story_hourly",
    "story_incidents",
]
