"""Durable delivery against the fake Slack on 127.0.0.1: at most one message per second per
channel (on the injected clock), and a post whose answer was lost (a timeout, a crash between
the send and the commit) is found in the channel's history instead of being posted twice."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from monitor.alerts import Dispatcher, IncidentBook, SlackSender
from monitor.archive import schema
from tests.alerts.test_alerts import T0, clock, db_url, engine, incident, outbox_rows, signal
from tests.fakes import slack as fakeslack
from tests.fakes.slack import CHANNEL_ID, FakeSlack

fake_slack = fakeslack.fake_slack
__all__ = ["clock", "db_url", "engine"]  # fixtures shared with test_alerts


def sender(fake: FakeSlack, timeout: float = 5) -> SlackSender:
    return SlackSender(fake.token, "#brand-alerts", fake.url, timeout=timeout)


def post_times(fake: FakeSlack) -> list[float]:
    return [m["at"] for m in fake.messages]


def test_at_most_one_message_per_second_per_channel(engine, clock, fake_slack: FakeSlack):
    book = IncidentBook(engine, clock)
    for brand in ("united", "acme", "globex", "initech"):
        book.record(signal(T0, brand=brand, brand_name=brand.title()))
    dispatcher = Dispatcher(engine, sender(fake_slack), clock, charts=False,
                            channel_interval=timedelta(seconds=1))
    for _ in range(40):  # the daemon's loop, every quarter second
        dispatcher.deliver_due()
        for message in fake_slack.messages:
            message.setdefault("at", (clock.now() - T0).total_seconds())
        clock.advance(timedelta(milliseconds=250))
    assert post_times(fake_slack) == [0.0, 1.0, 2.0, 3.0]
    assert all(row["attempts"] == 1 for row in outbox_rows(engine))  # waiting is no attempt


def test_a_post_that_timed_out_is_not_posted_again(engine, clock, fake_slack: FakeSlack):
    book = IncidentBook(engine, clock)
    first = book.record(signal(T0))
    dispatcher = Dispatcher(engine, sender(fake_slack, timeout=0.5), clock, charts=False)
    fake_slack.slow_next(method="chat.postMessage")  # Slack posts it; the answer never comes

    report = dispatcher.deliver_due()
    assert report.retried == 1
    assert len(fake_slack.messages) == 1  # it is in the channel all the same
    [row] = outbox_rows(engine)
    assert "maybe posted" in row["last_error"]

    clock.advance(timedelta(seconds=30))
    assert dispatcher.deliver_due().sent == 1
    assert len(fake_slack.calls("chat.postMessage")) == 1  # looked up, not reposted
    assert fake_slack.calls("conversations.history")[0].body["include_all_metadata"] in (
        True, "true", "1")
    posted = fake_slack.messages[0]
    assert incident(engine, first.incident_id)["slack_ts"] == posted["ts"]

    clock.advance(timedelta(minutes=30))
    book.record(signal(clock.now(), count=100))  # the next reply lands in that thread
    dispatcher.deliver_due()
    assert [m["thread_ts"] for m in fake_slack.messages[1:]] == [posted["ts"]]


def test_a_thread_reply_that_timed_out_is_not_posted_again(engine, clock, fake_slack):
    book = IncidentBook(engine, clock)
    book.record(signal(T0))
    dispatcher = Dispatcher(engine, sender(fake_slack, timeout=0.5), clock, charts=False)
    dispatcher.deliver_due()
    clock.advance(timedelta(minutes=20))
    book.record(signal(clock.now(), count=120, severity="critical"))
    fake_slack.slow_next(method="chat.postMessage")
    assert dispatcher.deliver_due().retried == 1
    clock.advance(timedelta(seconds=30))
    assert dispatcher.deliver_due().sent == 1
    parent = fake_slack.messages[0]
    assert len(fake_slack.thread(parent["ts"])) == 1
    assert fake_slack.calls("conversations.replies")[0].body["ts"] == parent["ts"]


def test_a_crash_between_the_post_and_its_commit_is_reconciled(engine, clock, fake_slack):
    book = IncidentBook(engine, clock)
    recorded = book.record(signal(T0))
    slack = sender(fake_slack)
    # What a process does before it dies: the attempt is counted, then the post goes out ...
    [row] = outbox_rows(engine)
    with engine.begin() as conn:
        conn.execute(
            schema.outbox.update()
            .where(schema.outbox.c.id == row["id"])
            .values(attempts=1, last_error="sending (maybe posted)")
        )
    slack.post({**row["payload"], "outbox_id": row["id"]})
    # ... and the commit never happens. The next process delivers the row:
    restarted = Dispatcher(engine, sender(fake_slack), clock, charts=False)
    assert restarted.deliver_due().sent == 1
    assert len(fake_slack.calls("chat.postMessage")) == 1
    assert incident(engine, recorded.incident_id)["slack_channel"] == CHANNEL_ID


def test_without_history_access_it_still_delivers(engine, clock, fake_slack: FakeSlack):
    book = IncidentBook(engine, clock)
    book.record(signal(T0))
    dispatcher = Dispatcher(engine, sender(fake_slack), clock, charts=False)
    fake_slack.fail_next(status=502, method="chat.postMessage")
    dispatcher.deliver_due()
    fake_slack.error_next("missing_scope", method="conversations.list")
    clock.advance(timedelta(seconds=30))
    assert dispatcher.deliver_due().sent == 1  # a possible duplicate beats a lost alert
    assert len(fake_slack.messages) == 1


def test_each_post_carries_its_outbox_id_as_metadata(engine, clock, fake_slack: FakeSlack):
    IncidentBook(engine, clock).record(signal(T0))
    Dispatcher(engine, sender(fake_slack), clock, charts=False).deliver_due()
    [call] = fake_slack.calls("chat.postMessage")
    metadata: dict[str, Any] = call.body["metadata"]
    with engine.connect() as conn:
        outbox_id = conn.execute(select(schema.outbox.c.id)).scalar_one()
    assert metadata == {"event_type": "uproar_alert", "event_payload": {"outbox_id": outbox_id}}
