"""Hostile text from the internet stays inert: in Slack, in the archive, in query and export.

Posts carrying mrkdwn and link injection, mentions of @channel, zero-width and right-to-left
override characters, terminal escapes, SQL metacharacters, HTML/script and a 1 MB body are mixed
into the demo's breaking story (with the most engagement, so they are the examples Slack shows),
replayed through the real CLI into a fake Slack and a SQLite archive, then read back with
`uproar query` and `uproar export`.

The dashboard and HTTP API (`uproar serve`) are covered by their own tests.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.slack import FakeSlack
from tests.test_e2e import DEMO, DEMO_QUERY

ROOT = Path(__file__).resolve().parents[2]
STORY = "Larkspur Airways smashed my cello and refuses to pay, worst airline ever, furious"
ONE_MB = 1_000_000
SQL = "'; DROP TABLE mentions;--"
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
RTL_OVERRIDE = "\u202e"
# Zero-width and bidi control characters: removed wherever text is shown, kept in the archive.
INVISIBLE = ZERO_WIDTH + "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
HOSTILE = {
    "ping": f"{STORY} <!channel> <!here> <!everyone> <@U024BE7LH> <#C024BE7LH>",
    "link": f"{STORY} <https://evil.example/phish|click here for your refund> [x](javascript:1)",
    "marks": f"{STORY} *FAKE HEADLINE* _urgent_ ~gone~ `code` >quote &amp; &lt;!channel&gt;",
    "zw": f"{STORY} ev{ZERO_WIDTH}il.example {RTL_OVERRIDE}gpj.exe{RTL_OVERRIDE} \u2066x\u2069 "
          "@\u200bhere @\u200bchannel \u200e\u200f\u061c",
    "sql": f"{STORY} {SQL} \" OR 1=1 -- %_ \\",
    "html": f"{STORY} <script>alert(document.cookie)</script><img src=x onerror=alert(1)>",
    "term": f"{STORY} \x1b[2J\x1b]0;pwned\x07 \x00 \r=cmd|' /C calc'!A0",
    "formula": f"=HYPERLINK(\"https://evil.example\",\"{STORY}\")",
    "big": f"{STORY} " + "A" * ONE_MB,
}
HOSTILE_URLS = {
    "link": "https://evil.example/a|b>c<!channel>",
    "zw": "javascript:alert(1)",
    "html": "https://example.com/\"><script>alert(1)</script>",
}


# Most shared first: an alert quotes five examples, so the five whose text the Slack tests look
# for come first (which other complaints join the story depends on the model).
QUOTED_FIRST = ["ping", "zw", "sql", "html", "marks", "link", "term", "big", "formula"]
# Distinct complaints (an alert quotes each text once) about one story (an alert quotes the
# story's posts), so the five whose text the Slack tests look for are quoted.
OPENINGS = [
    "Larkspur Airways smashed my cello and refuses to pay",
    "Larkspur Airways baggage handlers smashed a cello and the airline won't pay for it",
    "My cello was smashed by Larkspur Airways baggage staff and they refuse to pay",
    "Larkspur Airways destroyed a musician's cello and still refuses to pay",
    "Larkspur Airways broke my cello, nine days later still no payment",
    "The cello Larkspur Airways smashed is worth thousands and they will not pay",
    "Larkspur Airways threw my cello on the tarmac and now refuses to pay for the repair",
    "Larkspur Airways smashed the cello, refused the claim, shameful airline",
    "Larkspur Airways wrecked my cello and won't pay, never flying them again",
]


TEXTS = {name: text.replace(STORY, OPENINGS[n]) for n, (name, text) in enumerate(HOSTILE.items())}


def _hostile_lines() -> list[str]:
    lines = []
    for n, (name, text) in enumerate(TEXTS.items()):
        lines.append(json.dumps({
            "source": "twitter",
            "source_id": f"hostile-{name}",
            "url": HOSTILE_URLS.get(name, f"https://example.com/hostile/{name}"),
            "text": text,
            "author": {"handle": f"<!channel>*{name}*", "name": "<b>Mallory</b>\u202e",
                       "followers": 100},
            "created_at": f"2026-03-04T14:01:{n:02d}Z",
            "engagement": {"likes": 100_000 - QUOTED_FIRST.index(name), "reposts": 50_000,
                           "replies": 10, "score": 0},
            "lang": "en",
        }))
    return lines


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("hostile")
    data = tmp / "hostile.jsonl"
    data.write_text("\n".join([*DEMO.read_text().splitlines(), *_hostile_lines()]) + "\n")
    db = tmp / "archive.db"
    with FakeSlack() as slack:
        config = tmp / "config.yaml"
        config.write_text(
            f"brands: [{{key: larkspur, name: Larkspur Airways, query: {DEMO_QUERY}}}]\n"
            f"archive: {{url: \"sqlite:///{db}\"}}\n"
            "detection: {examples: 10}\n"
            f"alerts: {{slack: {{token: {slack.token}, api_url: \"{slack.url}\"}}}}\n"
        )
        result = subprocess.run(
            [sys.executable, "-m", "monitor.cli", "replay", str(data), "-c", str(config),
             "--instant", "--archive", f"sqlite:///{db}"],
            cwd=ROOT, capture_output=True, text=True, timeout=600,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        yield {"slack": slack, "db": db, "config": config, "tmp": tmp, "stderr": result.stderr}


def _uproar(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )


def _texts(value: Any) -> Iterator[str]:
    """Every string a Slack client would render from a request body (keys excluded)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _texts(v)
    elif isinstance(value, list):
        for v in value:
            yield from _texts(v)


def test_slack_messages_ping_nobody_and_link_nowhere(replayed: dict[str, Any]) -> None:
    slack: FakeSlack = replayed["slack"]
    bodies = [c.body for c in slack.requests if c.method in ("chat.postMessage", "chat.update")]
    assert bodies and all(c.ok for c in slack.requests if c.method == "chat.postMessage")
    shown = "\n".join(t for body in bodies for t in _texts(body))
    # The hostile posts are what the alert quotes (they have the most engagement).
    assert "FAKE HEADLINE" in shown and "DROP TABLE" in shown and "script" in shown
    for control in ("<!channel>", "<!here>", "<!everyone>", "<@U024BE7LH>", "<#C024BE7LH>",
                    "<https://evil.example/phish|", "<script>", "<img", "<b>"):
        assert control not in shown, control
    assert "&lt;!channel&gt;" in shown
    # Links point only where the mention's own http(s) URL points, percent-encoded.
    for target in [t.split("|", 1)[0] for t in _link_targets(shown)]:
        assert target.startswith(("https://", "http://")), target
        assert not any(ch in target for ch in "<>| \"'"), target
    assert "javascript:" not in "".join(_link_targets(shown))
    # Formatting marks from a post cannot make bold or italic text.
    assert "*FAKE HEADLINE*" not in shown and "_urgent_" not in shown
    # Terminal escapes and NULs do not reach Slack.
    assert "\x1b" not in shown and "\x00" not in shown
    # A 1 MB post is cut to fit Slack's limits (the fake rejects oversized blocks).
    assert max(len(t) for t in _texts(bodies)) <= 40_000


def _link_targets(text: str) -> list[str]:
    targets, rest = [], text
    while "<" in rest:
        rest = rest.split("<", 1)[1]
        inside, _, rest = rest.partition(">")
        targets.append(inside)
    return targets


def test_bidi_and_zero_width_characters_cannot_spoof_a_link(replayed: dict[str, Any]) -> None:
    slack: FakeSlack = replayed["slack"]
    bodies = [c.body for c in slack.calls("chat.postMessage")]
    for target in _link_targets("\n".join(t for b in bodies for t in _texts(b))):
        url = target.split("|", 1)[0]
        assert RTL_OVERRIDE not in url and not any(ch in url for ch in ZERO_WIDTH), url


def test_bidi_and_zero_width_characters_do_not_reach_slack(replayed: dict[str, Any]) -> None:
    slack: FakeSlack = replayed["slack"]
    bodies = [c.body for c in slack.requests if c.method in ("chat.postMessage", "chat.update")]
    shown = "\n".join(t for body in bodies for t in _texts(body))
    assert "evil.example gpj.exe" in shown  # the quoted post, without its invisible characters
    hidden = {f"U+{ord(ch):04X}" for ch in shown if ch in INVISIBLE}
    assert not hidden, sorted(hidden)
    # "@\u200bhere" is neither hidden nor a broadcast: the @ is a look-alike.
    assert "\uff20here \uff20channel" in shown
    assert not re.search(r"@(?:here|channel|everyone)\b", shown, re.IGNORECASE)


def test_archive_keeps_hostile_text_verbatim_and_intact(replayed: dict[str, Any]) -> None:
    with sqlite3.connect(replayed["db"]) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "mentions" in tables
        rows = dict(conn.execute(
            "SELECT source_id, text FROM mentions WHERE source_id LIKE 'hostile-%'"
        ).fetchall())
    assert set(rows) == {f"hostile-{name}" for name in HOSTILE}
    for name in ("sql", "html", "ping", "zw", "link"):
        assert rows[f"hostile-{name}"] == TEXTS[name], name
    assert len(rows["hostile-big"]) >= 1000  # kept (possibly cut), never lost


def test_query_with_sql_metacharacters_finds_the_post_and_drops_nothing(
    replayed: dict[str, Any],
) -> None:
    db = f"sqlite:///{replayed['db']}"
    result = _uproar("query", SQL, "--archive", db, "-c", str(replayed["config"]),
                     "--format", "json", "--since", "all")
    assert result.returncode == 0, result.stderr
    found = [json.loads(line) for line in result.stdout.splitlines()]
    assert [m["source_id"] for m in found] == ["hostile-sql"]
    assert found[0]["text"] == TEXTS["sql"]
    with sqlite3.connect(replayed["db"]) as conn:
        assert conn.execute("SELECT count(*) FROM mentions").fetchone()[0] > 700


def test_query_table_writes_no_terminal_escapes(replayed: dict[str, Any]) -> None:
    db = f"sqlite:///{replayed['db']}"
    result = _uproar("query", "smashed", "--archive", db, "-c", str(replayed["config"]),
                     "--limit", "500", "--since", "all")
    assert result.returncode == 0, result.stderr
    assert "\x1b]0;pwned" not in result.stdout and "\x1b[2J" not in result.stdout
    assert "\x00" not in result.stdout
    # The zero-width / right-to-left post (and every other one) shows without those characters.
    everything = subprocess.run(  # wide enough that no text is folded across lines
        [sys.executable, "-m", "monitor.cli", "query", "--archive", db,
         "-c", str(replayed["config"]), "--limit", "1000", "--since", "all"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert everything.returncode == 0, everything.stderr
    assert OPENINGS[2][:30] in everything.stdout
    assert not {f"U+{ord(ch):04X}" for ch in everything.stdout if ch in INVISIBLE}


def test_csv_export_defuses_formulas(replayed: dict[str, Any]) -> None:
    out = replayed["tmp"] / "export.csv"
    result = _uproar("export", "--archive", f"sqlite:///{replayed['db']}",
                     "-c", str(replayed["config"]), "-o", str(out))
    assert result.returncode == 0, result.stderr
    csv.field_size_limit(2 * ONE_MB)
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    by_id = {r["source_id"]: r for r in rows}
    for row in rows:
        for cell in row.values():
            assert not (cell or " ").startswith(("=", "+", "@", "\t", "\r")), cell[:80]
    assert by_id["hostile-formula"]["text"].lstrip("'").startswith("=HYPERLINK")
    assert by_id["hostile-sql"]["text"] == TEXTS["sql"]
