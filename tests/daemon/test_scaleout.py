"""Scale-out: several `uproar run` processes on one PostgreSQL archive poll each source once and
alert once, and the survivors carry on when one is killed.

Needs the machine's PostgreSQL: UPROAR_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test
Each test gets a fresh database, dropped afterwards.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from monitor.archive import Archive
from monitor.daemon.health import HealthState
from monitor.daemon.leader import PostgresCoordinator, coordinator_for, lock_key
from tests.fakes.feedserver import RSS, FeedServer
from tests.fakes.slack import FakeSlack
from tests.reliability.daemon import Uproar

POSTGRES_ENV = "UPROAR_TEST_POSTGRES_URL"
# A killed process's work must move to a survivor within this (the "within a minute").
TAKEOVER = 60.0
# Complaints in the breaking story: enough to clear the detector's threshold over a quiet day.
WAVE1 = 15


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"set {POSTGRES_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    name = f"uproar_scale_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    fresh = make_url(url).set(database=name).render_as_string(hide_password=False)
    Archive(fresh).close()  # create the schema once, before several processes race for it
    try:
        yield fresh
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_coordinators_split_sources_elect_one_leader_and_take_over(pg_url: str) -> None:
    engines = [create_engine(pg_url), create_engine(pg_url)]
    a, b = (PostgresCoordinator(e, ["rss", "hackernews"]) for e in engines)
    try:
        a._connection(), b._connection()  # both alive before either decides
        a.refresh()
        b.refresh()
        assert [a.is_leader, b.is_leader] == [True, False]
        owned = [{s for s in ("rss", "hackernews") if c.owns(s)} for c in (a, b)]
        assert owned[0] | owned[1] == {"rss", "hackernews"} and not owned[0] & owned[1]
        a.refresh(), b.refresh()  # sticky: nothing moves while both live
        assert a.is_leader and not b.is_leader
        # a's process dies: PostgreSQL ends its session and frees its locks.
        with engines[1].connect() as conn:
            pid = a._conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()  # type: ignore[union-attr]
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            gone = "SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"
            for _ in range(500):  # termination is asynchronous: wait for the session to end
                if not conn.execute(text(gone), {"pid": pid}).scalar():
                    break
                threading.Event().wait(0.01)
        b.refresh()
        assert b.is_leader and b.owns("rss") and b.owns("hackernews")
        a.refresh()  # a notices its lost connection and holds nothing
        assert not a.is_leader and not a.owns("rss")
    finally:
        a.close(), b.close()
        for e in engines:
            e.dispose()


# -- several real daemons -------------------------------------------------------------------


def _feed(items: list[tuple[str, str, datetime]]) -> bytes:
    body = "".join(
        f"<item><guid>{guid}</guid><link>https://news.example/{guid}</link><title>{title}</title>"
        f"<pubDate>{format_datetime(at)}</pubDate></item>"
        for guid, title, at in items
    )
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>News</title>'
            f"<link>https://news.example/</link>{body}</channel></rss>").encode()


def _complaints(prefix: str, n: int) -> list[tuple[str, str, datetime]]:
    now = datetime.now(UTC)
    title = "Larkspur Airways smashed my cello, furious, no refund"
    return [(f"{prefix}-{i}", f"{title} ({prefix} {i})", now - timedelta(seconds=2 * i))
            for i in range(n)]


def _config(tmp: Path, name: str, pg_url: str, feed: str, slack: FakeSlack) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(f"""\
brands: [{{key: larkspur, name: Larkspur Airways, query: '"larkspur airways"'}}]
archive: {{url: "{pg_url}"}}
http: {{listen: "127.0.0.1:0"}}
detection: {{bucket: 10s, window: 2m, min_count: 3}}
alerts: {{slack: {{token: "{slack.token}", api_url: "{slack.url}"}}}}
sources:
  rss: {{enabled: true, every: 10s, jitter: 0s, feeds: ["{feed}"]}}
""")
    return path


def _count(pg_url: str, sql: str) -> int:
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar() or 0)
    finally:
        engine.dispose()


def test_two_daemons_poll_once_alert_once_and_survive_a_kill(
    tmp_path: Path, pg_url: str, feed_server: FeedServer, fake_slack: FakeSlack
) -> None:
    # Some hours of history, so detection is past its warm-up when the story breaks.
    now = datetime.now(UTC)
    old = [(f"old-{h}", f"Larkspur Airways lost my bag again, hour {h}", now - timedelta(hours=h))
           for h in range(4, 20, 3)]
    url = feed_server.add_route("/news.rss", _feed(old), content_type=RSS)
    history = Uproar(["poll", "-c", str(_config(tmp_path, "poll", pg_url, url, fake_slack))],
                     tmp_path / "poll.log")
    assert history.finish() == 0, history.text()
    daemons = {name: Uproar(["run", "-c", str(_config(tmp_path, name, pg_url, url, fake_slack))],
                            tmp_path / f"{name}.log") for name in ("a", "b")}
    try:
        for d in daemons.values():
            d.wait_for_log("uproar running")
        first = daemons["a"]
        first.wait_until(lambda: any("poll rss:" in d.text() for d in daemons.values()), "a poll")
        # A story breaks: fresh complaints in the feed.
        wave1 = _complaints("w1", WAVE1)
        feed_server.add_route("/news.rss", _feed(old + wave1), content_type=RSS)
        first.wait_until(lambda: any(not c.body.get("thread_ts")
                                     for c in fake_slack.calls("chat.postMessage") if c.ok),
                         "an alert in Slack")
        logs = {n: d.text() for n, d in daemons.items()}
        pollers = [n for n, log in logs.items() if "poll rss:" in log]
        leaders = [n for n, log in logs.items() if "now the alerting leader" in log]
        assert len(pollers) == 1, logs  # each poll done by one process only
        assert len(leaders) == 1, logs
        # Kill the process doing the work (the poller; the leader too if it is the same).
        victim = pollers[0]
        survivor = "b" if victim == "a" else "a"
        daemons[victim].kill()
        killed_at = time.monotonic()
        wave2 = _complaints("w2", 5)
        feed_server.add_route("/news.rss", _feed(old + wave1 + wave2), content_type=RSS)
        d = daemons[survivor]
        d.wait_until(lambda: _count(pg_url, "SELECT count(*) FROM mentions "
                                            "WHERE source_id LIKE '%w2-%'") == 5,
                     "the survivor to store the second wave")
        took = time.monotonic() - killed_at
        assert took < TAKEOVER + 15, f"took over after {took:.0f}s"
        d.wait_for_log("now the alerting leader")
        assert d.terminate() == 0, d.text()[-3000:]
    finally:
        for d in daemons.values():
            if d.proc.poll() is None:
                d.kill()
    # Every feed item stored exactly once.
    stored = len(old) + WAVE1 + 5
    assert _count(pg_url, "SELECT count(*) FROM mentions") == stored
    assert _count(pg_url, "SELECT count(DISTINCT source_id) FROM mentions") == stored
    # Every alert sent once: one parent per incident, no message posted twice.
    posts = [c.body for c in fake_slack.calls("chat.postMessage") if c.ok]
    parents = [p for p in posts if not p.get("thread_ts")]
    assert len(parents) == _count(pg_url, "SELECT count(*) FROM incidents") >= 1
    replies = [(p["thread_ts"], p.get("text")) for p in posts if p.get("thread_ts")]
    assert len(replies) == len(set(replies))


def test_sqlite_runs_everything_in_one_process(tmp_path: Path) -> None:
    with Archive(f"sqlite:///{tmp_path}/a.db") as archive:
        coordinator = coordinator_for(archive.engine, ["rss"])
        coordinator.refresh()
        assert coordinator.is_leader and coordinator.owns("rss")


def test_a_source_polled_elsewhere_is_standby_not_degraded() -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    state = HealthState()
    state.add_source("rss", timedelta(minutes=5), start)
    state.set_scheduler_alive(True, start)
    state.set_standby("rss", True, start)
    later = start + timedelta(hours=2)
    state.beat(later)
    report = state.check(later)
    assert report.status == "ok", report.reasons
    assert report.to_json()["sources"]["rss"]["status"] == "standby"
    # Taken over: a fresh grace period, then the usual silence rule.
    state.set_standby("rss", False, later)
    assert state.check(later).status == "ok"
    state.beat(later + timedelta(minutes=20))
    assert state.check(later + timedelta(minutes=20)).status == "degraded"


def test_lock_keys_are_stable_and_distinct() -> None:
    keys = {lock_key(n) for n in ("leader", "source:rss", "source:reddit", "source:twitter")}
    assert len(keys) == 4
    assert all(-(2**63) <= k < 2**63 for k in keys)
    assert lock_key("leader") == lock_key("leader")
