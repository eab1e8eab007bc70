"""Stories: complaints about the same thing become one story, with a title, numbers and posts.

Texts are real complaints from ``../shared/data/complaints`` (copied here, so the tests run
without the shared folder); grouping uses the daemon's topic embeddings (``monitor.detect.topic``).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, func, make_url, select
from sqlalchemy import text as sql

from connectors.base import Author, Engagement, Mention
from monitor.alerts.render import render_console, render_slack
from monitor.archive import Archive, migrate
from monitor.archive.engine import build_engine
from monitor.archive.schema import outbox, stories, story_mentions
from monitor.cli import cli
from monitor.clock import SimulatedClock
from monitor.config import load_config
from monitor.daemon.app import build_app
from monitor.detect.spread import SpreadMonitor, SpreadSettings
from monitor.detect.stories import StorySettings, StoryTracker
from monitor.signals import Example
from tests.paths import ROOT

ROOT = ROOT
DEMO = ROOT / "monitor" / "demo" / "larkspur-cello.jsonl"
T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)

# Two real complaints that start two stories (from complaints/train.csv).
LUGGAGE = (
    "@British_Airways BA lost our suitcases yesterday. They still didnt arrive. You've ruined "
    "our first day of holidays. How do you compensate?"
)
OUTAGE = (
    "@nationalgridus  My street just lost power... once again. Your phone line is busy, or also "
    "down. Boston Road in Andover MA.  Please fix."
)
# Real complaints on the same two topics (also from complaints/train.csv).
LUGGAGE_RELATED = [
    "@British_Airways still not received my luggage from redirected flight on Sunday. Is Santa "
    "bringing it or should I expect it before then??",
    "@British_Airways lost my bag for 4 days over Christmas, took a month to reply, and then sent "
    "a measly 7500 Avios. Unacceptable. @alex_cruz",
]
OUTAGE_RELATED = [
    "@nationalgridus You guys know there is a #blackout in #Lynn #Massachusetts Is it affecting "
    "other cities as well?",
    "@nationalgridus - Great Job! 3 power outages in 3 months!  Oh, and thanks for responding "
    "to my DM that you requested last time. Sarcasm...",
]
# Ordinary complaints about other things (complaints/train.csv), heard before the stories.
ORDINARY = [
    "@hulu_support I canceled my subscription before the 30 days and I am still getting charged "
    "monthly",
    "@VodafoneIN Network going worse by the day, are you people working on network upgradation? "
    "when will normality be restored?",
    "@UPSHelp Why has my package been \"out for delivery\" for 4 days?",
    "@greateranglia please fix the platform  drainage issue at Audley End.",
    "Horrible customer service! @nationalgridus",
    "@AWSSupport instance reboot have stopped working . Retried 4 times for 2 different machines "
    "in last 30 minutes.",
    "@GeorgiaPower Your online outage reporting page does not work with either Chrome or Safari.",
    "@British_Airways 200% price increase since August this year #greatcustomerservice",
    "@McDonalds my order was wrong again, missing fries and the drink was flat",
    "@pizzahut waited two hours for a pizza that arrived cold",
    "@XboxSupport my console keeps crashing when I launch any game",
    "@Uber_Support driver cancelled on me three times in a row, now I'm late for work",
    "@JetBlue your app will not let me check in for my flight tomorrow",
    "@TurboTax charged me for filing state taxes when it said free",
    "@HPSupport printer says out of ink after a week with a brand new cartridge",
    "@ASOS_HereToHelp still waiting for my refund for the jeans I returned a month ago",
    "@Subaru_USA dealer kept my car for a week and the check engine light is still on",
    "@Delta sat on the tarmac for 3 hours with no water or updates",
    "@NYTSupport I cancelled my subscription and you still billed me",
    "@Nordstrom my online order shipped to the wrong address and nobody can help",
    "@KFC_UKI no gravy again, what's the point",
    "@moto_support my phone restarts every hour since the update",
]


@pytest.fixture(scope="module")
def topic_embed() -> Any:
    """The daemon's story embeddings: MiniLM-L6's six layers as shipped."""
    from monitor.detect.topic import topic_embedder

    return topic_embedder()


def example(i: int, text: str, at: datetime, reach: int = 0, followers: int = 100) -> Example:
    return Example("twitter", str(i), f"https://x.com/u/status/{i}", text, f"user{i}",
                   followers, reach, at)


def tracker_with_ordinary(embed: Any) -> tuple[StoryTracker, int]:
    tracker = StoryTracker(StorySettings())
    vectors = embed(ORDINARY)
    for i, (text, vec) in enumerate(zip(ORDINARY, vectors, strict=True)):
        at = T0 - timedelta(hours=6) + timedelta(minutes=10 * i)
        tracker.assign("acme", "Acme", text, example(i, text, at), at, vec)
    return tracker, len(ORDINARY)


def test_two_interleaved_stories_become_two_stories_with_titles(topic_embed: Any) -> None:
    tracker, n = tracker_with_ordinary(topic_embed)
    posts: list[tuple[str, str]] = []
    for k in range(12):  # each story spreads: reshares of its first post, interleaved
        posts.append(("luggage", f"RT @traveller{k}: {LUGGAGE}" if k else LUGGAGE))
        posts.append(("outage", f"RT @andover{k}: {OUTAGE}" if k else OUTAGE))
    vectors = topic_embed([text for _, text in posts])
    story_of: dict[str, set[int]] = {"luggage": set(), "outage": set()}
    for i, ((topic, text), vec) in enumerate(zip(posts, vectors, strict=True)):
        at = T0 + timedelta(minutes=2 * i)
        got = tracker.assign("acme", "Acme", text, example(n + i, text, at), at, vec)
        story_of[topic].add(id(got.story))
    assert len(story_of["luggage"]) == 1 and len(story_of["outage"]) == 1
    assert story_of["luggage"] != story_of["outage"]
    by_id = {id(s): s for s in tracker.all_open()}
    luggage = by_id[story_of["luggage"].pop()]
    outage = by_id[story_of["outage"].pop()]
    assert luggage.count == 12 and outage.count == 12
    assert "suitcases" in luggage.title and "british" not in luggage.title
    assert "power" in outage.title or "street" in outage.title
    assert luggage.seed is not None and luggage.seed.text == LUGGAGE
    assert luggage.first_seen == T0 and luggage.sources == {"twitter": 12}


def test_related_complaints_never_join_the_other_topics_story(topic_embed: Any) -> None:
    tracker, n = tracker_with_ordinary(topic_embed)
    texts = [LUGGAGE, OUTAGE, *LUGGAGE_RELATED, *OUTAGE_RELATED]
    topics = ["luggage", "outage", "luggage", "luggage", "outage", "outage"]
    vectors = topic_embed(texts)
    members: dict[int, set[str]] = {}
    for i, (text, vec) in enumerate(zip(texts, vectors, strict=True)):
        at = T0 + timedelta(minutes=i)
        got = tracker.assign("acme", "Acme", text, example(n + i, text, at), at, vec)
        members.setdefault(id(got.story), set()).add(topics[i])
    assert all(len(topics_in) == 1 for topics_in in members.values())


def test_story_growth_signal_has_reasons_in_numbers_and_the_seed() -> None:
    tracker = StoryTracker(StorySettings(min_count=10))
    for i in range(3):  # ordinary, unrelated complaints
        at = T0 - timedelta(minutes=40 - i)
        tracker.assign("acme", "Acme", ORDINARY[i], example(i, ORDINARY[i], at), at)
    told = []
    for i in range(30):
        at = T0 + timedelta(minutes=i)
        text = LUGGAGE if i == 0 else f"RT @traveller{i}: {LUGGAGE}"
        tracker.assign("acme", "Acme", text, example(100 + i, text, at, reach=i * 10), at)
        if i % 5 == 0:
            told.append((i, tracker.evaluate(at)))
    fired = [(i, s) for i, signals in told for s in signals]
    assert [(i, s.kind) for i, s in fired] == [(10, "story_growth"), (25, "story_growth")]
    first, later = fired[0][1], fired[1][1]
    assert first.count == 11 and "11 complaints in 30 min" in first.reasons[0]
    assert "0 in the 30 min before" in first.reasons[0]
    # the seed's own words, not a bag of keywords
    assert first.story_title == "BA lost our suitcases yesterday. They still didnt arrive."
    assert first.examples[0].text == LUGGAGE  # the seed first, then the most shared
    assert later.count == 26 and later.severity == "warning"  # doubled during the cooldown


def mention(i: int, text: str, at: datetime, *, reposts: int = 0, followers: int = 300) -> Mention:
    return Mention(
        source="twitter",
        source_id=f"t{i}",
        url=f"https://x.com/u/status/{i}",
        text=text,
        author=Author(handle=f"user{i}", name=f"User {i}", followers=followers),
        created_at=at,
        engagement=Engagement(likes=reposts // 2, reposts=reposts),
    )


CONFIG = """\
brands:
  - key: ba
    name: British Airways
    query: '"british airways" OR @british_airways'
archive: {url: "sqlite:///unused.db"}
http: {listen: "127.0.0.1:0"}
"""
POSTGRES_ENV = "UPROAR_TEST_POSTGRES_URL"


@pytest.fixture(params=["sqlite", "postgresql"])
def archive_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty SQLite file, or a fresh PostgreSQL schema when UPROAR_TEST_POSTGRES_URL is set."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'uproar.db'}"
        return
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL story tests need {POSTGRES_ENV}=postgresql+psycopg://…")
    schema = f"uproar_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(sql(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(sql(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def app_factory(  # type: ignore[no-untyped-def]
    tmp_path: Path, archive_url: str, default_classifier: Any
):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    config = load_config(path).config
    built: list[Any] = []

    def make(clock: SimulatedClock) -> Any:
        app = build_app(
            config, clock, archive_url=archive_url, classifier=default_classifier, console=None
        )
        built.append(app)
        return app

    yield make
    for app in built:
        app.close()


def test_pipeline_stores_stories_and_alerts_quote_the_seed(app_factory: Any) -> None:
    clock = SimulatedClock(T0)
    app = app_factory(clock)
    pipeline = app.pipeline
    # ordinary complaints for a day, one an hour
    for h in range(24):
        clock.set(T0 + timedelta(hours=h))
        text = f"@British_Airways {ORDINARY[h % len(ORDINARY)].split(' ', 1)[1]}"
        pipeline.ingest([mention(h, text, clock.now() - timedelta(minutes=1))])
        pipeline.evaluate()
    start = T0 + timedelta(hours=24)
    clock.set(start)
    pipeline.ingest([mention(1000, LUGGAGE, start, reposts=400, followers=5000)])
    # the story spreads: three reshares a minute for 40 minutes
    for minute in range(1, 41):
        clock.set(start + timedelta(minutes=minute))
        batch = [
            mention(1000 + 3 * minute + j, f"RT @user1000: {LUGGAGE}", clock.now())
            for j in range(3)
        ]
        pipeline.ingest(batch)
        if minute % 5 == 0:
            pipeline.evaluate()
    with app.archive.engine.connect() as conn:
        rows = conn.execute(select(stories).order_by(stories.c.mention_count.desc())).mappings()
        top = rows.first()
        assert top is not None
        assert "suitcases" in top["title"]
        assert top["mention_count"] == 121
        assert top["sources"] == {"twitter": 121}
        assert top["top_posts"][0]["text"] == LUGGAGE
        members = conn.execute(
            select(func.count()).where(story_mentions.c.story_id == top["id"])
        ).scalar()
        assert members == 121
        payloads = [r.payload for r in conn.execute(select(outbox.c.payload))]
    assert payloads, "the story raised no alert"
    text = render_console(payloads[0])
    assert "suitcases" in text  # the story's title and its seed post
    assert LUGGAGE.split(".")[0][:40] in " ".join(text.split())
    assert "complaints in the last 30 min" in text
    slack = render_slack(payloads[0])
    assert "suitcases" in slack.text  # the headline names the story
    assert LUGGAGE[:30] in str(slack.blocks)  # and quotes its first post


def test_a_restart_resumes_open_stories(app_factory: Any) -> None:
    clock = SimulatedClock(T0)
    first = app_factory(clock)
    first.pipeline.ingest([mention(1, LUGGAGE, T0)])
    for i in range(2, 6):
        first.pipeline.ingest([mention(i, f"RT @user1: {LUGGAGE}", T0)])
    first.close()
    clock.set(T0 + timedelta(hours=1))
    second = app_factory(clock)
    second.pipeline.warm_up(["ba"], timedelta(days=1), timedelta(minutes=5))
    second.pipeline.ingest([mention(9, f"RT @user1: {LUGGAGE}", clock.now())])
    with second.archive.engine.connect() as conn:
        counts = conn.execute(select(stories.c.mention_count)).scalars().all()
    assert counts == [6]


def test_an_older_archive_gets_the_story_tables(archive_url: str) -> None:
    url = archive_url
    engine = build_engine(url)
    try:
        assert migrate.upgrade(engine, url, "0002").after == "0002"
    finally:
        engine.dispose()
    with Archive(url) as archive, archive.engine.connect() as conn:
        assert archive.previous_version == 2
        assert conn.execute(select(func.count()).select_from(stories)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(story_mentions)).scalar() == 0


def test_demo_replay_stores_the_cello_story(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text((ROOT / "monitor" / "demo" / "config.yaml").read_text())
    db = tmp_path / "replay.db"
    result = CliRunner().invoke(
        cli, ["replay", str(DEMO), "-c", str(config), "--instant", "--archive", f"sqlite:///{db}"]
    )
    assert result.exit_code == 0, result.output
    with Archive(f"sqlite:///{db}") as archive, archive.engine.connect() as conn:
        top = conn.execute(
            select(stories.c.title, stories.c.mention_count).order_by(
                stories.c.mention_count.desc()
            )
        ).first()
    assert top is not None and "cello" in top.title and top.mention_count >= 20


# -- spread -------------------------------------------------------------------------------------


def test_a_fast_spreading_complaint_signals_with_its_numbers() -> None:
    spread = SpreadMonitor(SpreadSettings())
    for i in range(40):  # the brand's norm: a few shares a minute at most
        at = T0 + timedelta(minutes=i)
        ex = example(i, ORDINARY[i % len(ORDINARY)], at)
        spread.complaint("acme", "Acme", ex, 0, at)
        spread.refresh("twitter", str(i), ex, 2, at + timedelta(minutes=10))
    assert spread.take_signals() == []
    viral = example(99, LUGGAGE, T0)
    spread.complaint("acme", "Acme", viral, 10, T0 + timedelta(hours=1))
    spread.refresh("twitter", "99", viral, 1910, T0 + timedelta(hours=1, minutes=20))
    signals = spread.take_signals()
    assert [s.kind for s in signals] == ["engagement_velocity"]
    assert signals[0].reasons[0].startswith("top post 1,900 reposts and likes in 20 min")
    assert signals[0].severity in ("warning", "critical")


def test_a_complaint_from_a_big_account_signals_and_a_small_one_does_not() -> None:
    spread = SpreadMonitor(SpreadSettings(high_reach_followers=100_000))
    spread.complaint("acme", "Acme", example(1, OUTAGE, T0, followers=800), 0, T0)
    assert spread.take_signals() == []
    spread.complaint("acme", "Acme", example(2, OUTAGE, T0, followers=2_300_000), 0, T0)
    (signal,) = spread.take_signals()
    assert signal.kind == "high_reach_author" and signal.severity == "critical"
    assert "2,300,000 followers" in signal.reasons[0]


def test_a_refreshed_complaint_that_spreads_fast_raises_a_spread_alert(app_factory: Any) -> None:
    clock = SimulatedClock(T0)
    app = app_factory(clock)
    app.pipeline.ingest([mention(1, LUGGAGE, T0, reposts=10)])
    clock.set(T0 + timedelta(minutes=20))
    app.pipeline.ingest([mention(1, LUGGAGE, T0, reposts=1300)])  # the source re-read it
    signals = app.pipeline.evaluate()
    velocity = [s for s in signals if s.kind == "engagement_velocity"]
    assert len(velocity) == 1
    assert velocity[0].reasons[0].startswith("top post 1,935 reposts and likes in 20 min")
    assert velocity[0].story_title is not None and "suitcases" in velocity[0].story_title
    with app.archive.engine.connect() as conn:
        payloads = [r.payload for r in conn.execute(select(outbox.c.payload))]
    shown = [render_slack(p).text for p in payloads] + [render_console(p) for p in payloads]
    assert any("top post 1,935 reposts and likes in 20 min" in text for text in shown)
    assert not any("1,935 complaints" in text for text in shown)


def test_engagement_refresh_feeds_engagement_velocity(app_factory: Any) -> None:
    clock = SimulatedClock(T0)
    app = app_factory(clock)
    app.pipeline.ingest([mention(1, LUGGAGE, T0, reposts=0)])
    clock.set(T0 + timedelta(minutes=10))
    app.pipeline.refreshed([mention(1, LUGGAGE, T0, reposts=800)])  # refresh re-read it
    (signal,) = [s for s in app.pipeline.evaluate() if s.kind == "engagement_velocity"]
    assert "1,200 reposts and likes in 10 min" in signal.reasons[0]


# -- uproar stories -----------------------------------------------------------------------------


def test_cli_lists_stories_and_shows_one_with_its_complaints(
    app_factory: Any, archive_url: str
) -> None:
    clock = SimulatedClock(T0)
    app = app_factory(clock)
    app.pipeline.ingest([mention(1, LUGGAGE, T0)])
    app.pipeline.ingest([mention(i, f"RT @user1: {LUGGAGE}", T0) for i in range(2, 5)])
    app.close()
    runner = CliRunner()
    listed = runner.invoke(
        cli, ["stories", "--archive", archive_url, "--since", "2026-03-01", "--format", "json"]
    )
    assert listed.exit_code == 0, listed.output
    (story,) = json.loads(listed.output)
    assert story["mentions"] == 4 and "suitcases" in story["title"]
    assert story["first_seen"] == "2026-03-04T12:00:00Z"
    table = runner.invoke(cli, ["stories", "--archive", archive_url, "--since", "2026-03-01"])
    assert "suitcases" in table.output
    shown = runner.invoke(cli, ["stories", "--archive", archive_url, "--show", str(story["id"])])
    assert shown.exit_code == 0, shown.output
    lines = [line for line in shown.output.splitlines() if line.startswith("  2026-03-04")]
    assert len(lines) == 4 and "twitter  @user1: @British_Airways BA lost our" in lines[0]
    missing = runner.invoke(cli, ["stories", "--archive", archive_url, "--show", "999"])
    assert missing.exit_code == 1
    assert missing.output.strip().splitlines()[-1].startswith("uproar: error: no story #999")


def test_cli_stories_help_has_an_example() -> None:
    result = CliRunner().invoke(cli, ["stories", "--help"])
    assert result.exit_code == 0 and "Example" in result.output


# -- merging ------------------------------------------------------------------------------------


def _unit(*parts: float) -> Any:
    import numpy as np

    vec = np.zeros(8)
    vec[: len(parts)] = parts
    return vec / np.linalg.norm(vec)


def _two_stories_then_a_bridge(tracker: StoryTracker) -> tuple[Any, Any, list[Any]]:
    """Story A (direction e1), story B (e2), then posts about both, which join A until A's
    centroid comes close enough to B's: the two are one story."""
    assigned = []
    for i in range(3):
        at = T0 + timedelta(minutes=i)
        assigned.append(tracker.assign("acme", "Acme", f"a{i}", example(i, f"a{i}", at), at,
                                       _unit(1.0)))
    for i in range(3, 6):
        at = T0 + timedelta(minutes=i)
        assigned.append(tracker.assign("acme", "Acme", f"b{i}", example(i, f"b{i}", at), at,
                                       _unit(0.0, 1.0)))
    a, b = assigned[0].story, assigned[3].story
    for i in range(6, 16):
        at = T0 + timedelta(minutes=i)
        assigned.append(tracker.assign("acme", "Acme", f"both{i}", example(i, f"both{i}", at),
                                       at, _unit(1.0, 1.0)))
    return a, b, assigned


def test_two_open_stories_that_turn_out_to_be_one_merge() -> None:
    tracker = StoryTracker(StorySettings())
    a, b, assigned = _two_stories_then_a_bridge(tracker)
    assert a is not b and assigned[3].opened  # B began apart: orthogonal to A
    merges = [x for x in assigned if x.merged]
    assert len(merges) == 1 and merges[0].merged == (b,) and merges[0].story is a
    assert b.merged_into is a and b.survivor() is a and a.absorbed == [b]
    assert a.count == 16 and a.first_seen == T0  # counts and history combined
    assert a.seed is not None and a.seed.source_id == "0"  # the older story's seed survives
    assert [s for s in tracker.open_stories("acme", T0 + timedelta(minutes=16))] == [a]
    later = tracker.assign("acme", "Acme", "b again", example(99, "b", T0), T0 + timedelta(
        minutes=17), _unit(0.0, 1.0))
    assert later.story is a  # B's kind of post now joins the merged story


def test_a_merged_story_resolves_to_its_survivor_in_the_archive_and_cli(
    tmp_path: Path,
) -> None:
    from monitor.detect import story_store
    from monitor.serve.reads import get_story, list_stories

    url = f"sqlite:///{tmp_path / 'stories.db'}"
    tracker = StoryTracker(StorySettings())
    with Archive(url) as archive:
        with archive.engine.begin() as conn:
            for i in range(3):
                at = T0 + timedelta(minutes=i)
                tracker.assign("acme", "Acme", "a", example(i, "a", at), at, _unit(1.0))
            for i in range(3, 6):
                at = T0 + timedelta(minutes=i)
                tracker.assign("acme", "Acme", "b", example(i, "b", at), at, _unit(0.0, 1.0))
            story_store.save(conn, tracker.take_dirty(), [], T0)
        ids = sorted(s.id for s in tracker.all_open())
        assert len(ids) == 2
        with archive.engine.begin() as conn:
            for i in range(6, 16):
                at = T0 + timedelta(minutes=i)
                tracker.assign("acme", "Acme", "ab", example(i, "ab", at), at, _unit(1.0, 1.0))
            story_store.save(conn, tracker.take_dirty(), [], T0)
        with archive.engine.connect() as conn:
            merged = conn.execute(select(stories.c.id, stories.c.merged_into)).all()
            assert sorted(merged) == [(ids[0], None), (ids[1], ids[0])]
            found = get_story(conn, ids[1])
            assert found is not None and found["id"] == ids[0] and found["merged_from"] == ids[1]
            listed = list_stories(conn, brand=None, since=None, until=None, offset=0, limit=10)
            assert [s["id"] for s in listed] == [ids[0]]
    result = CliRunner().invoke(cli, ["stories", "--archive", url, "--show", str(ids[1])])
    assert result.exit_code == 0, result.output
    assert f"story #{ids[1]} was merged into story #{ids[0]}" in result.output
    assert "16 complaints" in result.output
