"""The daily digest: once a day per brand, at ``alerts.digest.at`` in its time zone, the last 24
hours in numbers (mentions, complaints, incidents and what became of them), to a Slack channel
and/or email addresses.

Each (brand, local day, target) is recorded in ``digests`` before it is sent, so a restart or a
second run never sends it twice; a failed send removes the record and is retried a few minutes
later. A daemon that was down at digest time sends the day's digest when it comes back (same
day only).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError

from monitor.alerts.incidents import aware
from monitor.alerts.rules import DigestConfig
from monitor.alerts.slack import Sender
from monitor.archive import schema
from monitor.clock import Clock
from monitor.errors import AlertDeliveryError

log = logging.getLogger(__name__)

# After a failed send, wait this long before the next try.
RETRY_AFTER = timedelta(minutes=5)
# Incidents listed per brand; more are counted, not listed.
MAX_LISTED = 10


@dataclass(frozen=True, slots=True)
class BrandDay:
    brand: str
    name: str
    start: datetime
    end: datetime
    mentions: int
    complaints: int
    incidents: tuple[Mapping[str, Any], ...]


class DailyDigest:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        config: DigestConfig,
        brands: Mapping[str, str],
        *,
        slack: Sender | None,
        slack_channel: str,
        email: Sender | None = None,
        complaint_threshold: float = 0.5,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.config = config
        self.brands = dict(brands)
        self.slack = slack
        self.slack_channel = config.channel or slack_channel
        self.email = email
        self.complaint_threshold = complaint_threshold
        self._retry_at: datetime | None = None

    def due_day(self, now: datetime) -> date | None:
        """The local day whose digest is due at ``now`` (None before today's digest time)."""
        local = now.astimezone(ZoneInfo(self.config.timezone))
        return local.date() if local.time() >= self.config.at else None

    def send_due(self) -> int:
        """Send every digest due now and not yet sent; returns how many went out."""
        now = self.clock.now()
        if not self.config.enabled or (self._retry_at is not None and now < self._retry_at):
            return 0
        day = self.due_day(now)
        if day is None:
            return 0
        zone = ZoneInfo(self.config.timezone)
        end = datetime.combine(day, self.config.at, tzinfo=zone)
        sent = 0
        for brand, name in self.brands.items():
            targets = self._targets()
            if not targets:
                return 0
            summary: BrandDay | None = None
            for kind, to in targets:
                if not self._claim(brand, day, to, now):
                    continue
                summary = summary or self.summarize(brand, name, end - timedelta(days=1), end)
                try:
                    self._send(kind, to, summary)
                except AlertDeliveryError as exc:
                    self._unclaim(brand, day, to)
                    self._retry_at = now + RETRY_AFTER
                    log.warning("daily digest for %s to %s not sent: %s", brand, to, exc)
                    return sent
                sent += 1
        return sent

    def _targets(self) -> list[tuple[str, str]]:
        targets = []
        if self.slack is not None and self.slack_channel:
            targets.append(("slack", self.slack_channel))
        if self.email is not None:
            targets.extend(("email", address) for address in self.config.email)
        return targets

    def summarize(self, brand: str, name: str, start: datetime, end: datetime) -> BrandDay:
        mb, t = schema.mention_brands, schema.incidents
        in_window = (mb.c.brand == brand) & (mb.c.created_at >= start) & (mb.c.created_at < end)
        with self.engine.connect() as conn:
            mentions = conn.execute(select(func.count()).where(in_window)).scalar_one()
            complaints = conn.execute(
                select(func.count()).where(in_window, mb.c.complaint >= self.complaint_threshold)
            ).scalar_one()
            incidents = conn.execute(
                select(t)
                .where(t.c.brand == brand, t.c.opened_at >= start, t.c.opened_at < end)
                .order_by(t.c.id)
            ).mappings()
            listed = tuple(dict(row) for row in incidents)
        return BrandDay(brand, name, start, end, int(mentions), int(complaints), listed)

    def payload(self, summary: BrandDay) -> dict[str, Any]:
        return {
            "kind": "digest",
            "brand": summary.brand,
            "brand_name": summary.name,
            "text": digest_text(summary, self.config.timezone),
            "lines": digest_lines(summary),
            "start": summary.start.isoformat(),
            "end": summary.end.isoformat(),
        }

    def _send(self, kind: str, to: str, summary: BrandDay) -> None:
        sender = self.slack if kind == "slack" else self.email
        assert sender is not None
        sender.post(self.payload(summary), channel=to)

    def _claim(self, brand: str, day: date, to: str, now: datetime) -> bool:
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    schema.digests.insert().values(
                        brand=brand, day=day.isoformat(), target=to, sent_at=now
                    )
                )
        except IntegrityError:
            return False  # already sent (by us before a restart, or by another process)
        return True

    def _unclaim(self, brand: str, day: date, to: str) -> None:
        d = schema.digests
        with self.engine.begin() as conn:
            conn.execute(
                d.delete().where(d.c.brand == brand, d.c.day == day.isoformat(), d.c.target == to)
            )


def digest_lines(summary: BrandDay) -> list[str]:
    """Plain-text lines (untrusted parts are escaped by whoever renders them)."""
    share = f" ({summary.complaints / summary.mentions:.0%})" if summary.mentions else ""
    lines = [f"{summary.mentions:,} mentions, {summary.complaints:,} complaints{share}"]
    if not summary.incidents:
        lines.append("No incidents.")
        return lines
    lines.append(f"Incidents opened: {len(summary.incidents)}")
    for row in summary.incidents[:MAX_LISTED]:
        state = row.get("state") or {}
        status = str(row["status"])
        muted = (state.get("route") or {}).get("muted")
        if muted:
            status += f" (muted: {muted})"
        elif row.get("acknowledged_by"):
            status += f", acknowledged by {row['acknowledged_by']}"
        opened = aware(row["opened_at"]).strftime("%H:%M UTC")
        lines.append(
            f"#{row['id']} {row['severity']} at {opened}, peak {row['peak_count']:,} "
            f"complaints: {status}"
        )
    if len(summary.incidents) > MAX_LISTED:
        lines.append(f"… and {len(summary.incidents) - MAX_LISTED} more")
    return lines


def digest_text(summary: BrandDay, timezone: str) -> str:
    end = summary.end.astimezone(ZoneInfo(timezone))
    head = f"Daily digest for {summary.name}: the 24 hours to {end:%Y-%m-%d %H:%M} {timezone}"
    return "\n".join([head, *digest_lines(summary)]) + "\n"
