"""Acknowledge, Resolve and Silence 1h buttons over Socket Mode: the real slack-sdk
SocketModeClient (websocket-client) against a fake Socket Mode websocket server on 127.0.0.1,
with ``apps.connections.open`` answered by the fake Slack Web API."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from monitor.alerts import Dispatcher, IncidentBook, SlackSender
from monitor.alerts.interactive import SlackButtons
from monitor.alerts.rules import Router
from monitor.alerts.setup import build_alert_loop
from monitor.archive import Archive, schema
from monitor.clock import SimulatedClock
from tests.alerts.test_alerts import all_texts, signal
from tests.alerts.test_escalation import T0, Rig, alerts_config, escalations, run_stamped
from tests.fakes import slack as fakeslack
from tests.fakes.slack import FakeSlack
from tests.fakes.socketmode import FakeSocketMode

fake_slack = fakeslack.fake_slack


@pytest.fixture
def rig(tmp_path: Any, fake_slack: FakeSlack) -> Iterator[Rig]:
    config = alerts_config()
    archive = Archive(f"sqlite:///{tmp_path / 'uproar.db'}")
    clock = SimulatedClock(T0)
    sender = SlackSender(fake_slack.token, "#brand-alerts", fake_slack.url, buttons=True)
    book = IncidentBook(archive.engine, clock, router=Router(config, "#brand-alerts"))
    dispatcher = Dispatcher(archive.engine, sender, clock, charts=False)
    yield Rig(archive, book, build_alert_loop(config, book, dispatcher, sender), clock)
    archive.close()


@pytest.fixture
def socket(fake_slack: FakeSlack) -> Iterator[FakeSocketMode]:
    with FakeSocketMode(fake_slack) as server:
        yield server


@pytest.fixture
def buttons(rig: Rig, fake_slack: FakeSlack, socket: FakeSocketMode) -> Iterator[SlackButtons]:
    listener = SlackButtons(fake_slack.app_token, fake_slack.token, fake_slack.url, rig.book)
    assert listener.start()
    assert socket.wait_connected()
    yield listener
    listener.stop()


def button_labels(message: dict[str, Any]) -> list[str]:
    return [
        element["text"]["text"]
        for block in message["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def test_acknowledge_button_stops_escalation_and_updates_the_alert(
    rig: Rig, fake_slack: FakeSlack, socket: FakeSocketMode, buttons: SlackButtons
) -> None:
    recorded = rig.book.record(signal(T0))
    run_stamped(rig, fake_slack, T0 + timedelta(minutes=16))
    parent = fake_slack.messages[0]
    assert button_labels(parent) == ["Acknowledge", "Resolve", "Silence 1h"]
    [actions] = [b for b in parent["blocks"] if b["type"] == "actions"]
    assert {e["value"] for e in actions["elements"]} == {str(recorded.incident_id)}
    assert [m["minute"] for m in escalations(fake_slack)] == [15]

    envelope = socket.click("uproar_ack", str(recorded.incident_id), user="U0DAVE",
                            message_ts=parent["ts"])
    assert socket.wait_acked(envelope)  # acknowledged to Slack after it was applied
    run_stamped(rig, fake_slack, T0 + timedelta(minutes=90))

    assert [m["minute"] for m in escalations(fake_slack)] == [15]  # level 3 never came
    shown = " ".join(all_texts(parent["blocks"]))
    assert "acknowledged by <@U0DAVE> at 03:16 UTC" in shown
    assert button_labels(parent) == ["Resolve", "Silence 1h"]
    replies = [" ".join(all_texts(m["blocks"])) for m in fake_slack.thread(parent["ts"])]
    assert any("Acknowledged by *<@U0DAVE>*" in r for r in replies)

    envelope = socket.click("uproar_resolve", str(recorded.incident_id), user="U0DANA")
    assert socket.wait_acked(envelope)
    run_stamped(rig, fake_slack, T0 + timedelta(minutes=92))
    assert "complaints spike resolved" in parent["blocks"][0]["text"]["text"]
    assert button_labels(parent) == []


def test_silence_button_mutes_the_brand_for_an_hour(
    rig: Rig, fake_slack: FakeSlack, socket: FakeSocketMode, buttons: SlackButtons
) -> None:
    recorded = rig.book.record(signal(T0))
    run_stamped(rig, fake_slack, T0 + timedelta(minutes=2))
    envelope = socket.click("uproar_silence_1h", str(recorded.incident_id), user="U0DAVE")
    assert socket.wait_acked(envelope)
    run_stamped(rig, fake_slack, T0 + timedelta(minutes=60))
    assert escalations(fake_slack) == []
    parent = fake_slack.messages[0]
    replies = [" ".join(all_texts(m["blocks"])) for m in fake_slack.thread(parent["ts"])]
    assert any("<@U0DAVE>* silenced United Airlines alerts for 60 min" in r for r in replies)
    with rig.engine.connect() as conn:
        silence = conn.execute(select(schema.silences)).mappings().one()
    assert silence["matchers"] == {"brand": ["united"]} and silence["created_by"] == "U0DAVE"
    rig.book.resolve(recorded.incident_id, "U0DAVE")
    assert rig.book.record(signal(rig.clock.now(), count=90)).outbox_id is None  # silenced
    rig.clock.advance(timedelta(hours=1))
    assert rig.book.record(signal(rig.clock.now(), count=95)).kind == "open"


def test_forged_or_foreign_clicks_change_nothing(
    rig: Rig, fake_slack: FakeSlack, socket: FakeSocketMode, buttons: SlackButtons
) -> None:
    recorded = rig.book.record(signal(T0))
    incident = str(recorded.incident_id)
    for action, value, user in [
        ("uproar_ack", f"{incident}; DROP TABLE incidents", "U0DAVE"),
        ("uproar_ack", incident, "<!channel>"),
        ("somebody_elses_button", incident, "U0DAVE"),
        ("uproar_ack", "999", "U0DAVE"),  # no such incident
    ]:
        assert socket.wait_acked(socket.click(action, value, user=user))
    with rig.engine.connect() as conn:
        status = conn.execute(select(schema.incidents.c.status)).scalar_one()
    assert status == "open"


def test_a_bad_app_token_leaves_buttons_off_and_says_why(
    rig: Rig, fake_slack: FakeSlack, socket: FakeSocketMode, caplog: pytest.LogCaptureFixture
) -> None:
    listener = SlackButtons("xapp-wrong", fake_slack.token, fake_slack.url, rig.book)
    with caplog.at_level(logging.ERROR):
        assert not listener.start()
    assert "Socket Mode did not connect" in caplog.text and "invalid_auth" in caplog.text
    assert fake_slack.calls("apps.connections.open")[0].token == "xapp-wrong"
