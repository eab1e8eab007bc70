"""Routing rules: routes with matchers (first match wins unless continue), policies, quiet
hours in a time zone, inhibition, silences from the config and from `uproar alerts`, and
`uproar check-config --explain`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from monitor.alerts import IncidentBook
from monitor.alerts.rules import AlertFacts, QuietHours, Router
from monitor.archive import Archive, schema
from monitor.cli import cli
from monitor.clock import SimulatedClock
from monitor.config import AlertsConfig, config_from_dict
from monitor.errors import ConfigError
from tests.alerts.test_alerts import all_texts, signal
from tests.alerts.test_escalation import T0, escalations, run_stamped, start
from tests.fakes import slack as fakeslack
from tests.fakes.slack import FakeSlack
from tests.paths import ROOT

fake_slack = fakeslack.fake_slack

RULES: dict[str, Any] = {
    "policies": {
        "pr": {"levels": [{"mention": ["S0PRTEAM"]}, {"after": "15m", "mention": ["U0LEAD"]}]},
        "execs": {"levels": [{"channel": "#exec-alerts", "mention": ["U0CEO"]}]},
        "social": {"levels": [{"channel": "#social"}]},
    },
    "routes": [
        {"name": "critical", "match": {"severity": "critical"}, "policy": "execs",
         "continue": True},
        {"name": "acme-social", "match": {"brand": "acme", "source": ["twitter", "reddit"]},
         "policy": "social"},
        {"name": "everything-else", "policy": "pr"},
    ],
}


def router(rules: dict[str, Any] | None = None) -> Router:
    return Router(AlertsConfig.model_validate(rules or RULES), "#brand-alerts")


def routed(facts: str, rules: dict[str, Any] | None = None) -> list[str]:
    return [r.name for r in router(rules).match(AlertFacts.parse(facts))]


def test_first_match_wins_unless_continue() -> None:
    assert routed("brand=acme,severity=warning,source=twitter") == ["acme-social"]
    assert routed("brand=acme,severity=warning,source=rss") == ["everything-else"]
    assert routed("brand=acme,severity=critical,source=reddit") == ["critical", "acme-social"]
    decision = router().decide(AlertFacts.parse("brand=united,severity=critical"), T0)
    assert decision.channel == "#exec-alerts"  # the first route's first level owns the thread
    assert [r.policy_name for r in decision.routes] == ["execs", "pr"]


def test_no_routes_means_one_default_route_to_the_configured_channel() -> None:
    decision = Router(AlertsConfig(), "#brand-alerts").decide(
        AlertFacts.parse("brand=united,severity=critical"), T0
    )
    assert [r.name for r in decision.routes] == ["default"]
    assert decision.channel == "#brand-alerts"
    assert len(decision.routes[0].policy.levels) == 1  # no escalation unless configured
    unmatched = routed("brand=x,severity=info", {**RULES, "routes": RULES["routes"][:2]})
    assert unmatched == ["default"]


@pytest.mark.parametrize(
    ("alerts", "expected"),
    [
        ({"routes": [{"policy": "nobody"}]}, "uses policy 'nobody', which is not under"),
        ({"policies": {"p": {"levels": [{"mention": ["@dave"]}]}}}, "is not a Slack id"),
        ({"policies": {"p": {"levels": [{"after": "5m"}]}}}, "its after must be 0"),
        ({"policies": {"p": {"levels": [{}, {"after": "30m"}, {"after": "15m"}]}}},
         "increasing after values"),
        ({"routes": [{"quiet_hours": {"start": "22:00", "end": "07:00",
                                       "timezone": "Mars/Olympus"}}]}, "unknown time zone"),
        ({"routes": [{"match": {"severity": "urgent"}}]}, "severity must be info"),
        ({"routes": [{"match": {"colour": "red"}}]}, "unknown key"),
        ({"policies": {"p": {"levels": [{"webhook": ["ops"]}]}}}, "not under alerts.webhooks"),
        ({"policies": {"p": {"levels": [{"email": ["pr@example.com"]}]}}},
         "set alerts.smtp.host"),
        ({"policies": {"p": {"levels": [{"email": ["not an address"]}]}}}, "is not an address"),
        ({"webhooks": {"ops": {"url": "https://h.example/x", "secret": "short"}}},
         "at least 16 characters"),
    ],
)
def test_bad_rules_are_refused_with_their_path(alerts: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"brands": [{"key": "u", "name": "U", "query": "u"}], "alerts": alerts})
    assert expected in " ".join(caught.value.problems)
    assert caught.value.problems[0].startswith("alerts")


def test_quiet_hours_cross_midnight_in_the_routes_time_zone() -> None:
    quiet = QuietHours.model_validate({"start": "22:00", "end": "07:00",
                                       "timezone": "America/New_York"})
    # 2026-01-15 23:30 New York (EST, UTC-5) = 04:30 UTC: quiet until 07:00 EST = 12:00 UTC.
    assert quiet.holds_until(datetime(2026, 1, 16, 4, 30, tzinfo=UTC), "warning") == datetime(
        2026, 1, 16, 12, 0, tzinfo=UTC
    )
    # In July (EDT, UTC-4) the same wall-clock end is 11:00 UTC.
    assert quiet.holds_until(datetime(2026, 7, 16, 4, 30, tzinfo=UTC), "warning") == datetime(
        2026, 7, 16, 11, 0, tzinfo=UTC
    )
    assert quiet.holds_until(datetime(2026, 7, 16, 15, 0, tzinfo=UTC), "warning") is None
    assert quiet.holds_until(datetime(2026, 7, 16, 4, 30, tzinfo=UTC), "critical") is None
    weekends = QuietHours.model_validate({"start": "00:00", "end": "23:59", "days": ["sat"]})
    assert weekends.holds_until(datetime(2026, 11, 28, 12, tzinfo=UTC), "warning")  # Saturday
    assert weekends.holds_until(datetime(2026, 11, 30, 12, tzinfo=UTC), "warning") is None


# -- muting: inhibition and silences ------------------------------------------------------------


def test_an_open_critical_incident_inhibits_a_new_warning_of_its_brand(tmp_path: Path) -> None:
    clock = SimulatedClock(T0)
    with Archive(f"sqlite:///{tmp_path / 'a.db'}") as archive:
        book = IncidentBook(archive.engine, clock, join_window=timedelta(hours=1))
        critical = book.record(signal(T0, severity="critical", count=300))
        clock.advance(timedelta(hours=3))  # outside the join window: a separate story
        warning = book.record(signal(clock.now(), severity="warning"))
        other_brand = book.record(signal(clock.now(), brand="acme", brand_name="Acme"))
        with archive.engine.connect() as conn:
            muted = conn.execute(
                select(schema.incidents.c.state).where(
                    schema.incidents.c.id == warning.incident_id
                )
            ).scalar_one()
    assert critical.outbox_id is not None and other_brand.outbox_id is not None
    assert warning.opened and warning.outbox_id is None
    assert muted["route"]["muted"] == f"inhibited by open critical incident #{critical.incident_id}"


def config_file(tmp_path: Path, slack: FakeSlack, rules: dict[str, Any] | None = None) -> Path:
    import yaml

    data = {
        "brands": [{"key": "united", "name": "United Airlines", "query": "united"},
                   {"key": "acme", "name": "Acme", "query": "acme"}],
        "archive": {"url": f"sqlite:///{tmp_path / 'uproar.db'}"},
        "alerts": {"slack": {"token": slack.token, "channel": "#brand-alerts",
                             "api_url": slack.url}, **(rules or {})},
        "sources": {"rss": {"enabled": False}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_silence_from_the_cli_mutes_until_it_ends(tmp_path: Path, fake_slack: FakeSlack) -> None:
    path = config_file(tmp_path, fake_slack)
    runner = CliRunner()
    result = runner.invoke(cli, ["alerts", "silence", "-c", str(path), "--brand", "united",
                                 "--for", "2h", "--reason", "statement is out", "--by", "dave"])
    assert result.exit_code == 0, result.output
    assert "silence #1: brand=united until" in result.output
    listed = runner.invoke(cli, ["alerts", "silences", "-c", str(path)])
    assert "#1 active: brand=united" in listed.output
    assert "by dave: statement is out" in listed.output

    clock = SimulatedClock(datetime.now(UTC))
    rig = start(f"sqlite:///{tmp_path / 'uproar.db'}", fake_slack, clock, AlertsConfig())
    muted = rig.book.record(signal(clock.now()))
    acme = rig.book.record(signal(clock.now(), brand="acme", brand_name="Acme"))
    run_stamped(rig, fake_slack, clock.now() + timedelta(minutes=5))
    assert muted.outbox_id is None and acme.outbox_id is not None
    assert len(fake_slack.messages) == 1 and "Acme" in fake_slack.messages[0]["text"]
    listed = runner.invoke(cli, ["alerts", "list", "-c", str(path)])
    assert "muted: silence #1" in listed.output

    ended = runner.invoke(cli, ["alerts", "unsilence", "1", "-c", str(path)])
    assert ended.exit_code == 0, ended.output
    rig.book.record(signal(clock.now(), count=80))  # the story goes on: now it is told
    run_stamped(rig, fake_slack, clock.now() + timedelta(minutes=2))
    rig.archive.close()
    united = [m for m in fake_slack.messages if "United" in m["text"]]
    assert len(united) == 1 and not united[0].get("thread_ts")
    assert "*80 complaints" in " ".join(all_texts(united[0]["blocks"]))


def test_config_silence_mutes_matching_alerts(tmp_path: Path) -> None:
    rules = {"silences": [{"match": {"brand": "united", "severity": "warning"},
                           "until": "2009-07-07T05:00:00Z", "reason": "known outage"}]}
    clock = SimulatedClock(T0)
    with Archive(f"sqlite:///{tmp_path / 'a.db'}") as archive:
        book = IncidentBook(archive.engine, clock,
                            router=Router(AlertsConfig.model_validate(rules), "#brand-alerts"))
        assert book.record(signal(T0)).outbox_id is None
        assert book.record(signal(T0, brand="acme", brand_name="Acme")).outbox_id is not None
        clock.advance(timedelta(hours=3))  # the silence ended at 05:00
        assert book.record(signal(clock.now(), count=90)).kind == "open"


# -- the CLI against the archive a daemon uses -------------------------------------------------


def test_alerts_cli_acknowledges_while_the_daemon_escalates(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    path = config_file(tmp_path, fake_slack, RULES)
    clock = SimulatedClock(datetime.now(UTC))
    rig = start(f"sqlite:///{tmp_path / 'uproar.db'}", fake_slack, clock,
                AlertsConfig.model_validate(RULES))
    begin = clock.now()
    incident = rig.book.record(signal(begin)).incident_id
    run_stamped(rig, fake_slack, begin + timedelta(minutes=5))
    runner = CliRunner()
    listed = runner.invoke(cli, ["alerts", "list", "-c", str(path)])
    assert f"{incident:>5}  open" in listed.output and "next level at" in listed.output

    acked = runner.invoke(cli, ["alerts", "ack", str(incident), "-c", str(path), "--by", "dave"])
    assert acked.exit_code == 0 and "escalation stopped" in acked.output
    run_stamped(rig, fake_slack, begin + timedelta(minutes=60))
    assert escalations(fake_slack) == []
    parent = fake_slack.messages[0]
    assert "acknowledged by dave" in " ".join(all_texts(parent["blocks"]))
    assert any("Acknowledged by *dave*" in " ".join(all_texts(m["blocks"]))
               for m in fake_slack.thread(parent["ts"]))

    resolved = runner.invoke(cli, ["alerts", "resolve", str(incident), "-c", str(path)])
    assert resolved.exit_code == 0 and "resolved" in resolved.output
    again = runner.invoke(cli, ["alerts", "resolve", str(incident), "-c", str(path)])
    assert "already resolved" in again.output
    assert "no open incidents" in runner.invoke(cli, ["alerts", "list", "-c", str(path)]).output
    missing = runner.invoke(cli, ["alerts", "ack", "999", "-c", str(path)])
    assert missing.exit_code == 1 and "no incident #999" in missing.output
    rig.archive.close()


def test_check_config_explains_the_route_a_sample_alert_takes(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    quiet = {"start": "22:00", "end": "07:00", "timezone": "Europe/Berlin"}
    rules = {**RULES, "routes": [*RULES["routes"][:2],
                                 {"name": "everything-else", "policy": "pr",
                                  "quiet_hours": quiet}]}
    path = config_file(tmp_path, fake_slack, rules)
    result = CliRunner().invoke(cli, ["check-config", "-c", str(path), "--explain",
                                      "brand=acme,severity=warning,signal=volume,source=rss"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "routes[0] critical: no match (severity=critical)" in out
    assert "routes[1] acme-social: no match" in out
    assert "routes[2] everything-else: MATCHES (anything) -> policy pr" in out
    assert "level 2 after 15m unacknowledged: @U0LEAD" in out
    assert "quiet hours 22:00-07:00 Europe/Berlin (except critical)" in out
    critical = CliRunner().invoke(cli, ["check-config", "-c", str(path), "--explain",
                                        "brand=acme,severity=critical,source=twitter"])
    assert "continue: the next routes are checked too" in critical.output
    assert "thread in #exec-alerts" in critical.output
    assert "first match wins: 1 later routes not checked" in critical.output
    bad = CliRunner().invoke(cli, ["check-config", "-c", str(path), "--explain", "colour=red"])
    assert bad.exit_code == 1 and "key one of brand, severity, signal, source" in bad.output


def test_the_commented_example_policy_in_config_yaml_is_valid(tmp_path: Path) -> None:
    import re

    root = ROOT
    text = (root / "config.yaml").read_text()
    text = re.sub(r"^  # (policies:|routes:|silences:|webhooks:|smtp:)", r"  \1", text, flags=re.M)
    text = re.sub(r"^  #   ", "    ", text, flags=re.M)
    path = tmp_path / "config.yaml"
    path.write_text(text)
    from monitor.config import load_config

    alerts = load_config(path, environ={"UPROAR_WEBHOOK_SECRET": "x" * 32}).config.alerts
    assert set(alerts.policies) == {"pr-team", "execs"}
    assert alerts.webhooks["ops"].url == "https://hooks.example.com/uproar"
    assert alerts.smtp.host == "smtp.example.com" and alerts.smtp.sender == "uproar@example.com"
    assert [r.name for r in alerts.routes] == [
        "critical-to-execs", "accusations-to-execs", "everything"]
    assert alerts.routes[1].match.complaint_severity_min == 3
    assert alerts.silences[0].reason == "merger announcement"


@pytest.mark.parametrize(
    "command", ["list", "ack", "resolve", "silence", "silences", "unsilence"]
)
def test_every_alerts_command_has_help_with_an_example(command: str) -> None:
    result = CliRunner().invoke(cli, ["alerts", command, "--help"])
    assert result.exit_code == 0 and "Example" in result.output
