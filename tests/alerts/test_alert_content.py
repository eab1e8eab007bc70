"""What an alert says: the story's seed post first in every version, each text quoted once, one
set of numbers in plain words, and two stories that turn out to be one sharing one thread.

Messages go through the real dispatcher and slack_sdk to the fake Slack Web API.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, select

from monitor.alerts import Dispatcher, IncidentBook, SlackSender
from monitor.alerts.incidents import signal_summary
from monitor.alerts.render import plain_numbers, render_parent, render_slack
from monitor.archive import schema
from monitor.clock import SimulatedClock
from monitor.signals import Example, Signal
from tests.fakes import slack as fakeslack
from tests.fakes.slack import FakeSlack

fake_slack = fakeslack.fake_slack
T0 = datetime(2026, 3, 4, 14, 7, tzinfo=UTC)
SEED_TEXT = ("Larkspur Airways baggage handlers threw my cello across the tarmac in Chicago and "
             "smashed it. #larkspurbrokemycello")
REPOST = "Musicians, do NOT check your instruments with @larkspurair. They smashed this cello"


def post(i: int, text: str, *, followers: int = 500, reach: int = 10,
         at: datetime = T0) -> Example:
    return Example("twitter", str(i), f"https://x.com/u/status/{i}", text, f"user{i}",
                   followers, reach, at)


SEED = Example("reddit", "seed", "https://example.com/reddit/seed", SEED_TEXT, "celloclaire",
               48_000, 1_909, T0)


def story_signal(at: datetime, count: int, *, story_id: int = 1, seed: Example | None = SEED,
                 examples: tuple[Example, ...] = (), title: str = "cello story",
                 severity: str = "warning", reposts: dict[str, int] | None = None) -> Signal:
    from monitor.detect.stories import text_key

    facts = {"count": count * 2, "since": T0.isoformat(), "last_hour": count,
             "growth_per_hour": 8.0, "reach": 60_000, "sources": {"twitter": count},
             "seed": seed, "reposts": {text_key(k): v for k, v in (reposts or {}).items()},
             "previous_title": None}
    return Signal(brand="larkspur", brand_name="Larkspur Airways", kind="story_growth",
                  severity=severity,  # type: ignore[arg-type]
                  at=at, window=timedelta(minutes=30), count=count, expected=2.0, spread=0.0,
                  score=8.0, reasons=(f"{count} complaints in 30 min about one story",),
                  examples=examples, story_id=story_id, story_title=title, story_facts=facts)


@pytest.fixture
def engine(tmp_path: Any) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'uproar.db'}")
    schema.metadata.create_all(engine)
    yield engine
    engine.dispose()


def texts(blocks: list[dict[str, Any]]) -> str:
    out: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if k == "text" and isinstance(v, str):
                    out.append(v)
                else:
                    walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(blocks)
    return "\n".join(out)


def quoted(blocks: list[dict[str, Any]]) -> list[str]:
    """The quoted posts of a message, in order (their first line)."""
    return [b["text"]["text"].split("\n", 1)[0].lstrip(">")
            for b in blocks if b.get("type") == "section" and b["text"]["text"].startswith(">")]


def test_the_seed_post_is_first_in_every_version_of_the_parent(engine: Engine,
                                                              fake_slack: FakeSlack) -> None:
    clock = SimulatedClock(T0 + timedelta(minutes=30))
    book = IncidentBook(engine, clock)
    sender = SlackSender(fake_slack.token, "#brand-alerts", fake_slack.url, timeout=5)
    dispatcher = Dispatcher(engine, sender, clock)
    crowd = tuple(post(i, f"cello complaint number {i}, shameful", reach=5_000 - i)
                  for i in range(6))
    book.record(story_signal(clock.now(), 12, examples=crowd))
    dispatcher.deliver_due()
    for minutes, count in ((20, 30), (40, 60)):
        clock.advance(timedelta(minutes=minutes))
        later = tuple(post(100 + i, f"later reaction {count} {i}: never flying again",
                           reach=90_000) for i in range(6))
        # later signals see the story from its newest posts; the seed is not among them
        book.record(story_signal(clock.now(), count, examples=later, seed=None,
                                 severity="critical" if count >= 60 else "warning"))
        dispatcher.deliver_due()
    parent = fake_slack.messages[0]
    versions = [c.body["blocks"] for c in fake_slack.calls("chat.postMessage")[:1]]
    versions += [c.body["blocks"] for c in fake_slack.calls("chat.update")]
    assert len(versions) >= 3 and parent["edits"] == len(versions) - 1
    for blocks in versions:
        first = quoted(blocks)[0]
        assert first.startswith("Larkspur Airways baggage handlers threw my cello"), first
        assert "First complaint" in texts(blocks) and "@celloclaire" in texts(blocks)
        assert "48,000 followers · reach 49,909" in texts(blocks)  # followers + engagement


def test_reposts_of_one_text_are_quoted_once_and_counted() -> None:
    examples = (
        post(1, REPOST, reach=300), post(2, f"RT @user1: {REPOST}", reach=200),
        post(3, REPOST.upper(), reach=100), post(4, "Cancelled my booking after the cello story"),
    )
    payload = {**signal_summary(story_signal(T0, 19, examples=examples,
                                             reposts={REPOST: 12})),
               "kind": "open", "incident_id": 1, "status": "open"}
    message = render_slack(payload)
    shown = quoted(message.blocks)
    assert [q[:20] for q in shown] == ["Larkspur Airways bag", "Musicians, do NOT ch",
                                       "Cancelled my booking"]
    assert "and 12 reposts" in texts(message.blocks)


def test_the_numbers_read_in_plain_words() -> None:
    payload = {**signal_summary(story_signal(T0, 19)), "kind": "open", "incident_id": 3,
               "status": "open", "signal_count": 4, "peak_count": 19}
    payload["signal_kind"] = "complaint_volume"
    payload["expected"] = 0.7
    assert plain_numbers(payload) == (
        "19 complaints in the last 30 min — usually about 1; doubling every 20 min")
    shown = texts(render_parent(payload).blocks)
    assert "*Severity:* warning — 19× the usual number of complaints, doubling every 20 min" \
        in shown
    for jargon in ("σ", "±", "Signals:", "expected about"):
        assert jargon not in shown
    payload["expected"] = 0.2
    assert plain_numbers(payload).startswith("19 complaints in the last 30 min — usually none")


def test_an_alert_links_to_the_story_on_the_dashboard(engine: Engine) -> None:
    clock = SimulatedClock(T0)
    book = IncidentBook(engine, clock, public_url="https://uproar.example.com/")
    book.record(story_signal(T0, 12, story_id=42))
    with engine.connect() as conn:
        payload = conn.execute(select(schema.outbox.c.payload)).scalar_one()
    shown = texts(render_slack(payload).blocks)
    assert "<https://uproar.example.com/#story/42|Open the story on the dashboard>" in shown
    no_link = IncidentBook(engine, clock)  # serve.public_url unset: no link
    assert no_link.public_url == ""


def test_an_update_says_what_changed_since_the_last_message(engine: Engine,
                                                            fake_slack: FakeSlack) -> None:
    clock = SimulatedClock(T0)
    book = IncidentBook(engine, clock)
    dispatcher = Dispatcher(
        engine, SlackSender(fake_slack.token, "#brand-alerts", fake_slack.url, timeout=5), clock)
    book.record(story_signal(T0, 12, title="cello smashed"))
    dispatcher.deliver_due()
    clock.advance(timedelta(minutes=30))
    book.record(story_signal(clock.now(), 40, title="Larkspur smashed a cellist's cello",
                             severity="critical"))
    dispatcher.deliver_due()
    [reply] = fake_slack.thread(fake_slack.messages[0]["ts"])
    shown = texts(reply["blocks"])
    assert "*Since the last message:* 40 complaints in the last 30 min (was 12 at 14:07 UTC)" \
        in shown
    assert "severity warning → critical" in shown
    assert "now titled “Larkspur smashed a cellist's cello” (was “cello smashed”)" in shown


def test_two_stories_that_turn_out_to_be_one_share_one_thread(engine: Engine,
                                                              fake_slack: FakeSlack) -> None:
    clock = SimulatedClock(T0)
    book = IncidentBook(engine, clock, join_window=timedelta(hours=1))
    dispatcher = Dispatcher(
        engine, SlackSender(fake_slack.token, "#brand-alerts", fake_slack.url, timeout=5), clock)
    first = book.record(story_signal(T0, 12, story_id=7, title="cello smashed"))
    dispatcher.deliver_due()
    clock.advance(timedelta(hours=2))  # beyond the join window: a second incident and thread
    other_seed = replace(SEED, source_id="other", text="Larkspur broke a musician's instrument",
                         created_at=T0 + timedelta(hours=2), author_handle="bystander")
    second = book.record(story_signal(clock.now(), 15, story_id=9, seed=other_seed,
                                      title="instrument broken", severity="critical"))
    dispatcher.deliver_due()
    assert second.incident_id != first.incident_id
    parents = [m for m in fake_slack.messages if not m.get("thread_ts")]
    assert len(parents) == 2

    survivor = book.merge_stories(9, 7)  # story 9 was absorbed into story 7
    dispatcher.deliver_due()
    assert survivor == first.incident_id
    kept, gone = parents
    [gone_reply] = fake_slack.thread(gone["ts"])
    assert f"part of incident #{first.incident_id} “cello smashed”" in texts(gone_reply["blocks"])
    [kept_reply] = fake_slack.thread(kept["ts"])
    assert f"Incident #{second.incident_id} turned out to be this same story" in texts(
        kept_reply["blocks"])
    with engine.connect() as conn:
        rows = {r["id"]: r for r in conn.execute(select(schema.incidents)).mappings()}
        moved = conn.execute(select(schema.signals.c.incident_id)).scalars().all()
    assert rows[second.incident_id]["status"] == "resolved"
    assert rows[first.incident_id]["status"] == "open"
    assert rows[first.incident_id]["severity"] == "critical"  # the combined story's
    assert rows[first.incident_id]["peak_count"] == 15
    assert set(moved) == {first.incident_id}  # both signals are the surviving incident's
    # the surviving parent (refreshed after the reply) still quotes its seed first
    refreshed = fake_slack.messages[0]
    assert quoted(refreshed["blocks"])[0].startswith("Larkspur Airways baggage handlers")
    # a later signal of the merged story joins the surviving incident
    clock.advance(timedelta(minutes=10))
    assert book.record(story_signal(clock.now(), 30, story_id=7)).incident_id == survivor
