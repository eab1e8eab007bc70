"""What an analyst asks for: one frozen filter shared by ``query``, ``stats`` and ``export``.

Times are checked and converted once, here at the edge: ``--since 7d`` means seven days before
an injected ``now``; ``--since 2026-03-01`` means midnight UTC that day. ``since`` is inclusive
and ``until`` exclusive, so ``--since 2026-02-01 --until 2026-03-01`` is exactly February.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

from connectors.base import parse_time
from models.base import SENTIMENTS
from monitor.durations import parse_duration
from monitor.errors import UproarError

Order = Literal["time", "engagement"]
ORDERS: tuple[Order, ...] = get_args(Order)


class AnalystError(UproarError):
    """A query, stats or export request that cannot run; the message says what to change."""


@dataclass(frozen=True, slots=True)
class MentionFilter:
    """Which archived mentions to read, and in what order. ``None`` means "no condition".

    ``text``: every word must occur in the mention's text (case-insensitive; any input is safe).
    ``author``: the author's handle, case-insensitive, with or without a leading ``@``.
    ``story``: a story id (``uproar stories``): the mentions grouped into that story.
    ``incident``: an incident id (``uproar alerts list``, ``uproar stats``): the mentions of that
    incident's brand created between its ``opened_at`` and its ``resolved_at`` (or, while it is
    still open, its ``last_signal_at``), both inclusive.
    ``order``: ``time`` is newest first; ``engagement`` is most likes + reposts + replies +
    score first (newest first on ties).
    """

    text: str | None = None
    brand: str | None = None
    source: str | None = None
    sentiment: str | None = None
    min_complaint: float | None = None
    author: str | None = None
    story: int | None = None
    incident: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None
    order: Order = "time"

    def __post_init__(self) -> None:
        if self.sentiment is not None and self.sentiment not in SENTIMENTS:
            raise AnalystError(
                f"sentiment {self.sentiment!r} is not one of {', '.join(SENTIMENTS)}"
            )
        if self.min_complaint is not None and not 0.0 <= self.min_complaint <= 1.0:
            raise AnalystError(
                f"--min-complaint must be between 0 and 1 (a probability), got {self.min_complaint}"
            )
        if self.limit is not None and self.limit < 1:
            raise AnalystError(f"--limit must be at least 1, got {self.limit}")
        if self.order not in ORDERS:
            raise AnalystError(f"order {self.order!r} is not one of {', '.join(ORDERS)}")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"MentionFilter.{name} must be timezone-aware, got {value!r}")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise AnalystError(
                f"--since ({_show(self.since)}) must be before --until ({_show(self.until)})"
            )

    @property
    def author_handle(self) -> str | None:
        """The author handle to match: lower case, without a leading ``@``."""
        if self.author is None:
            return None
        return self.author.strip().removeprefix("@").lower()


def parse_time_bound(value: str, now: datetime, *, option: str = "--since") -> datetime:
    """``7d``/``90m``/``1h30m`` before ``now``, or an ISO date or date-time (UTC unless given).

    Raises :class:`AnalystError` naming ``option`` and showing both accepted forms.
    """
    text = value.strip()
    if text.lower() == "now":
        return now.astimezone(UTC)
    try:
        return (now - parse_duration(text)).astimezone(UTC)
    except ValueError:
        pass
    try:
        return parse_time(text)
    except ValueError:
        pass
    raise AnalystError(
        f"{option} {value!r} is neither a duration like 7d, 12h or 90m (before now) nor a date "
        "like 2026-03-01 or 2026-03-01T14:30Z"
    )


def _show(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
