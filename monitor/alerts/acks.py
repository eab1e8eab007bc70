"""Acknowledging from Slack without Socket Mode: a ✅ reaction on the alert's parent message.

``ReactionAcks.poll_due`` reads ``reactions.get`` for every open incident's parent message at
most once per ``every`` on the injected clock; the first person who reacted with the configured
reaction acknowledges the incident (``IncidentBook.acknowledge``: escalation stops, a thread
reply says who, and the parent message is updated to show who and when).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import Engine, select

from monitor.alerts.incidents import IncidentBook
from monitor.alerts.slack import Sender
from monitor.archive import schema
from monitor.clock import Clock
from monitor.errors import AlertDeliveryError

log = logging.getLogger(__name__)

# Read reactions of incidents opened within this long; older open ones are left to the CLI.
WATCH_FOR = timedelta(days=7)


class ReactionAcks:
    def __init__(
        self,
        engine: Engine,
        book: IncidentBook,
        sender: Sender,
        clock: Clock,
        *,
        reaction: str = "white_check_mark",
        every: timedelta = timedelta(seconds=30),
    ) -> None:
        self.engine = engine
        self.book = book
        self.sender = sender
        self.clock = clock
        self.reaction = reaction.strip(":")
        self.every = every
        self._last: datetime | None = None

    def poll_due(self) -> int:
        """Poll if ``every`` has passed since the last poll; returns incidents acknowledged."""
        now = self.clock.now()
        if self._last is not None and now - self._last < self.every:
            return 0
        self._last = now
        return self.poll()

    def poll(self) -> int:
        if not self.sender.reads_reactions:
            return 0
        t = schema.incidents
        since = self.clock.now() - WATCH_FOR
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.c.id, t.c.slack_channel, t.c.slack_ts).where(
                    t.c.status == "open", t.c.slack_ts.is_not(None), t.c.opened_at >= since
                )
            ).all()
        acknowledged = 0
        for incident_id, channel, ts in rows:
            try:
                reactions = self.sender.reactions(ts, channel=channel)
            except AlertDeliveryError as exc:
                log.warning("could not read reactions of incident #%s: %s", incident_id, exc)
                break  # Slack is down or rate-limiting: try again next round
            users = reactions.get(self.reaction, [])
            if users and self.book.acknowledge(incident_id, users[0]):
                log.info("incident #%s acknowledged by %s (reaction)", incident_id, users[0])
                acknowledged += 1
        return acknowledged
