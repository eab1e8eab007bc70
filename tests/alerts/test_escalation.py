"""Escalation on the injected clock against the fake Slack Web API on 127.0.0.1: one story is one
thread; unacknowledged it escalates at 15 and 45 minutes (broadcast replies and DMs); a ✅ stops
it; a restart in the middle neither loses nor repeats a level; quiet hours hold a warning only."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from monitor.alerts import Dispatcher, IncidentBook, SlackSender
from monitor.alerts.loop import AlertLoop
from monitor.alerts.rules import Router
from monitor.alerts.setup import build_alert_loop
from monitor.archive import Archive, schema
from monitor.clock import SimulatedClock
from monitor.config import AlertsConfig
from tests.alerts.test_alerts import all_texts, signal
from tests.fakes import slack as fakeslack
from tests.fakes.slack import CHANNEL_ID, FakeSlack
from tests.sourcekit import archive_url

fake_slack = fakeslack.fake_slack
__all__ = ["archive_url", "fake_slack"]  # fixtures

T0 = datetime(2009, 7, 7, 3, 0, tzinfo=UTC)  # 05:00 in Berlin (CEST)

POLICY = {
    "levels": [
        {"mention": ["S0PRTEAM"]},
        {"after": "15m", "mention": ["U0LEAD"]},
        {"after": "45m", "mention": ["U0VP", "here"], "dm": ["U0VP"]},
    ]
}


def alerts_config(**extra: Any) -> AlertsConfig:
    data: dict[str, Any] = {
        "policies": {"pr": POLICY},
        "routes": [{"name": "united", "match": {"brand": "united"}, "policy": "pr"}],
        "reactions_every": "30s",
    }
    data.update(extra)
    return AlertsConfig.model_validate(data)


@dataclass
class Rig:
    """One running process's alerting parts, over one archive."""

    archive: Archive
    book: IncidentBook
    loop: AlertLoop
    clock: SimulatedClock

    @property
    def engine(self) -> Engine:
        return self.archive.engine

    def run_until(self, until: datetime, step: timedelta = timedelta(minutes=1)) -> None:
        """The daemon's delivery loop, one tick per ``step`` of simulated time."""
        while self.clock.now() < until:
            self.loop.tick()
            self.clock.advance(step)
        self.loop.tick()


def start(url: str, slack: FakeSlack, clock: SimulatedClock, config: AlertsConfig) -> Rig:
    archive = Archive(url)
    sender = SlackSender(slack.token, "#brand-alerts", slack.url, timeout=2)
    book = IncidentBook(archive.engine, clock, router=Router(config, "#brand-alerts"))
    dispatcher = Dispatcher(archive.engine, sender, clock, charts=False)
    return Rig(archive, book, build_alert_loop(config, book, dispatcher, sender), clock)


@pytest.fixture
def url(archive_url: str) -> str:
    """SQLite, and PostgreSQL when UPROAR_TEST_POSTGRES_URL is set (tests.sourcekit)."""
    return archive_url


@pytest.fixture
def rig(url: str, fake_slack: FakeSlack) -> Iterator[Rig]:
    rig = start(url, fake_slack, SimulatedClock(T0), alerts_config())
    yield rig
    rig.archive.close()


def posts(slack: FakeSlack) -> list[dict[str, Any]]:
    return [m for m in slack.messages]


def escalations(slack: FakeSlack) -> list[dict[str, Any]]:
    return [m for m in slack.messages if "Still unacknowledged" in " ".join(all_texts(m["blocks"]))]


def minutes_of(slack: FakeSlack, messages: list[dict[str, Any]]) -> list[int]:
    """The simulated minute each message was posted, from the recorded request order."""
    return [m["minute"] for m in messages]


def stamp_minutes(slack: FakeSlack, clock: SimulatedClock) -> None:
    for message in slack.messages:
        message.setdefault("minute", round((clock.now() - T0).total_seconds() / 60))


def run_stamped(rig: Rig, slack: FakeSlack, until: datetime) -> None:
    while rig.clock.now() < until:
        rig.loop.tick()
        stamp_minutes(slack, rig.clock)
        rig.clock.advance(timedelta(minutes=1))
    rig.loop.tick()
    stamp_minutes(slack, rig.clock)


# -- escalation ----------------------------------------------------------------------------------


def test_unacknowledged_alert_escalates_at_15_and_45_minutes(rig: Rig, fake_slack: FakeSlack):
    rig.book.record(signal(T0))
    run_stamped(rig, fake_slack, T0 + timedelta(minutes=70))

    parent, *rest = [m for m in fake_slack.in_channel(CHANNEL_ID) if not m.get("thread_ts")]
    assert rest == []  # one story, one thread
    parent_text = " ".join(all_texts(parent["blocks"]))
    assert "<!subteam^S0PRTEAM>" in parent_text  # level 1 is told with the alert itself
    assert parent["minute"] == 0

    steps = escalations(fake_slack)
    in_thread = [m for m in steps if m.get("thread_ts") == parent["ts"]]
    assert [m["minute"] for m in in_thread] == [15, 45]
    assert all(m.get("reply_broadcast") for m in in_thread)
    assert "<@U0LEAD>" in " ".join(all_texts(in_thread[0]["blocks"]))
    level3 = " ".join(all_texts(in_thread[1]["blocks"]))
    assert "<@U0VP>" in level3 and "<!here>" in level3 and "level 3" in level3

    [dm] = fake_slack.in_channel("D0VP")
    assert dm["minute"] == 45 and "unacknowledged for 45 min" in " ".join(all_texts(dm["blocks"]))
    # The parent shows the escalation state.
    assert "escalated to level 3" in " ".join(all_texts(parent["blocks"]))


def test_check_reaction_acknowledges_and_stops_escalation(rig: Rig, fake_slack: FakeSlack):
    rig.book.record(signal(T0))
    run_stamped(rig, fake_slack, T0 + timedelta(minutes=20))
    parent = fake_slack.messages[0]
    assert [m["minute"] for m in escalations(fake_slack)] == [15]

    fake_slack.react(parent["ts"], "eyes", "U0BYSTANDER")  # not the ack reaction
    fake_slack.react(parent["ts"], "white_check_mark", "U0DAVE")
    run_stamped(rig, fake_slack, T0 + timedelta(minutes=90))

    assert [m["minute"] for m in escalations(fake_slack)] == [15]  # nothing after the ✅
    assert fake_slack.in_channel("D0VP") == []
    replies = [" ".join(all_texts(m["blocks"])) for m in fake_slack.thread(parent["ts"])]
    assert any("Acknowledged by *<@U0DAVE>*" in r for r in replies)
    shown = " ".join(all_texts(parent["blocks"]))
    assert "acknowledged by <@U0DAVE> at 03:21 UTC" in shown
    assert parent["edits"] >= 1
    with rig.engine.connect() as conn:
        row = conn.execute(select(schema.incidents)).mappings().one()
        assert row["status"] == "acknowledged" and row["acknowledged_by"] == "U0DAVE"
        statuses = set(conn.execute(select(schema.escalations.c.status)).scalars())
    assert statuses == {"stopped"}


def test_restart_mid_escalation_loses_and_repeats_nothing(url: str, fake_slack: FakeSlack):
    clock = SimulatedClock(T0)
    first = start(url, fake_slack, clock, alerts_config())
    first.book.record(signal(T0))
    run_stamped(first, fake_slack, T0 + timedelta(minutes=20))
    first.archive.close()  # the process stops at minute 20 ...

    clock.set(T0 + timedelta(minutes=50))  # ... and is back at minute 50
    second = start(url, fake_slack, clock, alerts_config())
    run_stamped(second, fake_slack, T0 + timedelta(minutes=120))
    second.archive.close()

    assert [m["minute"] for m in escalations(fake_slack) if m.get("thread_ts")] == [15, 50]
    assert len([m for m in fake_slack.messages if not m.get("thread_ts")]) == 2  # parent + DM
    assert len(fake_slack.in_channel("D0VP")) == 1


def test_restart_before_a_level_fires_it_on_time(url: str, fake_slack: FakeSlack):
    clock = SimulatedClock(T0)
    first = start(url, fake_slack, clock, alerts_config())
    first.book.record(signal(T0))
    run_stamped(first, fake_slack, T0 + timedelta(minutes=10))
    first.archive.close()
    second = start(url, fake_slack, clock, alerts_config())
    run_stamped(second, fake_slack, T0 + timedelta(minutes=60))
    second.archive.close()
    assert [m["minute"] for m in escalations(fake_slack) if m.get("thread_ts")] == [15, 45]


def test_repeat_loops_through_the_levels_again(url: str, fake_slack: FakeSlack):
    policy = {**POLICY, "repeat": 1, "repeat_interval": "30m"}
    config = alerts_config(policies={"pr": policy})
    rig = start(url, fake_slack, SimulatedClock(T0), config)
    rig.book.record(signal(T0))
    run_stamped(rig, fake_slack, T0 + timedelta(hours=4))
    rig.archive.close()
    # Loop 2 starts 30 min after the last level (45): levels at 75, 90 and 120; then it stops.
    assert [m["minute"] for m in escalations(fake_slack)] == [15, 45, 75, 90, 120]
    assert [m["minute"] for m in fake_slack.in_channel("D0VP")] == [45, 120]


# -- one story over two hours -----------------------------------------------------------------


def test_story_growing_for_two_hours_is_one_thread_through_slack_failures(
    rig: Rig, fake_slack: FakeSlack
):
    plan = {  # minute -> (count, severity)
        0: (40, "warning"),
        10: (42, "warning"),  # not news: no message
        20: (60, "warning"),  # 1.5x: a reply
        40: (130, "critical"),  # more severe: a reply
        70: (140, "critical"),  # quiet period passed and higher: a reply
        110: (90, "critical"),  # lower: nothing
    }
    fake_slack.rate_limit_next(1, retry_after=7, method="chat.postMessage")
    for minute in range(0, 121):
        if minute == 21:
            fake_slack.fail_next(2, status=500, method="chat.postMessage")
        if minute == 40:  # Slack posts the critical update but the answer never arrives
            fake_slack.slow_next(method="chat.postMessage")
        if minute in plan:
            count, severity = plan[minute]
            rig.book.record(signal(rig.clock.now(), count=count, severity=severity))
        rig.loop.tick()
        stamp_minutes(fake_slack, rig.clock)
        rig.clock.advance(timedelta(seconds=30))
        rig.loop.tick()
        stamp_minutes(fake_slack, rig.clock)
        rig.clock.advance(timedelta(seconds=30))

    parents = [m for m in fake_slack.in_channel(CHANNEL_ID) if not m.get("thread_ts")]
    assert len(parents) == 1
    parent = parents[0]
    assert parent["minute"] == 0  # the 429 asked for 7 s: posted on the next tick
    replies = fake_slack.thread(parent["ts"])
    kinds = []
    for reply in replies:
        text = " ".join(all_texts(reply["blocks"]))
        kinds.append("escalation" if "Still unacknowledged" in text else "update")
    assert kinds == ["escalation", "update", "update", "escalation", "update"]
    updates = [r for r in replies if "Update" in " ".join(all_texts(r["blocks"]))]
    assert ["*60 complaints" in r["blocks"][0]["text"]["text"] for r in updates][:1] == [True]
    assert "warning → critical" in " ".join(all_texts(updates[1]["blocks"]))
    # 500s were retried with backoff: the reply of minute 20 arrived, once; the timed-out
    # critical update was found in the thread (conversations.replies), not posted again.
    assert sum("*60 complaints" in " ".join(all_texts(r["blocks"])) for r in replies) == 1
    assert sum("*130 complaints" in " ".join(all_texts(r["blocks"])) for r in replies) == 1
    assert fake_slack.calls("conversations.replies")
    assert "*140 complaints" in " ".join(all_texts(parent["blocks"]))  # the parent shows the peak


def test_resolve_closes_and_a_later_spike_opens_a_new_thread(rig: Rig, fake_slack: FakeSlack):
    first = rig.book.record(signal(T0))
    run_stamped(rig, fake_slack, T0 + timedelta(minutes=5))
    assert rig.book.resolve(first.incident_id, "U0DAVE")
    run_stamped(rig, fake_slack, T0 + timedelta(minutes=60))
    assert escalations(fake_slack) == []  # resolved before 15 minutes: no escalation
    second = rig.book.record(signal(rig.clock.now(), count=50))
    assert second.opened and second.incident_id != first.incident_id
    run_stamped(rig, fake_slack, T0 + timedelta(minutes=80))
    parents = [m for m in fake_slack.in_channel(CHANNEL_ID) if not m.get("thread_ts")]
    assert len(parents) == 2
    assert "resolved" in " ".join(all_texts(parents[0]["blocks"]))
    assert [m["thread_ts"] for m in escalations(fake_slack)] == [parents[1]["ts"]]


# -- quiet hours ---------------------------------------------------------------------------------


QUIET = {"start": "22:00", "end": "07:00", "timezone": "Europe/Berlin"}


def quiet_config() -> AlertsConfig:
    return alerts_config(
        routes=[{"match": {"brand": "united"}, "policy": "pr", "quiet_hours": QUIET}]
    )


def test_quiet_hours_hold_back_a_warning_until_morning(url: str, fake_slack: FakeSlack):
    rig = start(url, fake_slack, SimulatedClock(T0), quiet_config())  # 05:00 in Berlin
    rig.book.record(signal(T0, severity="warning"))
    run_stamped(rig, fake_slack, T0 + timedelta(hours=3))
    rig.archive.close()
    parent = fake_slack.messages[0]
    assert parent["minute"] == 120  # 07:00 Berlin = 05:00 UTC
    # Escalation counts from when the alert was posted, not from when it was held back.
    assert [m["minute"] for m in escalations(fake_slack)] == [135, 165]


def test_quiet_hours_never_hold_a_critical(url: str, fake_slack: FakeSlack):
    rig = start(url, fake_slack, SimulatedClock(T0), quiet_config())
    rig.book.record(signal(T0, severity="critical"))
    run_stamped(rig, fake_slack, T0 + timedelta(minutes=20))
    rig.archive.close()
    assert fake_slack.messages[0]["minute"] == 0
    assert [m["minute"] for m in escalations(fake_slack)] == [15]


def test_a_held_warning_that_turns_critical_goes_out_at_once(url: str, fake_slack: FakeSlack):
    rig = start(url, fake_slack, SimulatedClock(T0), quiet_config())
    rig.book.record(signal(T0, severity="warning"))
    run_stamped(rig, fake_slack, T0 + timedelta(minutes=30))
    assert fake_slack.messages == []
    rig.book.record(signal(rig.clock.now(), count=200, severity="critical"))
    run_stamped(rig, fake_slack, T0 + timedelta(minutes=32))
    rig.archive.close()
    parents = [m for m in fake_slack.messages if not m.get("thread_ts")]
    assert [m["minute"] for m in parents] == [30]
    assert "critical" in " ".join(all_texts(fake_slack.messages[-1]["blocks"]))
