"""End to end: the real CLI and model, a real SQLite archive, fake Slack and feed servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from monitor.archive import Archive
from monitor.brands.query import parse_query
from monitor.cli import cli
from tests.fakes.feedserver import RSS, FeedServer
from tests.fakes.slack import FakeSlack

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "monitor" / "demo" / "larkspur-cello.jsonl"
DEMO_QUERY = (ROOT / "monitor" / "demo" / "config.yaml").read_text().split("query: ", 1)[1]
DEMO_QUERY = DEMO_QUERY.splitlines()[0]


def demo_config(tmp_path: Path, *, slack: FakeSlack | None = None, feeds: list[str] = ()) -> Path:
    token = slack.token if slack else ""
    api = slack.url if slack else "https://slack.com/api/"
    feed_lines = "".join(f'\n      - "{f}"' for f in feeds) or " []"
    text = f"""\
brands:
  - key: larkspur
    name: Larkspur Airways
    query: {DEMO_QUERY}
archive: {{url: "sqlite:///{tmp_path}/uproar.db"}}
http: {{listen: "127.0.0.1:0"}}
alerts:
  slack: {{token: "{token}", channel: "#brand-alerts", api_url: "{api}"}}
sources:
  rss:
    enabled: {"true" if feeds else "false"}
    every: 5m
    lookback: 3650d
    feeds:{feed_lines}
"""
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def parents_and_replies(slack: FakeSlack) -> tuple[list[dict], list[dict]]:
    posts = [c.body for c in slack.calls("chat.postMessage") if c.ok]
    return [p for p in posts if not p.get("thread_ts")], [p for p in posts if p.get("thread_ts")]


def test_replay_demo_raises_one_thread_in_slack(tmp_path: Path, fake_slack: FakeSlack) -> None:
    config = demo_config(tmp_path, slack=fake_slack)
    db = tmp_path / "replay.db"
    result = CliRunner().invoke(
        cli, ["replay", str(DEMO), "-c", str(config), "--instant", "--archive", f"sqlite:///{db}"]
    )
    assert result.exit_code == 0, result.output

    parents, replies = parents_and_replies(fake_slack)
    assert len(parents) == 1, [p.get("text") for p in parents]
    parent = parents[0]
    assert "Larkspur Airways" in parent["text"]
    ts = next(c.response["ts"] for c in fake_slack.calls("chat.postMessage") if c.body is parent)
    assert all(r["thread_ts"] == ts for r in replies)
    # The alert fired while the story broke (14:07 on day 3), not during the ordinary chatter.
    assert "cello" in json.dumps(parent["blocks"]).lower()

    # Untrusted text never pings anyone: every <!channel> arrives escaped.
    for call in fake_slack.requests:
        assert "<!channel>" not in json.dumps(call.body)

    with Archive(f"sqlite:///{db}") as archive:
        stored = archive.count_mentions(brand="larkspur")
        complaints = archive.count_mentions(brand="larkspur", min_complaint=0.5)
    matching = [
        line for line in DEMO.read_text().splitlines()
        if parse_query(DEMO_QUERY.strip("'")).matches(json.loads(line)["text"])
    ]
    assert stored == len(matching)  # every mention of the brand heard, once
    assert complaints > 100

    # Issue 13: the cello story is one story from its first complaint to the end, raises
    # story_growth, and every version of the parent quotes its seed post first.
    with Archive(f"sqlite:///{db}") as archive, archive.engine.connect() as conn:
        from sqlalchemy import select

        from monitor.archive.schema import mentions, signals, stories, story_mentions

        cello = conn.execute(
            select(stories).where(stories.c.merged_into.is_(None))
            .order_by(stories.c.mention_count.desc())
        ).mappings().first()
        kinds = set(conn.execute(select(signals.c.kind)).scalars())
        assert cello is not None
        # Every complaint about the cello, from the seed on, is in that one story (how many
        # posts are complaints is the classifier's call; none of them may start a story of its own).
        cello_complaints = set(conn.execute(
            select(mentions.c.id).where(mentions.c.text.ilike("%cello%"),
                                        mentions.c.complaint >= 0.5)
        ).scalars())
        members = set(conn.execute(
            select(story_mentions.c.mention_id).where(story_mentions.c.story_id == cello["id"])
        ).scalars())
    assert cello["title"].startswith("Larkspur Airways baggage handlers threw my cello")
    assert len(cello_complaints) > 100 and cello_complaints <= members
    assert str(cello["first_seen"]).startswith(
        "2026-03-04 14:07")  # @celloclaire's post, the first complaint of the story
    assert "story_growth" in kinds
    versions = [parent["blocks"]] + [c.body["blocks"] for c in fake_slack.calls("chat.update")]
    assert len(versions) >= 3
    for blocks in versions:
        posts = [b["text"]["text"] for b in blocks
                 if b.get("type") == "section" and b["text"]["text"].startswith(">")]
        assert posts[0].startswith(">Larkspur Airways baggage handlers threw my cello")
        assert "@celloclaire" in posts[0] and "48,000 followers" in posts[0]
        quotes = [p.split("\n")[0] for p in posts]
        assert len(quotes) == len(set(quotes))  # no text quoted twice
        shown = json.dumps(blocks)
        assert "σ" not in shown and "Signals:" not in shown and "±" not in shown


def test_replay_prints_alert_to_console_without_token(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    result = CliRunner().invoke(cli, ["replay", str(DEMO), "-c", str(config), "--instant"])
    assert result.exit_code == 0, result.output
    assert "Larkspur Airways" in result.output
    assert "messages sent to console" in result.output


def test_replay_reports_bad_lines_and_keeps_the_rest(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    lines = DEMO.read_text().splitlines()[:50]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([lines[0], "{not json", '{"source": "x"}', *lines[1:]]) + "\n")
    result = CliRunner().invoke(cli, ["replay", str(bad), "-c", str(config), "--instant"])
    assert result.exit_code == 1, result.output  # skipped lines fail the run (--lenient: 0)
    assert "bad.jsonl:2:" in result.output
    assert "bad.jsonl:3: missing required key 'source_id'" in result.output
    assert "replayed 50 mentions" in result.output
    assert "2 bad lines skipped" in result.output


RSS_BODY = """<?xml version="1.0"?>
<rss version="2.0"><channel><title>Travel News</title><link>https://news.example/</link>
<item><guid>https://news.example/1</guid><link>https://news.example/1</link>
<title>Larkspur Airways smashed my cello and refuses to pay</title>
<description>Terrible service from the airline, nine days and no answer.</description>
<pubDate>Mon, 02 Mar 2026 10:00:00 GMT</pubDate></item>
<item><guid>https://news.example/2</guid><link>https://news.example/2</link>
<title>Garden tips: planting larkspur flowers in spring</title>
<description>Larkspur likes sun.</description>
<pubDate>Mon, 02 Mar 2026 11:00:00 GMT</pubDate></item>
</channel></rss>"""


def test_poll_prints_new_mentions_then_nothing(tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.add_route("/news.rss", RSS_BODY.encode(), content_type=RSS, etag='"v1"')
    config = demo_config(tmp_path, feeds=[url])
    runner = CliRunner()

    dry = runner.invoke(cli, ["poll", "-c", str(config), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    with Archive(f"sqlite:///{tmp_path}/uproar.db") as archive:
        assert archive.count_mentions() == 0

    first = runner.invoke(cli, ["poll", "-c", str(config), "--source", "rss"])
    assert first.exit_code == 0, first.output
    printed = [json.loads(line) for line in first.stdout.splitlines() if line.startswith("{")]
    # The garden post about larkspur flowers matches no brand.
    assert [m["url"] for m in printed] == ["https://news.example/1"]
    assert printed[0]["source"] == "rss" and printed[0]["created_at"] == "2026-03-02T10:00:00Z"

    second = runner.invoke(cli, ["poll", "-c", str(config)])
    assert second.exit_code == 0
    assert not [line for line in second.stdout.splitlines() if line.startswith("{")]
    assert feed_server.requests_for("/news.rss")[-1].headers.get("if-none-match") == '"v1"'
    with Archive(f"sqlite:///{tmp_path}/uproar.db") as archive:
        assert archive.count_mentions(brand="larkspur") == 1
        assert archive.cursor("rss") is not None


def test_run_polls_and_stops_cleanly_on_sigterm(tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.add_route("/news.rss", RSS_BODY.encode(), content_type=RSS)
    config = demo_config(tmp_path, feeds=[url])
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "-c", str(config)],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
    )
    seen = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            log_so_far = "".join(seen)
            if "poll rss:" in log_so_far and "health and metrics on" in log_so_far:
                break
        url = next(ln.split(" on ")[1].split()[0] for ln in seen if "health and metrics" in ln)
        health = httpx.get(f"{url}/healthz", timeout=10)
        assert health.status_code == 200 and health.json()["status"] in ("ok", "degraded")
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        assert 'uproar_mentions_total{source="rss"} 1.0' in metrics
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    log = "".join(seen) + (rest or "")
    assert proc.returncode == 0, log
    assert "poll rss: 1 new, 0 duplicates, 0 errors" in log
    assert "stopped cleanly" in log
    # `uproar sources` no longer promises a next poll: it says the daemon stopped.
    shown = CliRunner().invoke(cli, ["sources", "-c", str(config)])
    assert shown.exit_code == 0, shown.output
    assert "uproar: the daemon is not running: it stopped at" in shown.output


@pytest.mark.parametrize("command", ["run", "check-config", "poll", "replay", "classify",
                                     "detect", "train", "query", "stats", "export", "backtest"])
def test_every_command_has_help_with_example(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output or "example" in result.output


def test_sighup_reloads_config_and_keeps_old_one_when_invalid(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    url = feed_server.add_route("/news.rss", RSS_BODY.encode(), content_type=RSS)
    config = demo_config(tmp_path, feeds=[url])
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "-c", str(config)],
        cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stderr=subprocess.PIPE, text=True,
    )
    seen: list[str] = []

    def wait_for(text: str, count: int = 1) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if "".join(seen).count(text) >= count:
                return
        raise AssertionError("".join(seen))

    good = config.read_text()
    try:
        wait_for("poll rss:")
        # A broken config: only the refusal is logged, nothing stops.
        config.write_text(good + "bogus_key: 1\n")
        proc.send_signal(signal.SIGHUP)
        wait_for("reload refused, keeping the running config")
        refused = len(seen)
        # One source's settings changed: only its job restarts (and polls at once).
        config.write_text(good.replace("every: 5m", "every: 10m"))
        proc.send_signal(signal.SIGHUP)
        wait_for("config reloaded: restarted source rss")
        wait_for("poll rss:", 2)
        assert "source rss: polling every 10m" in "".join(seen)
        # The same file again: nothing to restart.
        proc.send_signal(signal.SIGHUP)
        wait_for("config reloaded: nothing changed")
        # Logging only: applied at once, nothing restarts.
        config.write_text(good.replace("every: 5m", "every: 10m") + "logging: {format: json}\n")
        proc.send_signal(signal.SIGHUP)
        wait_for('"message": "config reloaded: nothing changed"')
        assert "stopping" not in "".join(seen[refused - 1:])
        # A brand changed: every job depends on the brands, so everything restarts.
        config.write_text(good.replace("every: 5m", "every: 10m")
                          .replace("name: Larkspur Airways", "name: Larkspur Air"))
        # (logging back to plain lines too)
        proc.send_signal(signal.SIGHUP)
        wait_for("restarting every job")
        wait_for("uproar running", 2)  # started again on the new config
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    log = "".join(seen) + (rest or "")
    assert proc.returncode == 0, log
    assert "bogus_key (line" in log
    assert "stopping" not in log.split("reload refused")[0].split("uproar running")[-1]
    assert log.count("stopped cleanly") == 2  # the full restart, then SIGTERM
    assert log.count("loading classifier") == 1  # the model is kept across reloads
