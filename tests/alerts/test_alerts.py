"""Alerts end to end: signals -> incidents -> outbox -> the fake Slack Web API (or the console)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy import Engine, create_engine, select

from monitor.alerts import ConsoleSender, Dispatcher, IncidentBook, SlackSender
from monitor.alerts.render import MAX_BLOCKS, MAX_HEADER_TEXT, MAX_SECTION_TEXT, render_parent
from monitor.archive import schema
from monitor.clock import SimulatedClock
from monitor.signals import Example, Signal
from tests.fakes import slack as fakeslack
from tests.fakes.slack import CHANNEL_ID, FakeSlack

# The fixture, imported explicitly: the shared conftest is the lead's.
fake_slack = fakeslack.fake_slack

T0 = datetime(2009, 7, 7, 3, 0, tzinfo=UTC)


def example(text: str = "United broke my guitar and won't pay", **overrides: Any) -> Example:
    values: dict[str, Any] = {
        "source": "twitter",
        "source_id": "1",
        "url": "https://twitter.com/sonsofmaxwell/status/1",
        "text": text,
        "author_handle": "sonsofmaxwell",
        "author_followers": 12000,
        "reach": 500,
        "created_at": T0,
    }
    values.update(overrides)
    return Example(**values)


def signal(
    at: datetime = T0,
    *,
    count: int = 40,
    severity: str = "warning",
    brand: str = "united",
    brand_name: str = "United Airlines",
    examples: tuple[Example, ...] | None = None,
    reasons: tuple[str, ...] = ("40 complaints in 60 min, 8x the usual",),
) -> Signal:
    return Signal(
        brand=brand,
        brand_name=brand_name,
        kind="complaint_volume",
        severity=severity,  # type: ignore[arg-type]
        at=at,
        window=timedelta(hours=1),
        count=count,
        expected=5.0,
        spread=2.0,
        score=8.0,
        reasons=reasons,
        examples=(example(),) if examples is None else examples,
    )


@pytest.fixture
def db_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path / 'uproar.db'}"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_engine(db_url)
    schema.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(T0)


def sender_for(fake: FakeSlack, *, token: str | None = None, timeout: float = 5) -> SlackSender:
    return SlackSender(token or fake.token, "#brand-alerts", fake.url, timeout=timeout)


def ok_posts(fake: FakeSlack) -> list[Any]:
    return [c for c in fake.calls("chat.postMessage") if c.ok]


def outbox_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(schema.outbox).order_by(schema.outbox.c.id)).mappings())


def incident(engine: Engine, incident_id: int) -> Any:
    t = schema.incidents
    with engine.connect() as conn:
        return conn.execute(select(t).where(t.c.id == incident_id)).mappings().one()


def all_texts(blocks: list[dict[str, Any]]) -> list[str]:
    """Every text string in a list of blocks."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks)
    return found


# -- one story, one thread -------------------------------------------------------------------------


def test_signal_becomes_one_incident_and_one_slack_message(engine, clock, fake_slack):
    book = IncidentBook(engine, clock)
    recorded = book.record(signal())
    assert recorded.opened and recorded.kind == "open"
    assert len(outbox_rows(engine)) == 1

    dispatcher = Dispatcher(engine, sender_for(fake_slack), clock)
    report = dispatcher.deliver_due()
    assert (report.sent, report.retried, report.failed) == (1, 0, 0)

    [call] = fake_slack.calls("chat.postMessage")
    assert call.token == fake_slack.token
    assert call.body["channel"] == "#brand-alerts"
    assert call.body["unfurl_links"] is False and call.body["unfurl_media"] is False
    assert "thread_ts" not in call.body
    blocks = call.body["blocks"]
    assert blocks[0]["type"] == "header"
    assert "United Airlines" in blocks[0]["text"]["text"]
    assert "United Airlines" in call.body["text"] and "40 complaints" in call.body["text"]
    texts = "\n".join(all_texts(blocks))
    assert "United broke my guitar" in texts
    assert "12,000 followers" in texts
    assert "<https://twitter.com/sonsofmaxwell/status/1|twitter post>" in texts
    assert f"Incident #{recorded.incident_id}" in texts

    row = incident(engine, recorded.incident_id)
    assert row["slack_ts"] == call.response["ts"]
    assert row["slack_channel"] == CHANNEL_ID
    [outbox] = outbox_rows(engine)
    assert outbox["sent_at"] is not None and outbox["message_ts"] == row["slack_ts"]
    assert not dispatcher.has_pending()
    assert dispatcher.deliver_due().sent == 0
    assert len(fake_slack.calls("chat.postMessage")) == 1


def test_second_signal_in_window_replies_in_thread_and_updates_parent(engine, clock, fake_slack):
    book = IncidentBook(engine, clock)
    dispatcher = Dispatcher(engine, sender_for(fake_slack), clock)
    first = book.record(signal())
    dispatcher.deliver_due()

    clock.advance(timedelta(minutes=20))
    second = book.record(signal(clock.now(), count=120, severity="critical"))
    assert second.incident_id == first.incident_id
    assert not second.opened and second.kind == "update"
    report = dispatcher.deliver_due()
    assert report.sent == 1

    parent_ts = incident(engine, first.incident_id)["slack_ts"]
    posts = fake_slack.calls("chat.postMessage")
    assert len(posts) == 2
    assert posts[1].body["thread_ts"] == parent_ts
    assert posts[1].body["channel"] == CHANNEL_ID
    assert "120" in posts[1].body["text"]
    assert "warning → critical" in "\n".join(all_texts(posts[1].body["blocks"]))

    [update] = fake_slack.calls("chat.update")
    assert update.ok and update.body["ts"] == parent_ts and update.body["channel"] == CHANNEL_ID
    parent = fake_slack.messages[0]
    assert parent["edits"] == 1
    assert "*120 complaints in the last 60 min" in "\n".join(all_texts(parent["blocks"]))
    assert [m["ts"] for m in fake_slack.thread(parent_ts)] == [posts[1].response["ts"]]
    assert incident(engine, first.incident_id)["severity"] == "critical"
    assert incident(engine, first.incident_id)["peak_count"] == 120


def test_nothing_new_means_no_message(engine, clock):
    book = IncidentBook(engine, clock)
    book.record(signal(count=40))
    clock.advance(timedelta(minutes=10))
    assert book.record(signal(clock.now(), count=40)).outbox_id is None  # same count
    assert book.record(signal(clock.now(), count=30)).outbox_id is None  # lower
    assert book.record(signal(clock.now(), count=44)).outbox_id is None  # small growth, too soon
    clock.advance(timedelta(minutes=25))
    assert book.record(signal(clock.now(), count=44)).kind == "update"  # quiet period over
    assert book.record(signal(clock.now(), count=60)).kind == "update"  # grew fast
    assert book.record(signal(clock.now(), count=60, severity="critical")).kind == "update"
    assert len(outbox_rows(engine)) == 4
    with engine.connect() as conn:
        assert len(conn.execute(select(schema.signals)).all()) == 7


def test_after_join_window_or_resolve_a_new_incident_opens(engine, clock):
    book = IncidentBook(engine, clock, join_window=timedelta(hours=6))
    first = book.record(signal(T0))
    assert book.record(signal(T0 + timedelta(hours=5), count=80)).incident_id == first.incident_id

    late = book.record(signal(T0 + timedelta(hours=11, minutes=1)))
    assert late.opened and late.incident_id != first.incident_id

    assert book.resolve(late.incident_id, "dana")
    assert not book.resolve(late.incident_id, "dana")
    after = book.record(signal(T0 + timedelta(hours=11, minutes=30)))
    assert after.opened and after.incident_id not in (first.incident_id, late.incident_id)

    other = book.record(
        signal(T0 + timedelta(hours=11, minutes=30), brand="acme", brand_name="Acme")
    )
    assert other.opened and other.incident_id != after.incident_id


def test_acknowledge_replies_in_thread_and_refreshes_parent(engine, clock, fake_slack):
    book = IncidentBook(engine, clock)
    dispatcher = Dispatcher(engine, sender_for(fake_slack), clock)
    recorded = book.record(signal())
    dispatcher.deliver_due()
    assert book.acknowledge(recorded.incident_id, "dana")
    assert not book.acknowledge(recorded.incident_id, "dana")
    dispatcher.deliver_due()

    reply = fake_slack.calls("chat.postMessage")[1]
    assert "Acknowledged by *dana*" in reply.body["text"]
    assert "acknowledged by dana" in "\n".join(all_texts(fake_slack.messages[0]["blocks"]))
    # An acknowledged incident still collects its brand's signals.
    clock.advance(timedelta(minutes=5))
    assert book.record(signal(clock.now(), count=100)).incident_id == recorded.incident_id

    assert book.resolve(recorded.incident_id, "dana")
    dispatcher.deliver_due()
    last = fake_slack.calls("chat.postMessage")[-1]
    assert "Resolved by *dana*" in last.body["text"]
    assert last.body["thread_ts"] == fake_slack.messages[0]["ts"]
    assert "resolved" in fake_slack.messages[0]["blocks"][0]["text"]["text"]
    assert len([m for m in fake_slack.messages if "thread_ts" not in m]) == 1


# -- untrusted text --------------------------------------------------------------------------------


def test_untrusted_text_is_escaped_everywhere(engine, clock, fake_slack):
    nasty = "<!channel> wake up <@U123> A&B <https://evil.com|click> *FAKE HEADING* `x` ~y~"
    examples = (
        example(nasty, author_handle="<!here>", url="https://example.com/a|b>c?x=1&y=2"),
        example("second", source_id="2", url="javascript:alert(1)", reach=10),
    )
    book = IncidentBook(engine, clock)
    book.record(
        signal(brand_name="Evil <!channel> & Co", examples=examples, reasons=("<@U999> says hi",))
    )
    Dispatcher(engine, sender_for(fake_slack), clock).deliver_due()

    [call] = fake_slack.calls("chat.postMessage")
    assert call.ok
    texts = [*all_texts(call.body["blocks"]), call.body["text"]]
    joined = "\n".join(texts)
    for raw in (
        "<!channel>",
        "<!here>",
        "<@U123>",
        "<@U999>",
        "<https://evil.com|click>",
        "*FAKE HEADING*",
    ):
        assert raw not in joined
    assert "&lt;!channel&gt; wake up &lt;@U123&gt; A&amp;B &lt;https://evil.com|click&gt;" in joined
    assert "&lt;!here&gt;" in joined
    assert "Evil &lt;!channel&gt; &amp; Co" in call.body["blocks"][0]["text"]["text"]
    assert "Evil &lt;!channel&gt; &amp; Co" in call.body["text"]
    # The only links are ours, to http(s) URLs, with | and > percent-encoded.
    links = [m for text in texts for m in re.findall(r"<[^>]*>", text)]
    assert links == ["<https://example.com/a%7Cb%3Ec?x=1&amp;y=2|twitter post>"]
    assert "javascript:" not in joined


def test_block_kit_limits_with_a_huge_post_and_many_examples(engine, clock, fake_slack):
    huge = "&<" * 6000  # escapes grow it five-fold
    examples = tuple(
        example(huge if i == 0 else f"post {i}", source_id=str(i), reach=1000 - i)
        for i in range(100)
    )
    long_name = "United " * 60
    sig = signal(
        brand_name=long_name, examples=examples, reasons=tuple("x" * 400 for _ in range(40))
    )
    book = IncidentBook(engine, clock)
    recorded = book.record(sig)

    [row] = outbox_rows(engine)
    message = render_parent(row["payload"], max_examples=100)
    assert len(message.blocks) <= MAX_BLOCKS
    assert message.blocks[-1]["type"] == "context"
    header = message.blocks[0]["text"]["text"]
    assert len(header) <= MAX_HEADER_TEXT and header.endswith("…")
    for block in message.blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= MAX_SECTION_TEXT
    quote = message.blocks[3]["text"]["text"]
    assert "…" in quote and "&amp;&lt;" in quote and not re.search(r"&[a-z]*…", quote)

    report = Dispatcher(engine, sender_for(fake_slack), clock).deliver_due()
    assert report.sent == 1, report  # the fake refuses what real Slack would (invalid_blocks)
    assert incident(engine, recorded.incident_id)["slack_ts"]


# -- failures and retries --------------------------------------------------------------------------


def test_server_error_then_success_is_delivered_once_after_backoff(engine, clock, fake_slack):
    IncidentBook(engine, clock).record(signal())
    dispatcher = Dispatcher(engine, sender_for(fake_slack), clock)
    fake_slack.fail_next(status=500)

    report = dispatcher.deliver_due()
    assert (report.sent, report.retried, report.failed) == (0, 1, 0)
    [row] = outbox_rows(engine)
    assert row["attempts"] == 1 and "will retry" in row["last_error"]
    assert row["next_attempt_at"].replace(tzinfo=UTC) == T0 + timedelta(seconds=30)

    assert dispatcher.deliver_due().sent == 0  # not due yet: no request
    assert len(fake_slack.calls("chat.postMessage")) == 1
    clock.advance(timedelta(seconds=30))
    assert dispatcher.deliver_due().sent == 1
    assert len(fake_slack.calls("chat.postMessage")) == 2
    assert len(fake_slack.messages) == 1
    assert not dispatcher.has_pending()


def test_rate_limit_retry_after_is_honoured(engine, clock, fake_slack):
    IncidentBook(engine, clock).record(signal())
    dispatcher = Dispatcher(engine, sender_for(fake_slack), clock)
    fake_slack.rate_limit_next(retry_after=120)

    assert dispatcher.deliver_due().retried == 1
    assert dispatcher.next_due() == T0 + timedelta(seconds=120)
    clock.advance(timedelta(seconds=119))
    assert dispatcher.deliver_due().sent == 0
    assert len(fake_slack.calls("chat.postMessage")) == 1
    clock.advance(timedelta(seconds=1))
    assert dispatcher.deliver_due().sent == 1
    assert len(ok_posts(fake_slack)) == 1


def test_invalid_token_fails_with_one_line_reason_and_is_not_retried(engine, clock, fake_slack):
    IncidentBook(engine, clock).record(signal())
    dispatcher = Dispatcher(engine, sender_for(fake_slack, token="xoxb-wrong"), clock)

    report = dispatcher.deliver_due()
    assert (report.sent, report.retried, report.failed) == (0, 0, 1)
    [failure] = report.failures
    assert "invalid_auth" in failure.error and "alerts.slack.token" in failure.error
    assert "\n" not in failure.error
    [row] = outbox_rows(engine)
    assert row["failed_at"] is not None and row["last_error"] == failure.error
    assert not dispatcher.has_pending()
    clock.advance(timedelta(hours=2))
    assert dispatcher.drain(advance_clock=True).sent == 0
    assert len(fake_slack.calls("chat.postMessage")) == 1


def test_not_in_channel_says_how_to_fix_it(engine, clock, fake_slack):
    IncidentBook(engine, clock).record(signal())
    fake_slack.error_next("not_in_channel")
    report = Dispatcher(engine, sender_for(fake_slack), clock).deliver_due()
    [failure] = report.failures
    assert "/invite @uproar" in failure.error and "#brand-alerts" in failure.error


def test_gives_up_after_max_attempts(engine, clock, fake_slack):
    IncidentBook(engine, clock).record(signal())
    fake_slack.fail_next(10, status=503, method="chat.postMessage")
    dispatcher = Dispatcher(engine, sender_for(fake_slack), clock, max_attempts=3)
    report = dispatcher.drain(advance_clock=True)
    assert (report.sent, report.retried, report.failed) == (0, 2, 1)
    assert "gave up after 3 attempts" in report.failures[0].error
    assert clock.now() == T0 + timedelta(seconds=30 + 60)  # 30s, then doubled
    assert len(fake_slack.calls("chat.postMessage")) == 3


def test_network_failures_are_retryable(engine, clock, fake_slack):
    IncidentBook(engine, clock).record(signal())
    dispatcher = Dispatcher(engine, sender_for(fake_slack, timeout=0.2), clock)
    fake_slack.drop_next()
    assert dispatcher.deliver_due().retried == 1
    clock.advance(timedelta(seconds=30))
    fake_slack.hang_next()  # past the client's 0.2 s timeout
    assert dispatcher.deliver_due().retried == 1
    assert "unreachable" in outbox_rows(engine)[0]["last_error"]
    assert dispatcher.drain(advance_clock=True).sent == 1
    assert len(fake_slack.messages) == 1


def test_reply_waits_for_its_parent(engine, clock, fake_slack):
    book = IncidentBook(engine, clock)
    dispatcher = Dispatcher(engine, sender_for(fake_slack), clock)
    book.record(signal())
    fake_slack.fail_next()
    assert dispatcher.deliver_due().retried == 1
    clock.advance(timedelta(seconds=40))
    book.record(signal(clock.now(), count=200, severity="critical"))
    # The parent is due again and goes first, then the reply in its thread.
    assert dispatcher.deliver_due().sent == 2
    parent, reply = ok_posts(fake_slack)
    assert "thread_ts" not in parent.body and reply.body["thread_ts"] == parent.response["ts"]


def test_reply_becomes_parent_when_the_parent_failed_for_good(engine, clock, fake_slack):
    book = IncidentBook(engine, clock)
    dispatcher = Dispatcher(engine, sender_for(fake_slack), clock)
    first = book.record(signal())
    fake_slack.error_next("channel_not_found")
    assert dispatcher.deliver_due().failed == 1
    clock.advance(timedelta(minutes=40))
    book.record(signal(clock.now(), count=90, severity="critical"))
    assert dispatcher.deliver_due().sent == 1
    [post] = ok_posts(fake_slack)
    assert "thread_ts" not in post.body and post.body["blocks"][0]["type"] == "header"
    assert incident(engine, first.incident_id)["slack_ts"] == post.response["ts"]


def test_restart_neither_resends_nor_loses_alerts(db_url, engine, clock, fake_slack):
    book = IncidentBook(engine, clock)
    dispatcher = Dispatcher(engine, sender_for(fake_slack), clock)
    delivered = book.record(signal())
    dispatcher.deliver_due()
    book.record(signal(brand="acme", brand_name="Acme"))
    fake_slack.fail_next()
    assert dispatcher.deliver_due().retried == 1
    engine.dispose()

    # A new process: new engine, book and dispatcher on the same file.
    clock.advance(timedelta(minutes=5))
    engine2 = create_engine(db_url)
    try:
        book2 = IncidentBook(engine2, clock)
        dispatcher2 = Dispatcher(engine2, sender_for(fake_slack), clock)
        assert dispatcher2.pending_count() == 1
        assert dispatcher2.deliver_due().sent == 1
        posts = ok_posts(fake_slack)
        assert len(posts) == 2 and "Acme" in posts[1].body["text"]
        # The open incident is remembered: a new signal replies in its thread.
        joined = book2.record(signal(clock.now(), count=100, severity="critical"))
        assert joined.incident_id == delivered.incident_id and joined.kind == "update"
        assert dispatcher2.deliver_due().sent == 1
        assert ok_posts(fake_slack)[-1].body["thread_ts"] == posts[0].response["ts"]
        assert dispatcher2.deliver_due().sent == 0
        assert len(fake_slack.messages) == 3
    finally:
        engine2.dispose()


def test_drain_delivers_everything_on_a_simulated_clock(engine, clock, fake_slack):
    book = IncidentBook(engine, clock)
    for brand in ("united", "acme", "globex"):
        book.record(signal(brand=brand, brand_name=brand.title()))
    fake_slack.fail_next(2)
    fake_slack.rate_limit_next(retry_after=5)
    dispatcher = Dispatcher(engine, sender_for(fake_slack), clock)
    report = dispatcher.drain(advance_clock=True)
    assert report.sent == 3 and report.failed == 0
    assert not dispatcher.has_pending()
    assert [json.dumps(m["text"]).count("#") for m in fake_slack.messages] == [1, 1, 1]


# -- console and the fake itself -------------------------------------------------------------------


def test_console_sender_prints_a_readable_alert(engine, clock):
    out = io.StringIO()
    book = IncidentBook(engine, clock, target="console")
    dispatcher = Dispatcher(engine, ConsoleSender(out), clock)
    recorded = book.record(signal(examples=(example("bad\x1b[31m service\nreally"),)))
    assert dispatcher.deliver_due().sent == 1
    text = out.getvalue()
    assert (
        f"[WARNING] United Airlines: complaints spiking (incident #{recorded.incident_id}, open)"
        in text
    )
    assert "40 complaints in the last 60 min" in text
    assert '"bad [31m service really" — @sonsofmaxwell (12,000 followers, reach 12,500)' in text
    assert "https://twitter.com/sonsofmaxwell/status/1" in text
    assert "\x1b" not in text

    clock.advance(timedelta(minutes=10))
    book.record(signal(clock.now(), count=90, severity="critical"))
    dispatcher.deliver_due()
    assert (
        f"[CRITICAL] United Airlines: update on incident #{recorded.incident_id}" in out.getvalue()
    )
    assert incident(engine, recorded.incident_id)["slack_ts"].startswith("console-")


def test_fake_slack_speaks_auth_and_conversations(fake_slack):
    assert sender_for(fake_slack).check() == "uproar"
    client = WebClient(token=fake_slack.token, base_url=fake_slack.url)
    info = client.conversations_info(channel=CHANNEL_ID)
    assert info["channel"]["name"] == "brand-alerts"
    assert fake_slack.calls("conversations.info")[0].body == {"channel": CHANNEL_ID}
    assert [c.method for c in fake_slack.requests] == ["auth.test", "conversations.info"]
