"""The mention value object and the connector contract every source implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

# Keys of the DESIGN.md mention shape; anything else in a JSON mention is kept in ``raw``.
_KNOWN_KEYS = frozenset(
    {"source", "source_id", "url", "text", "author", "created_at", "engagement", "lang",
     "parent_id", "conversation_id", "raw"}
)


@dataclass(frozen=True, slots=True)
class Author:
    handle: str = ""
    name: str = ""
    followers: int | None = None


@dataclass(frozen=True, slots=True)
class Engagement:
    likes: int = 0
    reposts: int = 0
    replies: int = 0
    score: int = 0


# Long posts are matched and classified from their beginning; the archive needs no novels.
MAX_TEXT = 5000


def utc_now() -> datetime:
    """The default clock of every connector (tests inject their own)."""
    return datetime.now(UTC)


def parse_time(value: str | datetime) -> datetime:
    """Parse an ISO-8601 timestamp (``Z`` allowed) into an aware UTC datetime."""
    if isinstance(value, datetime):
        dt = value
    else:
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def format_time(dt: datetime) -> str:
    """Format an aware datetime as ``2009-07-07T03:12:00Z``."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Mention:
    """One post, comment, article or video that may name a brand.

    Identity is ``(source, source_id)``: storing the same mention twice changes nothing but
    its engagement counts.
    """

    source: str
    source_id: str
    url: str
    text: str
    created_at: datetime
    author: Author = field(default_factory=Author)
    engagement: Engagement = field(default_factory=Engagement)
    lang: str | None = None
    parent_id: str | None = None
    conversation_id: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None:
            raise ValueError("Mention.created_at must be timezone-aware")

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.source_id)

    def to_json(self) -> dict[str, Any]:
        """The DESIGN.md JSON shape (replay input, ``poll`` output, JSONL export)."""
        out: dict[str, Any] = {
            "source": self.source,
            "source_id": self.source_id,
            "url": self.url,
            "text": self.text,
            "author": {"handle": self.author.handle, "name": self.author.name,
                       "followers": self.author.followers},
            "created_at": format_time(self.created_at),
            "engagement": {"likes": self.engagement.likes, "reposts": self.engagement.reposts,
                           "replies": self.engagement.replies, "score": self.engagement.score},
            "lang": self.lang,
        }
        if self.parent_id is not None:
            out["parent_id"] = self.parent_id
        if self.conversation_id is not None:
            out["conversation_id"] = self.conversation_id
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Mention:
        """Build a mention from the DESIGN.md shape; raises ``ValueError`` naming the bad key."""
        for key in ("source", "source_id", "text", "created_at"):
            if key not in data or data[key] in (None, ""):
                raise ValueError(f"missing required key {key!r}")
        author = data.get("author") or {}
        if not isinstance(author, Mapping):
            raise ValueError("'author' must be an object")
        eng = data.get("engagement") or {}
        if not isinstance(eng, Mapping):
            raise ValueError("'engagement' must be an object")
        try:
            created = parse_time(str(data["created_at"]))
        except ValueError as exc:
            bad = data["created_at"]
            raise ValueError(f"'created_at' is not an ISO-8601 time: {bad!r}") from exc
        followers = author.get("followers")
        raw = {k: v for k, v in data.items() if k not in _KNOWN_KEYS}
        if isinstance(data.get("raw"), Mapping):
            raw = {**data["raw"], **raw}
        return cls(
            source=str(data["source"]),
            source_id=str(data["source_id"]),
            url=str(data.get("url") or ""),
            text=str(data["text"]),
            created_at=created,
            author=Author(
                handle=str(author.get("handle") or ""),
                name=str(author.get("name") or ""),
                followers=int(followers) if followers is not None else None,
            ),
            engagement=Engagement(
                likes=int(eng.get("likes") or 0),
                reposts=int(eng.get("reposts") or 0),
                replies=int(eng.get("replies") or 0),
                score=int(eng.get("score") or 0),
            ),
            lang=data.get("lang"),
            parent_id=_opt_str(data.get("parent_id")),
            conversation_id=_opt_str(data.get("conversation_id")),
            raw=raw,
        )


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


class ConnectorError(Exception):
    """A source could not be read. ``source`` names where it came from (a feed URL, an API)."""

    def __init__(self, source: str, message: str, *, details: Sequence[str] = ()) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.message = message
        # One line per cause when several parts failed (every feed of an RSS source), each
        # naming its part; ``message`` sums them up.
        self.details = tuple(details)


class RateLimited(ConnectorError):
    """The source asked us to slow down; ``retry_after`` is in seconds when the source said."""

    def __init__(self, source: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(source, message)
        self.retry_after = retry_after


class AuthFailed(ConnectorError):
    """Credentials were missing or refused; retrying will not help until ops fixes them."""


class EndpointGone(ConnectorError):
    """The API endpoint no longer exists (404/410 where the API used to answer): the API
    changed under us; retrying will not help until Uproar (or the proxy in ``api_url``) is
    updated. Like :class:`AuthFailed`, it pauses the source and is reported to ops once."""


class TransientError(ConnectorError):
    """Network errors, timeouts, 5xx: worth retrying later."""


@dataclass(slots=True)
class FetchResult:
    """What one poll of a source produced.

    ``cursor`` is JSON-serialisable state (ETags, since ids…) that the archive saves in the
    same transaction as ``mentions``. ``problems`` are one-line reports for ops (a malformed
    feed, a failed feed among many), each already phrased to name where it came from; the
    connector reports a lasting problem once, not on every poll.
    """

    mentions: list[Mention]
    cursor: dict[str, Any]
    problems: list[str] = field(default_factory=list)


class Connector(ABC):
    """A source of mentions.

    Implementations MUST NOT touch the archive or Slack; MUST raise :class:`ConnectorError`
    subclasses (never bare library exceptions) when the whole poll fails; SHOULD return what
    they could read plus ``problems`` when only part of a poll failed; MUST take their API base
    URL from configuration so tests and proxies can point them at 127.0.0.1.
    """

    name: ClassVar[str]
    #: Whether :meth:`refresh` re-reads engagement (the daemon only schedules those that do).
    can_refresh: ClassVar[bool] = False

    @classmethod
    def from_config(cls, settings: Mapping[str, Any]) -> Connector:
        """Build from a source's config section (how the daemon builds a plugin's connector).

        ``settings`` holds the keys of ``sources.<name>`` except the scheduler's (``enabled``,
        ``every``, ``jitter``, ``lookback``, ``refresh``), with ``timeout`` in seconds. The
        default passes them all as keyword arguments; a plugin MAY override this to rename or
        convert keys, and SHOULD raise ``ValueError`` naming the key when a value is wrong.
        """
        return cls(**settings)

    @abstractmethod
    def fetch(self, queries: Sequence[str], cursor: Mapping[str, Any] | None) -> FetchResult:
        """Poll once. ``queries`` are the brands' queries; ``cursor`` is the last saved state."""

    def refresh(self, ids: Sequence[str]) -> list[Mention]:
        """Re-read the current engagement (likes, reposts, replies, score, author followers)
        of the mentions with these ``source_id`` values, so detection sees how fast they spread.

        Optional: a connector that can MUST set ``can_refresh = True``; MUST return only
        mentions it could read (a deleted post is simply missing, not an error); SHOULD batch
        ids the way its API allows; raises the same typed errors as :meth:`fetch`.
        """
        return []

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release network resources."""
