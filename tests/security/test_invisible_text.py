"""Bidi controls, zero-width characters and mention/link injection stay inert wherever they are
shown: Slack blocks and fallback text, console and email alerts, and the CLI tables (`uproar
query`, `uproar stats`, `uproar stories`, `uproar alerts list`). The archive keeps them as heard.

The dashboard is covered by ``test_dashboard_inert.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from monitor.alerts.email import EmailSender
from monitor.alerts.render import render_console, render_slack
from monitor.alerts.rules import SmtpConfig
from monitor.archive import Archive
from monitor.archive.schema import mentions
from monitor.cli import cli
from monitor.cli.analyst import analyst_cli
from monitor.clock import SimulatedClock
from monitor.untrusted import displayable
from tests.security.hostile_archive import (
    BIDI,
    HOSTILE,
    HOSTILE_HANDLE,
    HOSTILE_URL,
    INVISIBLE,
    NOW,
    SPOOF,
    ZERO_WIDTH,
    assert_inert,
    fill,
)

EXAMPLE = {
    "source": "twitter",
    "source_id": "1",
    "url": HOSTILE_URL,
    "text": HOSTILE,
    "author_handle": HOSTILE_HANDLE,
    "author_followers": 10,
    "reach": 5,
    "created_at": "2026-03-10T10:00:00+00:00",
}
ALERT = {
    "kind": "open",
    "event": "signal",
    "incident_id": 7,
    "brand": "united",
    "brand_name": f"United {BIDI}",
    "story_title": HOSTILE,
    "signal_kind": "complaint_volume",
    "severity": "warning",
    "status": "open",
    "at": "2026-03-10T10:05:00+00:00",
    "opened_at": "2026-03-10T10:00:00+00:00",
    "window_minutes": 60,
    "count": 40,
    "expected": 5.0,
    "spread": 2.0,
    "reasons": [HOSTILE],
    "examples": [EXAMPLE],
}
# A signal about one post: its reason (with the author's handle) is the fallback's first line.
ONE_POST = {**ALERT, "signal_kind": "high_reach_author",
            "reasons": [f"complaint from @{HOSTILE_HANDLE} <!channel> @\u200bhere"]}
PAYLOADS = {
    "parent": ALERT,
    "one post": ONE_POST,
    "update": {**ALERT, "kind": "update", "previous_count": 20},
    "update one post": {**ONE_POST, "kind": "update"},
    "acknowledged": {**ALERT, "kind": "update", "event": "acknowledged",
                     "by": f"<!channel> {HOSTILE_HANDLE}"},
    "silenced": {**ALERT, "kind": "update", "event": "silenced", "by": HOSTILE, "minutes": 60},
    "notice": {**ONE_POST, "kind": "notice", "channel": "#ops"},
    "digest": {"kind": "digest", "brand_name": HOSTILE, "lines": [HOSTILE], "text": HOSTILE,
               "start": "2026-03-09T08:00:00+00:00", "end": "2026-03-10T08:00:00+00:00"},
}


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


# -- the helper ---------------------------------------------------------------------------------


def test_displayable_removes_invisible_characters_and_blanks_controls() -> None:
    assert displayable(SPOOF) == "United gnp.exe"
    assert displayable("@\u200bchannel") == "@channel"
    assert displayable(f"a{INVISIBLE}\u00adb") == "ab"
    assert displayable("a\x1b[2J\x07\x00\r\x85b") == "a [2J    b"
    assert displayable("one\ttwo\nthree") == "one\ttwo\nthree"
    assert displayable("one\ttwo\nthree", one_line=True) == "one two three"
    # Letters, marks, emoji and right-to-left scripts themselves are kept.
    kept = "Ünïcode ÷ 日本語 עברית العربية 👍🏽 e\u0301"
    assert displayable(kept) == kept


# -- Slack, console, email --------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_slack_blocks_and_fallback_text_are_inert(name: str) -> None:
    message = render_slack(PAYLOADS[name], buttons=True)
    shown = "\n".join([message.text, *_strings(message.blocks)])
    assert message.text.strip()
    assert_inert(message.text, slack=True)
    assert_inert(shown, slack=True)
    assert "&lt;!channel&gt;" in shown  # escaped, still readable


def test_slack_quote_shows_the_post_without_its_invisible_characters() -> None:
    message = render_slack(ALERT)
    quote = next(b["text"]["text"] for b in message.blocks
                 if b["type"] == "section" and b["text"]["text"].startswith(">"))
    assert quote.startswith(">United gnp.exe &lt;!channel&gt; &lt;https://evil.example|click&gt;")
    assert "\uff20here \uff20channel" in quote  # look-alike @: no broadcast, same reading
    assert "@mallory" in quote  # the handle without its override
    assert "<https://evil.example/%E2%80%AEgnp.exe|twitter post>" in quote  # encoded, not shown


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_console_alerts_are_inert(name: str) -> None:
    shown = render_console(PAYLOADS[name])
    assert_inert(shown)
    assert "<!channel>" in shown  # a terminal shows it as typed; only Slack acts on it


def test_console_shows_the_spoof_in_typed_order() -> None:
    shown = render_console(ALERT)
    assert '"United gnp.exe <!channel> <https://evil.example|click> @here @channel' in shown
    assert "@mallory (10 followers" in shown and "https://evil.example/gnp.exe" in shown


@pytest.mark.parametrize("name", ["parent", "acknowledged", "digest"])
def test_email_subject_and_body_are_inert(name: str) -> None:
    sender = EmailSender(SmtpConfig(host="mail.example"), SimulatedClock(NOW))
    email = sender.message(PAYLOADS[name], "ops@example.com")
    body = email.get_content()
    assert_inert(body)
    assert not set(INVISIBLE) & set(str(email["Subject"]))


# -- CLI tables ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def archive_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('invisible') / 'uproar.db'}"
    with Archive(url) as archive:
        fill(archive)
    return url


def test_archive_keeps_the_invisible_characters(archive_url: str) -> None:
    with Archive(archive_url) as archive, archive.engine.connect() as connection:
        text, handle = connection.execute(
            select(mentions.c.text, mentions.c.author_handle)
        ).one()
    assert text == HOSTILE and handle == HOSTILE_HANDLE
    assert set(ZERO_WIDTH) <= set(text)


def _run(command: Any, *args: str) -> str:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(command, list(args), obj=SimulatedClock(NOW))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_query_table_is_inert(archive_url: str) -> None:
    shown = _run(analyst_cli, "query", "guitar", "--archive", archive_url)
    assert "United gnp.exe" in shown and "mallory" in shown
    assert_inert(shown)


def test_stats_tables_are_inert(archive_url: str) -> None:
    shown = _run(analyst_cli, "stats", "--archive", archive_url, "--since", "2026-03-01")
    assert "Top authors" in shown and "mallory" in shown
    assert_inert(shown)


def test_stories_list_and_detail_are_inert(archive_url: str) -> None:
    listed = _run(cli, "stories", "--archive", archive_url, "--since", "2026-03-01")
    shown = _run(cli, "stories", "--archive", archive_url, "--show", "1")
    assert "United gnp.exe" in listed and "@mallory" in shown
    assert_inert(listed)
    assert_inert(shown)


def test_alerts_list_is_inert(archive_url: str, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "brands: [{key: united, name: United, query: united}]\n"
        f"archive: {{url: '{archive_url}'}}\n"
    )
    shown = _run(cli, "alerts", "list", "-c", str(config))
    assert "by mallory" in shown
    assert not set(INVISIBLE) & set(shown)
