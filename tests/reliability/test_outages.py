"""Outages: Slack down for an hour of simulated time, sources answering garbage, HTML, 100 MB
or nothing at all, and a full disk."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.clock import SimulatedClock
from monitor.config import config_from_dict
from monitor.daemon.app import build_app
from monitor.replay import read_mentions, replay
from tests.fakes.feedserver import RSS, FeedServer, Response
from tests.fakes.hackernews import FakeHackerNews, fake_hackernews  # noqa: F401
from tests.fakes.mastodon import FakeMastodon, fake_mastodon, html_page  # noqa: F401
from tests.fakes.slack import FakeSlack
from tests.reliability.daemon import ROOT, integrity, rows
from tests.test_e2e import DEMO, DEMO_QUERY

OUTAGE = timedelta(hours=1)


def _recover(slack: FakeSlack) -> None:
    """Slack is back: drop every injected fault."""
    with slack._lock:
        slack._faults.clear()


@pytest.mark.parametrize("failure", ["http-500", "connection-dropped"])
def test_slack_down_for_an_hour_then_every_alert_once_in_order(
    failure: str, tmp_path: Path, fake_slack: FakeSlack, default_classifier: Any
) -> None:
    config = config_from_dict({
        "brands": [{"key": "larkspur", "name": "Larkspur Airways",
                    "query": DEMO_QUERY.strip("'")}],
        "alerts": {"slack": {"token": fake_slack.token, "api_url": fake_slack.url}},
    })
    mentions, _ = read_mentions(DEMO)
    clock = SimulatedClock(mentions[0].created_at)
    if failure == "http-500":
        fake_slack.fail_next(10**6, status=500)
    else:
        fake_slack.drop_next(10**6)
    app = build_app(config, clock, archive_url=f"sqlite:///{tmp_path}/a.db",
                    classifier=default_classifier)
    down: dict[str, Any] = {"since": None, "until": None}

    def watch(_n: int) -> None:
        now = clock.now()
        if down["since"] is None and fake_slack.requests:
            down["since"] = now  # the first alert met a dead Slack
        elif down["since"] is not None and down["until"] is None and now >= down["since"] + OUTAGE:
            down["until"] = now
            _recover(fake_slack)

    try:
        d = config.detection
        report = replay(mentions, app.pipeline, clock, bucket=d.bucket,
                        tail=d.window + d.bucket, progress=watch)
        db = app.archive.engine
        assert db is not None
    finally:
        app.close()
    assert down["until"] is not None, "Slack never came back during the replay"
    assert report.failed == []
    attempts_while_down = [c for c in fake_slack.requests if not c.ok]
    assert attempts_while_down or failure == "connection-dropped"
    # Every outbox row went out once, in outbox order.
    sent = rows(tmp_path / "a.db",
                "SELECT id, incident_id, kind, message_ts FROM outbox ORDER BY id")
    assert sent and all(ts for *_, ts in sent)
    posted = [c for c in fake_slack.calls("chat.postMessage") if c.ok]
    assert [c.response["ts"] for c in posted] == [ts for *_, ts in sent]
    parents = [c for c in posted if not c.body.get("thread_ts")]
    incidents = rows(tmp_path / "a.db", "SELECT count(*) FROM incidents")[0][0]
    assert len(parents) == incidents


# -- sources that misbehave -------------------------------------------------------------------

GOOD_FEED = """<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<item><guid>good-1</guid><link>https://news.example/good-1</link>
<title>United Airlines lost my luggage again</title>
<pubDate>Mon, 02 Mar 2026 10:00:00 GMT</pubDate></item></channel></rss>"""
# Streamed without being held twice in memory by the server: 100 MB of one byte.
HUGE = 100 * 1024 * 1024


def test_misbehaving_sources_leave_the_others_unaffected(
    tmp_path: Path,
    feed_server: FeedServer,
    fake_hackernews: FakeHackerNews,  # noqa: F811
    fake_mastodon: FakeMastodon,  # noqa: F811
) -> None:
    good = feed_server.add_route("/good.rss", GOOD_FEED, content_type=RSS)
    garbage = feed_server.add_route("/garbage.rss", bytes(range(256)) * 64, content_type=RSS)
    html = feed_server.add_route(
        "/html.rss", "<html><body><h1>502 Bad Gateway</h1></body></html>",
        content_type="text/html",
    )
    huge = feed_server.add_route("/huge.rss", b"<rss>" + b"A" * HUGE, content_type=RSS)
    never = feed_server.add_route("/never.rss", GOOD_FEED, content_type=RSS, delay=3600)
    # A minute ago: the first poll of a search reads only recent items.
    recent = int(time.time()) - 60
    fake_hackernews.add_comment("900001", "United Airlines broke my stroller", recent)
    fake_mastodon.load_sample()
    fake_mastodon.inject(html_page(200))
    fake_mastodon.inject(Response(b"\x00\xff garbage {", content_type="application/json"), at=2)
    feeds = json.dumps([good, garbage, html, huge, never])
    config = tmp_path / "config.yaml"
    config.write_text(f"""\
brands: [{{key: united, name: United Airlines, query: united}}]
archive: {{url: "sqlite:///{tmp_path}/uproar.db"}}
sources:
  rss: {{enabled: true, timeout: 2s, lookback: 36500d, max_bytes: 1000000, feeds: {feeds}}}
  hackernews: {{enabled: true, api_url: "{fake_hackernews.api_url}", lookback: 36500d}}
  mastodon: {{enabled: true, api_url: "{fake_mastodon.api_url}", lookback: 36500d,
             hashtags: [unitedairlines]}}
""")
    result = CliRunner().invoke(cli, ["poll", "-c", str(config)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    stored = rows(tmp_path / "uproar.db", "SELECT source, source_id FROM mentions")
    by_source: dict[str, set[str]] = {}
    for source, sid in stored:
        by_source.setdefault(source, set()).add(sid)
    assert [s.rsplit("/", 1)[-1] for s in by_source.get("rss", set())] == ["good-1"]
    assert by_source.get("hackernews") == {"900001"}, result.output
    # Each bad feed is named in a one-line warning.
    for path in ("garbage.rss", "html.rss", "huge.rss", "never.rss"):
        assert path in result.output, result.output
    assert integrity(tmp_path / "uproar.db") == "ok"


# -- a full disk --------------------------------------------------------------------------------

# The archive may grow to this many bytes (RLIMIT_FSIZE) before writes fail with EFBIG.
DISK_BYTES = 600_000


def _limited(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_disk_full_gives_a_clear_error_and_no_corruption(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"brands: [{{key: larkspur, name: Larkspur Airways, query: {DEMO_QUERY}}}]\n"
    )
    db = tmp_path / "full.db"
    big = tmp_path / "big.jsonl"
    lines = DEMO.read_text().splitlines()
    # Long texts make the archive outgrow the limit quickly.
    padded = []
    for line in lines:
        m = json.loads(line)
        m["text"] = m["text"] + " " + "complaint details " * 200
        padded.append(json.dumps(m))
    big.write_text("\n".join(padded) + "\n")
    args = [sys.executable, "-m", "monitor.cli", "replay", str(big), "-c", str(config),
            "--instant", "--archive", f"sqlite:///{db}"]
    full = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          preexec_fn=lambda: _limited(DISK_BYTES))
    assert full.returncode != 0
    err = full.stderr
    assert "Traceback" not in err, err[-3000:]
    assert "disk" in err.lower() or "full" in err.lower(), err[-2000:]
    last = [line for line in err.splitlines() if line.startswith("uproar:")]
    assert last and len(last[-1]) < 300, err[-2000:]
    assert integrity(db) == "ok"
    kept = rows(db, "SELECT count(*) FROM mentions")[0][0]
    # With room again, the same replay completes and nothing is stored twice.
    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert integrity(db) == "ok"
    ids = rows(db, "SELECT source, source_id FROM mentions")
    assert len(ids) == len(set(ids)) >= kept
