"""kill -9 at random points: during ingest (`uproar run` classifying and storing a big feed) and
during alert delivery (`uproar replay` posting to Slack). After restarts no mention is lost or
stored twice, and no alert is lost or posted twice.

The default run kills a few times; ``-m slow`` kills many times. Kill points are random but
seeded (the seed is in the test id), so a failure can be replayed.
"""

from __future__ import annotations

import json
import random
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from tests.fakes.feedserver import RSS, FeedServer
from tests.fakes.slack import FakeSlack
from tests.reliability.daemon import Uproar, integrity, rows
from tests.test_e2e import DEMO, DEMO_QUERY

FEED_ITEMS = 300
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def big_feed(n: int = FEED_ITEMS) -> bytes:
    items = []
    for i in range(n):
        at = format_datetime(START + timedelta(minutes=i))
        items.append(
            f"<item><guid>https://news.example/{i}</guid><link>https://news.example/{i}</link>"
            f"<title>Larkspur Airways lost my bag, story {i}</title>"
            f"<description>Day {i % 7}: the airline still has not answered complaint {i}."
            f"</description><pubDate>{at}</pubDate></item>"
        )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Complaints</title>'
        "<link>https://news.example/</link>" + "".join(items) + "</channel></rss>"
    ).encode()


def write_config(tmp: Path, *, feed: str | None = None, slack: FakeSlack | None = None) -> Path:
    lines = [
        f"brands: [{{key: larkspur, name: Larkspur Airways, query: {DEMO_QUERY}}}]",
        f'archive: {{url: "sqlite:///{tmp}/uproar.db"}}',
        'http: {listen: "127.0.0.1:0"}',
    ]
    if slack is not None:
        lines.append(f'alerts: {{slack: {{token: "{slack.token}", api_url: "{slack.url}"}}}}')
    if feed is not None:
        lines.append(f'sources: {{rss: {{enabled: true, every: 10s, lookback: 3650d, '
                     f'feeds: ["{feed}"]}}}}')
    else:
        lines.append("sources: {rss: {enabled: false}}")
    path = tmp / "config.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _kill_runs(seed: int, kills: int, tmp_path: Path, feed_server: FeedServer) -> None:
    rng = random.Random(seed)
    url = feed_server.add_route("/complaints.rss", big_feed(), content_type=RSS)
    config = write_config(tmp_path, feed=url)
    db = tmp_path / "uproar.db"
    for n in range(kills):
        hits = feed_server.hits("/complaints.rss")
        daemon = Uproar(["run", "-c", str(config)], tmp_path / f"run{n}.log")
        try:
            daemon.wait_until(lambda h=hits: feed_server.hits("/complaints.rss") > h, "a fetch")
            # Somewhere in parsing, classifying or storing the 300 items (or just after).
            threading.Event().wait(rng.uniform(0.0, 2.5))
        finally:
            daemon.kill()
        assert integrity(db) == "ok"
    daemon = Uproar(["run", "-c", str(config)], tmp_path / "final.log")
    try:
        daemon.wait_for_log("poll rss:")
    finally:
        assert daemon.terminate() == 0, daemon.text()[-3000:]
    stored = rows(db, "SELECT source_id FROM mentions WHERE source = 'rss'")
    ids = sorted(r[0] for r in stored)
    assert len(ids) == len(set(ids)), "a mention was stored twice"
    assert ids == sorted(f"https://news.example/{i}" for i in range(FEED_ITEMS)), (
        f"lost {FEED_ITEMS - len(ids)} mentions"
    )
    assert integrity(db) == "ok"


@pytest.mark.parametrize("seed", [8])
def test_kill9_during_ingest_loses_and_repeats_nothing(
    seed: int, tmp_path: Path, feed_server: FeedServer
) -> None:
    _kill_runs(seed, 1, tmp_path, feed_server)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill9_during_ingest_many_times(seed: int, tmp_path: Path, feed_server: FeedServer) -> None:
    _kill_runs(seed, 8, tmp_path, feed_server)


# -- alert delivery ---------------------------------------------------------------------------


def _posts(slack: FakeSlack) -> list[dict]:
    return [c.body for c in slack.calls("chat.postMessage") if c.ok]


def _kill_when_posted(daemon: Uproar, slack: FakeSlack, after: int, extra_wait: float) -> bool:
    """Kill once Slack has seen ``after`` posts in total (then ``extra_wait`` s); True if killed,
    False if the process finished first."""
    def posted_or_done() -> bool:
        return len(slack.calls("chat.postMessage")) >= after or daemon.proc.poll() is not None

    daemon.wait_until(posted_or_done, f"{after} posts")
    if daemon.proc.poll() is not None:
        daemon.finish()
        return False
    if extra_wait:
        threading.Event().wait(extra_wait)
    daemon.kill()
    return True


def _delivery_kills(seed: int, kills: int, tmp_path: Path, fake_slack: FakeSlack) -> None:
    rng = random.Random(seed)
    config = write_config(tmp_path, slack=fake_slack)
    db = tmp_path / "uproar.db"
    replay = ["replay", str(DEMO), "-c", str(config), "--instant", "--archive", f"sqlite:///{db}"]
    for n in range(kills):
        daemon = Uproar(replay, tmp_path / f"replay{n}.log")
        target = len(fake_slack.calls("chat.postMessage")) + rng.randint(1, 2)
        # 0: right as Slack records the post (often before its answer reaches us).
        if not _kill_when_posted(daemon, fake_slack, target, rng.choice([0.0, 0.0, 0.05, 0.3])):
            break
        assert integrity(db) == "ok"
    # A daemon (no sources) delivers whatever is still queued.
    daemon = Uproar(["run", "-c", str(config)], tmp_path / "final.log")
    try:
        daemon.wait_for_log("uproar running")
        daemon.wait_until(
            lambda: rows(db, "SELECT count(*) FROM outbox WHERE sent_at IS NULL "
                             "AND failed_at IS NULL")[0][0] == 0,
            "an empty outbox",
        )
    finally:
        assert daemon.terminate() == 0, daemon.text()[-3000:]
    failed = rows(db, "SELECT id, last_error FROM outbox WHERE failed_at IS NOT NULL")
    assert failed == []
    incidents = [r[0] for r in rows(db, "SELECT id FROM incidents")]
    assert incidents, "the demo raises at least one incident"
    posts = _posts(fake_slack)
    parents = [p for p in posts if not p.get("thread_ts")]
    # One parent per incident: never lost, never posted twice.
    opened = sorted(_incident_of(p) for p in parents)
    assert opened == sorted(incidents), json.dumps([p.get("text") for p in parents], indent=1)
    # No reply posted twice either.
    replies = [(p["thread_ts"], p.get("text")) for p in posts if p.get("thread_ts")]
    assert len(replies) == len(set(replies)), replies
    # Every row marked sent points at a message that exists in the channel.
    sent_ts = {r[0] for r in rows(db, "SELECT message_ts FROM outbox WHERE sent_at IS NOT NULL")}
    in_channel = {m["ts"] for m in fake_slack.messages}
    assert sent_ts <= in_channel


def _incident_of(post: dict) -> int:
    text = str(post.get("text", ""))
    marker = text.rsplit("incident #", 1)
    assert len(marker) == 2, text
    return int("".join(ch for ch in marker[1] if ch.isdigit()) or 0)


@pytest.mark.parametrize("seed", [4])
def test_kill9_during_alert_delivery_loses_and_repeats_nothing(
    seed: int, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    _delivery_kills(seed, 1, tmp_path, fake_slack)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [5, 6, 7, 8, 9])
def test_kill9_during_alert_delivery_many_times(
    seed: int, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    _delivery_kills(seed, 6, tmp_path, fake_slack)
