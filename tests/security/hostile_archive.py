"""Hostile text with invisible characters, and a small archive holding it (for the CLI tables and
the dashboard): one post, one story and one incident whose every shown field is hostile."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from connectors.base import Author, Engagement, Mention
from models.base import Classification
from monitor.archive import Archive, StoredMention
from monitor.archive.schema import incidents, mentions, stories, story_mentions

ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
INVISIBLE = ZERO_WIDTH + BIDI
# Reads "United exe.png" on screen if the override is left in; shown as typed once it is gone.
SPOOF = "United \u202egnp.exe"
HOSTILE = (
    f"{SPOOF} <!channel> <https://evil.example|click> @\u200bhere @\u200bchannel "
    f"*FAKE* \u2066x\u2069 \u200e\u200f\u061c zw[{ZERO_WIDTH}] \x1b[2J\x07 guitar end"
)
HOSTILE_HANDLE = "mal\u202elory\u200b"
HOSTILE_URL = "https://evil.example/\u202egnp.exe"
# A broadcast word Slack could act on: must never reach Slack as typed.
BROADCAST = re.compile(r"@(?:here|channel|everyone)\b", re.IGNORECASE)

NOW = datetime(2026, 3, 10, tzinfo=UTC)
POSTED = NOW - timedelta(hours=2)


def assert_inert(shown: str, *, slack: bool = False) -> None:
    """Nothing in ``shown`` can reorder or hide text, or reach a terminal as a control; for
    Slack (``slack``), nothing can ping or link either.

    Plain text (a terminal, an email) shows ``<!channel>`` as typed: only Slack acts on it.
    """
    hidden = sorted({f"U+{ord(ch):04X}" for ch in shown if ch in INVISIBLE})
    assert not hidden, f"invisible characters shown: {hidden}"
    assert not {"\x1b", "\x07", "\x00"} & set(shown), "a control character is shown"
    if slack:
        assert "<!channel>" not in shown and "<https://evil.example|click>" not in shown
        assert not BROADCAST.search(shown), BROADCAST.search(shown)


def fill(archive: Archive) -> tuple[int, int]:
    """Store the hostile post, a story and an incident; returns ``(story id, incident id)``."""
    mention = Mention(
        source="twitter",
        source_id="hostile",
        url=HOSTILE_URL,
        text=HOSTILE,
        created_at=POSTED,
        author=Author(handle=HOSTILE_HANDLE, name=f"Mallory {ZERO_WIDTH}\u202e", followers=10),
        engagement=Engagement(likes=5),
        lang="en",
        raw={"text": HOSTILE},
    )
    scores = {"negative": 0.9, "neutral": 0.05, "positive": 0.05}
    classification = Classification(sentiment="negative", scores=scores, complaint=0.95)
    archive.store([StoredMention(mention, ("united",), classification, "m", "1")], fetched_at=NOW)
    with archive.write() as connection:
        incident_id = connection.execute(
            incidents.insert().values(
                brand="united", status="acknowledged", severity="warning", title=HOSTILE,
                opened_at=POSTED, updated_at=POSTED, last_signal_at=POSTED, peak_count=1,
                acknowledged_by=HOSTILE_HANDLE, acknowledged_at=POSTED + timedelta(minutes=5),
            )
        ).inserted_primary_key[0]
        story_id = connection.execute(
            stories.insert().values(
                brand="united", title=HOSTILE, first_seen=POSTED, last_seen=POSTED,
                mention_count=1, rate_per_hour=1.0, growth_per_hour=1.0, total_reach=10.0,
                sources={"twitter": 1}, top_posts=[], key_phrases={HOSTILE: 1}, embedded=0,
                updated_at=NOW,
            )
        ).inserted_primary_key[0]
        row = connection.execute(
            select(mentions.c.id, mentions.c.created_at).where(mentions.c.source_id == "hostile")
        ).one()
        connection.execute(story_mentions.insert().values(
            story_id=story_id, mention_id=row.id, brand="united", similarity=1.0,
            created_at=row.created_at,
        ))
    return int(story_id), int(incident_id)
