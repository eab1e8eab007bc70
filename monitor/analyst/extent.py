"""What the archive holds, so an empty answer can say why it is empty.

``DEFAULT_SINCE`` is the one default window of ``uproar query``, ``stats``, ``stories`` and the
dashboard: the same question asked in two places gets the same answer. When a window holds
nothing, :func:`explain_empty` says what the archive does hold and which ``--since`` shows it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, func, select

from monitor.archive.schema import mentions

# One window for every analyst view: 30 days covers a month of reporting; older data needs an
# explicit --since (and the empty answer names it).
DEFAULT_SINCE = "30d"

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True, slots=True)
class Extent:
    """How many mentions the archive holds, and the first and last one's time (UTC)."""

    mentions: int
    first: datetime | None
    last: datetime | None

    def to_json(self) -> dict[str, object]:
        return {
            "mentions": self.mentions,
            "first": _iso(self.first),
            "last": _iso(self.last),
            "suggested_since": self.suggested_since,
        }

    @property
    def suggested_since(self) -> str | None:
        """A ``--since`` date that shows everything: the day before the first mention."""
        if self.first is None:
            return None
        return (self.first - timedelta(days=1)).strftime("%Y-%m-%d")


def archive_extent(connection: Connection) -> Extent:
    row = connection.execute(
        select(func.count(), func.min(mentions.c.created_at), func.max(mentions.c.created_at))
    ).one()
    return Extent(int(row[0] or 0), _utc(row[1]), _utc(row[2]))


def window_text(since: str | None, until: str | None = None) -> str:
    """``30d`` -> "in the last 30 days"; ``2026-03-01`` -> "since 2026-03-01"."""
    if since is None and until is None:
        return "at all"
    parts = []
    if since is not None:
        match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", since)
        if match:
            count, unit = match.groups()
            name = _UNITS[unit] if count != "1" else _UNITS[unit][:-1]
            parts.append(f"in the last {count} {name}" if count != "1" else f"in the last {name}")
        else:
            parts.append(f"since {since.strip()}")
    if until is not None:
        parts.append(f"before {until.strip()}")
    return " ".join(parts)


def explain_empty(
    what: str, extent: Extent, since: str | None, until: str | None = None, *,
    start: datetime | None = None, filtered: bool = False, option: str = "--since",
) -> str:
    """One line for an empty answer: "no mentions in the last 30 days; the archive holds 695
    mentions from 2026-03-02 to 2026-03-04 — try --since 2026-03-01".

    ``start``: the window's start as a time; ``filtered``: other filters (text, brand, ...) were
    given, so an archive with mentions inside the window is explained by those, not by time.
    """
    window = window_text(since, until)
    matching = " match these filters" if filtered else ""
    head = f"no {what}{matching} {window}"
    if extent.mentions == 0 or extent.first is None or extent.last is None:
        return f"{head}; the archive is empty (nothing heard yet: uproar run, or uproar replay)"
    held = (
        f"the archive holds {extent.mentions} mentions from {extent.first:%Y-%m-%d} "
        f"to {extent.last:%Y-%m-%d}"
    )
    inside = start is None or extent.last >= start
    if (since is None and until is None) or (filtered and inside):
        return f"{head}; {held}"
    return f"{head}; {held} — try {option} {extent.suggested_since}"


def _utc(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite aggregates lose the column type
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None
