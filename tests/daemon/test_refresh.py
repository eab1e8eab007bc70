"""Engagement refresh: recent complaints are re-read through the connector's refresh (the real
tweepy client against the fake X API here), their counts updated in the archive and every
reading kept as a sample, so detection sees reposts and likes per minute."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.clock import SimulatedClock
from monitor.daemon.app import App
from monitor.daemon.refresh import (
    EngagementRefresher,
    build_refreshers,
    engagement_history,
    velocity,
)
from monitor.daemon.runner import SourceRunner
from monitor.daemon.sources import brand_queries, enabled_connectors, refresh_settings
from tests.fakes import twitter as fake
from tests.fakes import youtube as fake_yt
from tests.fakes.twitter import FakeTwitter
from tests.fakes.youtube import FakeYouTube
from tests.sourcekit import archive_url, config, make_app  # noqa: F401  (fixture)

fake_twitter = fake.fake_twitter
fake_youtube = fake_yt.fake_youtube

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(NOW)


@pytest.fixture
def tweets(fake_twitter: FakeTwitter) -> dict[str, dict[str, Any]]:
    author = fake_twitter.add_user("42", "sonsofmaxwell", "Dave Carroll", followers=1200)
    made = {
        "recent": ("1785000000000000001", "@united broke my guitar", NOW - timedelta(minutes=9)),
        "recent2": ("1785000000000000002", "united lost my bag", NOW - timedelta(minutes=5)),
        "happy": ("1785000000000000003", "united crew was lovely", NOW - timedelta(minutes=4)),
        "old": ("1785000000000000004", "united lost my bag again", NOW - timedelta(days=3)),
    }
    return {key: fake_twitter.add_tweet(tid, text, author=author, likes=2, retweets=1,
                                        created_at=stamp(at))
            for key, (tid, text, at) in made.items()}


@pytest.fixture
def wired(fake_twitter: FakeTwitter, clock: SimulatedClock,
          archive_url: str) -> Iterator[tuple[App, SourceRunner]]:  # noqa: F811
    cfg = config({"twitter": {"enabled": True, "bearer_token": fake_twitter.bearer_token,
                              "api_url": fake_twitter.api_url, "lookback": "7d",
                              "refresh": {"every": "5m", "max_age": "48h"}}})
    connector = enabled_connectors(cfg)["twitter"]
    app = make_app(cfg, clock, archive_url)
    runner = SourceRunner("twitter", connector, app.pipeline, brand_queries(cfg), clock,
                          timedelta(minutes=5), timedelta(days=7))
    yield app, runner
    connector.close()
    app.close()


def counts(app: App, text: str) -> tuple[int, int]:
    [found] = app.archive.search(text)
    return found.mention.engagement.likes, found.mention.engagement.reposts


def test_recent_complaints_get_fresh_counts_and_a_history(
        wired: tuple[App, SourceRunner], fake_twitter: FakeTwitter, clock: SimulatedClock,
        tweets: dict[str, dict[str, Any]]) -> None:
    app, runner = wired
    assert runner.poll_once().ok
    assert app.archive.count_mentions(source="twitter") == 4
    [refresher] = build_refreshers(app, [runner])
    assert refresher.settings.every == timedelta(minutes=5)

    clock.advance(timedelta(minutes=10))
    for key in ("recent", "old", "happy"):
        tweets[key]["public_metrics"].update(like_count=102, retweet_count=51)
    outcome = refresher.refresh_once()
    assert (outcome.ok, outcome.asked, outcome.refreshed) == (True, 2, 2)
    # Only the recent complaints were looked up: not the happy tweet, not the 3-day-old one.
    [lookup] = fake_twitter.lookups()
    assert set(lookup["ids"].split(",")) == {tweets["recent"]["id"], tweets["recent2"]["id"]}
    assert counts(app, "guitar") == (102, 51)
    assert counts(app, "lovely") == (2, 1)  # not a complaint: left alone

    history = engagement_history(app.archive.engine, "twitter", tweets["recent"]["id"])
    assert [(s.at, s.likes, s.reposts) for s in history] == [
        (NOW, 2, 1), (NOW + timedelta(minutes=10), 102, 51)]
    speed = velocity(history)
    assert speed is not None
    assert (speed.likes, speed.reposts) == (10.0, 5.0)  # per minute

    clock.advance(timedelta(minutes=5))
    tweets["recent"]["public_metrics"].update(like_count=402, retweet_count=151)
    del fake_twitter.tweets[tweets["recent2"]["id"]]  # deleted meanwhile: keeps its counts
    outcome = refresher.refresh_once()
    assert (outcome.asked, outcome.refreshed) == (2, 1)
    history = engagement_history(app.archive.engine, "twitter", tweets["recent"]["id"])
    assert len(history) == 3
    recent_speed = velocity(history, window=timedelta(minutes=5))
    assert recent_speed is not None and recent_speed.likes == 60.0  # it is speeding up
    assert len(engagement_history(app.archive.engine, "twitter", tweets["recent2"]["id"])) == 2


def test_a_paused_source_is_not_refreshed(
        wired: tuple[App, SourceRunner], fake_twitter: FakeTwitter, clock: SimulatedClock,
        tweets: dict[str, dict[str, Any]]) -> None:
    app, runner = wired
    assert runner.poll_once().ok
    fake_twitter.inject(fake.unauthorized())
    clock.advance(timedelta(minutes=5))
    assert runner.poll_once().paused
    refresher = EngagementRefresher("twitter", runner.connector, app.archive, clock,
                                    refresh_settings(app.config, "twitter"), 0.5, runner)
    assert refresher.refresh_once().skipped
    assert fake_twitter.lookups() == []


def test_a_failing_refresh_is_logged_once_and_recovers(
        wired: tuple[App, SourceRunner], fake_twitter: FakeTwitter, clock: SimulatedClock,
        tweets: dict[str, dict[str, Any]], caplog: pytest.LogCaptureFixture) -> None:
    app, runner = wired
    assert runner.poll_once().ok
    [refresher] = build_refreshers(app, [runner])
    caplog.set_level(logging.INFO, logger="uproar.refresh")
    for _ in range(3):
        fake_twitter.inject(fake.unavailable())
        clock.advance(timedelta(minutes=5))
        outcome = refresher.refresh_once()
        assert not outcome.ok and "server error" in (outcome.error or "")
    clock.advance(timedelta(minutes=5))
    assert refresher.refresh_once().ok
    lines = [r.getMessage() for r in caplog.records if r.name == "uproar.refresh"]
    assert sum("failing" in line for line in lines) == 1
    assert "refresh twitter works again" in lines


def test_refresh_settings_per_source_win_and_rss_never_refreshes(
        fake_twitter: FakeTwitter, clock: SimulatedClock, tmp_path: Any) -> None:
    cfg = config({"twitter": {"enabled": True, "bearer_token": "x",
                              "api_url": fake_twitter.api_url},
                  "hackernews": {"enabled": True, "refresh": {"enabled": False}},
                  "rss": {"enabled": True, "feeds": ["http://127.0.0.1:9/feed"]}},
                 refresh={"every": "15m", "max_age": "6h"})
    assert refresh_settings(cfg, "twitter").every == timedelta(minutes=15)
    assert refresh_settings(cfg, "hackernews").enabled is False
    connectors = enabled_connectors(cfg)
    app = make_app(cfg, clock, f"sqlite:///{tmp_path / 'r.db'}")
    try:
        runners = [SourceRunner(n, c, app.pipeline, [], clock, timedelta(minutes=5))
                   for n, c in connectors.items()]
        assert [r.name for r in build_refreshers(app, runners)] == ["twitter"]
    finally:
        for connector in connectors.values():
            connector.close()
        app.close()


def test_youtube_follows_the_comments_of_complaint_videos(
        fake_youtube: FakeYouTube, clock: SimulatedClock, archive_url: str) -> None:  # noqa: F811
    fake_youtube.add_video("complaint01", "united broke my guitar", stamp(NOW - timedelta(hours=1)))
    fake_youtube.add_video("happyvideo1", "united crew was lovely", stamp(NOW - timedelta(hours=1)))
    cfg = config({"youtube": {"enabled": True, "api_key": fake_youtube.api_key,
                              "api_url": fake_youtube.api_url, "lookback": "1d",
                              "refresh": {"every": "30m", "max_age": "48h"}}})
    connector = enabled_connectors(cfg, clock=clock.now)["youtube"]
    app = make_app(cfg, clock, archive_url)
    runner = SourceRunner("youtube", connector, app.pipeline, brand_queries(cfg), clock,
                          timedelta(minutes=15), timedelta(days=1))
    try:
        assert runner.poll_once().ok
        build_refreshers(app, [runner])  # wires the archive's complaint videos into the polls
        fake_youtube.add_comment("UgComment001", "complaint01", "united did it again",
                                 stamp(NOW + timedelta(minutes=5)))
        fake_youtube.add_comment("UgComment002", "happyvideo1", "nice",
                                 stamp(NOW + timedelta(minutes=5)))
        clock.advance(timedelta(minutes=15))
        assert runner.poll_once().ok
        followed = [params["videoId"] for resource, params in fake_youtube.calls()
                    if resource == "commentThreads" and "videoId" in params]
        assert followed == ["complaint01"]  # the complaint video only, not the happy one
        [reply] = app.archive.search("again")
        assert reply.mention.parent_id == "complaint01"
        assert app.archive.search("nice") == []
    finally:
        connector.close()
        app.close()
