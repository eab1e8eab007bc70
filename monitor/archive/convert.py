"""Turn mentions into table rows and rows back into mentions.

SQLite stores ``DateTime(timezone=True)`` as naive text and drops any offset, so every time is
converted to UTC on the way in and marked UTC on the way out.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String

from connectors.base import Author, Engagement, Mention
from models.base import Classification
from monitor.archive.records import ArchivedMention, StoredMention
from monitor.archive.schema import mentions

_LENGTHS: dict[str, int] = {
    c.name: c.type.length for c in mentions.columns if isinstance(c.type, String) and c.type.length
}
# Over-long descriptive fields are cut to fit rather than failing a whole batch on PostgreSQL;
# identity columns (source, source_id) are never cut: a clash there must stay loud.
_TRUNCATED = (
    "author_handle",
    "author_name",
    "lang",
    "parent_id",
    "conversation_id",
    "model_name",
    "model_version",
)


def to_db_time(value: datetime) -> datetime:
    """An aware datetime in UTC, as the archive stores it; naive datetimes are refused."""
    if value.tzinfo is None:
        raise ValueError(f"archive times must be timezone-aware, got {value!r}")
    return value.astimezone(UTC)


def from_db_time(value: datetime) -> datetime:
    """A datetime read from the archive, as aware UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _clean(text: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL characters.
    if text is not None and "\x00" in text:
        return text.replace("\x00", "")
    return text


def mention_row(item: StoredMention, fetched_at: datetime) -> dict[str, Any]:
    """The ``mentions`` row for one stored mention."""
    m = item.mention
    c = item.classification
    scores: Mapping[str, float] = c.scores if c is not None else {}
    row: dict[str, Any] = {
        "source": m.source,
        "source_id": m.source_id,
        "url": _clean(m.url) or "",
        "text": _clean(m.text),
        "author_handle": _clean(m.author.handle) or "",
        "author_name": _clean(m.author.name) or "",
        "author_followers": m.author.followers,
        "created_at": to_db_time(m.created_at),
        "fetched_at": fetched_at,
        "likes": m.engagement.likes,
        "reposts": m.engagement.reposts,
        "replies": m.engagement.replies,
        "score": m.engagement.score,
        "lang": m.lang,
        "parent_id": m.parent_id,
        "conversation_id": m.conversation_id,
        "raw": dict(m.raw) if m.raw else None,
        "sentiment": c.sentiment if c is not None else None,
        "p_negative": _opt_float(scores.get("negative")),
        "p_neutral": _opt_float(scores.get("neutral")),
        "p_positive": _opt_float(scores.get("positive")),
        "complaint": float(c.complaint) if c is not None else None,
        "severity": c.severity if c is not None else None,
        "model_name": item.model_name,
        "model_version": item.model_version,
    }
    for name in _TRUNCATED:
        value = row[name]
        if value is not None and len(value) > _LENGTHS[name]:
            row[name] = value[: _LENGTHS[name]]
    return row


def engagement_row(item: StoredMention) -> dict[str, Any]:
    """Bind parameters refreshing an archived mention's engagement (see ``store``)."""
    m = item.mention
    return {
        "k_source": m.source,
        "k_source_id": m.source_id,
        "likes": m.engagement.likes,
        "reposts": m.engagement.reposts,
        "replies": m.engagement.replies,
        "score": m.engagement.score,
        "author_followers": m.author.followers,
    }


def _opt_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def archived_mention(row: Mapping[Any, Any], brands: tuple[str, ...]) -> ArchivedMention:
    """Rebuild an :class:`ArchivedMention` from a ``mentions`` row mapping."""
    classification = None
    if row["sentiment"] is not None:
        scores = {
            label: row[f"p_{label}"]
            for label in ("negative", "neutral", "positive")
            if row[f"p_{label}"] is not None
        }
        classification = Classification(
            sentiment=row["sentiment"],
            scores=scores,
            complaint=row["complaint"] or 0.0,
            severity=row.get("severity"),  # None before schema 6 / without a severity head
        )
    mention = Mention(
        source=row["source"],
        source_id=row["source_id"],
        url=row["url"],
        text=row["text"],
        created_at=from_db_time(row["created_at"]),
        author=Author(row["author_handle"], row["author_name"], row["author_followers"]),
        engagement=Engagement(row["likes"], row["reposts"], row["replies"], row["score"]),
        lang=row["lang"],
        parent_id=row["parent_id"],
        conversation_id=row["conversation_id"],
        raw=row["raw"] or {},
    )
    return ArchivedMention(
        id=row["id"],
        mention=mention,
        brands=brands,
        classification=classification,
        model_name=row["model_name"],
        model_version=row["model_version"],
        fetched_at=from_db_time(row["fetched_at"]),
    )
