"""Items keep arriving while a poll reads its pages: across many polls through the real runner
and archive, none is missed and none is stored twice.

X/Twitter: new tweets are posted between the page requests of a ``next_token`` paginated
search (and between polls). Hacker News: new hits arrive between page requests (shifting
Algolia's page-number pages), and some are indexed late under their original time, which only
the overlapping ``created_at_i`` windows catch.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.hackernews import HackerNewsConnector
from connectors.twitter import TwitterConnector
from monitor.clock import SimulatedClock
from monitor.daemon.app import App
from monitor.daemon.runner import SourceRunner
from tests.fakes import hackernews as fake_hn
from tests.fakes import twitter as fake_tw
from tests.fakes.hackernews import FakeHackerNews
from tests.fakes.twitter import FakeTwitter
from tests.sourcekit import config, make_app

fake_twitter = fake_tw.fake_twitter
fake_hackernews = fake_hn.fake_hackernews

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SNOWFLAKE_EPOCH_MS = 1288834974657


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(NOW)


@pytest.fixture
def app(clock: SimulatedClock, tmp_path: Path) -> Iterator[App]:
    made = make_app(config({}), clock, f"sqlite:///{tmp_path / 'uproar.db'}")
    yield made
    made.close()


def archived_ids(app: App, source: str) -> Counter[str]:
    with app.archive.engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT source_id FROM mentions WHERE source = ?", (source,)).all()
    return Counter(r[0] for r in rows)


def poll_until_quiet(runner: SourceRunner, clock: SimulatedClock, polls: int,
                     between: Any, quiet: Any) -> Counter[str]:
    """``polls`` polls five minutes apart (``between()`` runs before each but the first);
    then, after ``quiet()`` stops the arrivals, one more. Returns how often each id came out
    as new."""
    seen: Counter[str] = Counter()
    for n in range(polls + 1):
        if n:
            clock.advance(timedelta(minutes=5))
            if n < polls:
                between()
            else:
                quiet()
        outcome = runner.poll_once()
        assert outcome.ok, outcome.problems
        seen.update(m.source_id for m in outcome.mentions)
    return seen


def tweet_id(at: datetime, seq: int) -> str:
    """An X id for a tweet posted at ``at`` (ids are time-ordered snowflakes)."""
    millis = int(at.timestamp() * 1000) - SNOWFLAKE_EPOCH_MS
    return str((millis << 22) + seq)


def test_twitter_new_tweets_while_paging_are_neither_missed_nor_doubled(
        fake_twitter: FakeTwitter, app: App, clock: SimulatedClock) -> None:
    author = fake_twitter.add_user("42", "flyer", "A Flyer", followers=10)
    counter = itertools.count(1)

    def post(n: int) -> None:
        for _ in range(n):
            seq = next(counter)
            fake_twitter.add_tweet(tweet_id(clock.now(), seq), f"united lost my bag #{seq}",
                                   author=author)

    post(35)  # the backlog the first poll reads (4 pages of 10)

    def while_paging(params: dict[str, str]) -> None:
        if "next_token" in params:
            post(3)  # three tweets posted while the poll was reading the previous page

    fake_twitter.before_search = while_paging
    connector = TwitterConnector(fake_twitter.bearer_token, api_url=fake_twitter.api_url,
                                 page_size=10, max_pages=50, clock=clock.now)
    try:
        runner = SourceRunner("twitter", connector, app.pipeline, ["united"], clock,
                              timedelta(minutes=5))
        seen = poll_until_quiet(runner, clock, polls=6, between=lambda: post(12),
                                quiet=lambda: setattr(fake_twitter, "before_search", None))
    finally:
        connector.close()
    posted = set(fake_twitter.tweets)
    assert len(posted) > 100
    assert len(fake_twitter.searches()) > 12  # many pages, with tweets arriving in between
    assert set(seen) == posted and max(seen.values()) == 1  # each new exactly once
    stored = archived_ids(app, "twitter")
    assert set(stored) == posted and max(stored.values()) == 1


def test_hackernews_arrivals_and_late_indexing_are_caught_once(
        fake_hackernews: FakeHackerNews, app: App, clock: SimulatedClock) -> None:
    template = fake_hn.sample()["hits"][0]
    counter = itertools.count(40_000_000)
    late: list[str] = []

    def add(at: datetime, *, indexed_late: bool = False) -> None:
        object_id = str(next(counter))
        hit = {**template, "objectID": object_id, "created_at_i": int(at.timestamp()),
               "created_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
               "comment_text": f"united lost my bag ({object_id})"}
        fake_hackernews.add_hit(hit)
        if indexed_late:
            late.append(object_id)

    fake_hackernews.indexed = lambda hit: hit["objectID"] not in late

    for minute in range(30):
        add(clock.now() - timedelta(minutes=minute, seconds=30))

    def while_paging(params: dict[str, str]) -> None:
        if params.get("page", "0") != "0":
            add(clock.now())  # a new comment lands between two page requests

    fake_hackernews.before_search = while_paging

    def between_polls() -> None:
        late.clear()  # what was indexed late is searchable now (within the overlap)
        for seconds in (10, 70, 130):
            add(clock.now() - timedelta(seconds=seconds))
        add(clock.now() - timedelta(minutes=6), indexed_late=True)  # before the last poll

    def quiet() -> None:
        fake_hackernews.before_search = None
        late.clear()

    connector = HackerNewsConnector(api_url=fake_hackernews.api_url, hits_per_page=7,
                                    overlap=600, clock=clock.now)
    try:
        runner = SourceRunner("hackernews", connector, app.pipeline, ["united"], clock,
                              timedelta(minutes=5))
        seen = poll_until_quiet(runner, clock, polls=6, between=between_polls, quiet=quiet)
    finally:
        connector.close()
    posted = set(fake_hackernews.hits)
    assert len(posted) > 50
    assert set(seen) == posted and max(seen.values()) == 1
    stored = archived_ids(app, "hackernews")
    assert set(stored) == posted and max(stored.values()) == 1
