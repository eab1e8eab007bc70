"""A refused credential or a removed endpoint pauses that source and tells ops once (log line
and one Slack message in ``alerts.ops_channel``) while the other sources carry on; every
source's health is saved in the archive after each poll and shown by ``uproar sources``
(table or JSON) from another process."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from connectors.base import format_time
from monitor.cli import cli
from monitor.clock import SimulatedClock
from monitor.daemon.loop import Daemon
from monitor.daemon.runner import PAUSED_PROBE, SourceRunner
from monitor.daemon.sources import brand_queries, enabled_connectors
from tests.fakes import hackernews as fake_hn
from tests.fakes import twitter as fake_tw
from tests.fakes.hackernews import FakeHackerNews
from tests.fakes.slack import FakeSlack
from tests.fakes.twitter import FakeTwitter
from tests.sourcekit import archive_url, config, make_app  # noqa: F401  (fixture)

fake_twitter = fake_tw.fake_twitter
fake_hackernews = fake_hn.fake_hackernews

NOW = datetime(2024, 1, 10, 14, 5, tzinfo=UTC)  # just after the HN sample's newest hit
OPS_CHANNEL_ID = "C0OPSOPS1"


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(NOW)


def settings(fake_twitter: FakeTwitter, fake_hackernews: FakeHackerNews, fake_slack: FakeSlack,
             archive: str, *, token: str = "revoked-token") -> dict[str, Any]:
    return {
        "brands": [{"key": "united", "name": "United Airlines", "query": "united"}],
        "archive": {"url": archive},
        "http": {"listen": "127.0.0.1:0"},
        "alerts": {"slack": {"token": fake_slack.token, "api_url": fake_slack.url},
                   "ops_channel": "#ops"},
        "sources": {
            "rss": {"enabled": False},
            "twitter": {"enabled": True, "bearer_token": token, "api_url": fake_twitter.api_url},
            "hackernews": {"enabled": True, "api_url": fake_hackernews.api_url},
        },
    }


@pytest.fixture
def archive(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'uproar.db'}"


@pytest.fixture
def daemon_for(fake_twitter: FakeTwitter, fake_hackernews: FakeHackerNews, fake_slack: FakeSlack,
               archive: str, clock: SimulatedClock) -> Iterator[Any]:
    fake_slack.add_channel("ops", OPS_CHANNEL_ID)
    fake_hackernews.load_sample()
    made: list[Daemon] = []

    def build(**kwargs: Any) -> Daemon:
        cfg = config({})  # just to reuse the validator below
        cfg = type(cfg).model_validate(settings(fake_twitter, fake_hackernews, fake_slack,
                                                archive, **kwargs))
        daemon = Daemon(make_app(cfg, clock, archive))
        made.append(daemon)
        return daemon

    yield build
    for daemon in made:
        for runner in daemon.runners:
            runner.connector.close()
        daemon.app.close()


def runner(daemon: Daemon, name: str) -> SourceRunner:
    return next(r for r in daemon.runners if r.name == name)


def ops_messages(fake_slack: FakeSlack) -> list[str]:
    return [m["text"] for m in fake_slack.in_channel(OPS_CHANNEL_ID)]


def sources_json(
    tmp_path: Path, data: dict[str, Any], now: SimulatedClock | None = None
) -> list[dict[str, Any]]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = CliRunner().invoke(cli, ["sources", "-c", str(path), "--format", "json"], obj=now)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_refused_credentials_pause_one_source_and_tell_ops_once(
        daemon_for: Any, fake_twitter: FakeTwitter, fake_hackernews: FakeHackerNews,
        fake_slack: FakeSlack, clock: SimulatedClock, archive: str, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    daemon = daemon_for()
    twitter, hackernews = runner(daemon, "twitter"), runner(daemon, "hackernews")
    assert [r.name for r in daemon.refreshers] == ["twitter", "hackernews"]  # both re-read

    outcome = twitter.poll_once()
    assert outcome.paused and not outcome.ok
    assert hackernews.poll_once().ok  # the other source carries on
    [message] = ops_messages(fake_slack)
    assert message.startswith(":warning: source twitter failing: X/Twitter refused the bearer "
                              "token: check TWITTER_BEARER_TOKEN")
    assert "paused, its credentials were refused" in message
    assert message.startswith(":warning:")

    # Paused: the next polls do not even ask X, and ops hears nothing more.
    for _ in range(3):
        clock.advance(timedelta(minutes=5))
        assert twitter.poll_once().skipped
        assert hackernews.poll_once().ok
    assert len(fake_twitter.http.requests_for(fake_tw.SEARCH_PATH)) == 1
    # The hourly probe fails the same way: still one message.
    clock.advance(PAUSED_PROBE)
    assert twitter.poll_once().paused
    assert len(fake_twitter.http.requests_for(fake_tw.SEARCH_PATH)) == 2
    assert len(ops_messages(fake_slack)) == 1
    paused_lines = [r for r in caplog.records if "source twitter failing" in r.getMessage()]
    assert len(paused_lines) == 1 and paused_lines[0].levelno == logging.ERROR

    # `uproar sources` (another process would read the same archive) shows it.
    data = settings(fake_twitter, fake_hackernews, fake_slack, archive)
    rows = {r["source"]: r for r in sources_json(tmp_path, data, clock)}
    assert rows["twitter"]["state"] == "paused"
    assert "TWITTER_BEARER_TOKEN" in rows["twitter"]["paused"]
    assert rows["twitter"]["consecutive_failures"] == 2
    assert rows["twitter"]["last_success"] is None
    assert rows["twitter"]["next_poll"] == "2024-01-10T16:20:00Z"
    assert rows["hackernews"]["state"] == "ok"
    assert rows["hackernews"]["items_last_poll"] == 0  # nothing new in the last poll
    assert rows["hackernews"]["last_success"] == "2024-01-10T14:20:00Z"
    assert rows["rss"] == {**rows["rss"], "enabled": False, "state": "disabled"}

    # A restarted daemon (same bad token) does not tell ops again.
    for old in daemon.runners:
        old.connector.close()
    clock.advance(timedelta(minutes=1))
    restarted = daemon_for()
    assert runner(restarted, "twitter").poll_once().paused
    assert len(ops_messages(fake_slack)) == 1

    # Ops fixes the token and reloads: it works again, and ops hears that once.
    clock.advance(timedelta(minutes=1))
    fixed = daemon_for(token=fake_twitter.bearer_token)
    assert runner(fixed, "twitter").poll_once().ok
    messages = ops_messages(fake_slack)
    assert len(messages) == 2 and "source twitter works again" in messages[1]
    rows = {r["source"]: r for r in sources_json(tmp_path, data, clock)}
    assert rows["twitter"]["state"] == "ok" and rows["twitter"]["paused"] is None
    assert rows["twitter"]["consecutive_failures"] == 0


def test_a_removed_endpoint_pauses_the_source_too(
        daemon_for: Any, fake_hackernews: FakeHackerNews, fake_slack: FakeSlack) -> None:
    daemon = daemon_for(token="whatever")
    fake_hackernews.inject(fake_hn.algolia_error(404, "Not Found"))
    outcome = runner(daemon, "hackernews").poll_once()
    assert outcome.paused
    [message] = ops_messages(fake_slack)
    assert message.startswith(":warning: source hackernews failing: Hacker News search answered "
                              "HTTP 404")
    assert "paused, its API endpoint is gone" in message


def test_without_an_ops_channel_it_is_only_logged(
        fake_twitter: FakeTwitter, fake_slack: FakeSlack, clock: SimulatedClock,
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = config({"twitter": {"enabled": True, "bearer_token": "revoked",
                              "api_url": fake_twitter.api_url}})
    connector = enabled_connectors(cfg)["twitter"]
    app = make_app(cfg, clock, f"sqlite:///{tmp_path / 'a.db'}")
    try:
        polled = SourceRunner("twitter", connector, app.pipeline, brand_queries(cfg), clock,
                              timedelta(minutes=5))
        assert polled.poll_once().paused
    finally:
        connector.close()
        app.close()
    assert fake_slack.calls("chat.postMessage") == []
    assert any("source twitter failing" in r.getMessage() and "paused" in r.getMessage()
               for r in caplog.records)


def test_table_output_shows_each_source(
        daemon_for: Any, fake_twitter: FakeTwitter, fake_hackernews: FakeHackerNews,
        fake_slack: FakeSlack, archive: str, tmp_path: Path) -> None:
    daemon = daemon_for()
    for each in daemon.runners:
        each.poll_once()
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(settings(fake_twitter, fake_hackernews, fake_slack, archive)),
                    encoding="utf-8")
    result = CliRunner().invoke(cli, ["sources", "-c", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    twitter = next(line for line in lines if line.startswith("│ twitter"))
    assert "paused" in twitter and "TWITTER_BEARER_TOKEN" in result.output
    hackernews = next(line for line in lines if line.startswith("│ hackernews"))
    assert " ok " in hackernews and " 3 " in hackernews  # 3 items in its first poll
    assert "disabled" in next(line for line in lines if line.startswith("│ rss"))


def test_sources_help_has_an_example() -> None:
    result = CliRunner().invoke(cli, ["sources", "--help"])
    assert result.exit_code == 0 and "Example:" in result.output


def test_health_is_saved_and_replaced_on_each_backend(archive_url: str) -> None:  # noqa: F811
    from monitor.archive import Archive
    from monitor.daemon.source_health import SourceHealth, load_health, save_health

    with Archive(archive_url) as stored:
        first = SourceHealth("twitter", NOW, last_poll_at=NOW, last_error="HTTP 503",
                             last_error_at=NOW, consecutive_failures=1,
                             next_poll_at=NOW + timedelta(minutes=5))
        save_health(stored.engine, first)
        later = SourceHealth("twitter", NOW + timedelta(minutes=5),
                             last_poll_at=NOW + timedelta(minutes=5),
                             last_success_at=NOW + timedelta(minutes=5), last_error="HTTP 503",
                             last_error_at=NOW, items_last_poll=12,
                             next_poll_at=NOW + timedelta(minutes=10))
        save_health(stored.engine, later)
        save_health(stored.engine, SourceHealth("reddit", NOW, paused="credentials refused"))
        assert load_health(stored.engine) == [
            SourceHealth("reddit", NOW, paused="credentials refused"), later]
        assert load_health(stored.engine, "twitter") == [later]


def test_table_keeps_an_error_from_the_internet_inert(capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli.sources import SourceRow, print_table
    from monitor.daemon.source_health import SourceHealth

    hostile = "feed said: \x1b]0;pwned\x07 [bold]x[/bold] ev\u200bil \u202egnp.exe"
    health = SourceHealth("rss", NOW, last_error=hostile, last_error_at=NOW,
                          consecutive_failures=2)
    print_table([SourceRow("rss", True, "failing", health)], NOW)
    shown = capsys.readouterr().out
    assert "\x1b" not in shown and "\x07" not in shown
    assert "\u200b" not in shown and "\u202e" not in shown
    assert "[bold]x[/bold]" in shown  # markup from the error is shown, not applied


def test_a_stopped_daemon_is_said_not_running(
        daemon_for: Any, fake_twitter: FakeTwitter, fake_hackernews: FakeHackerNews,
        fake_slack: FakeSlack, clock: SimulatedClock, archive: str, tmp_path: Path) -> None:
    daemon = daemon_for(token=fake_twitter.bearer_token)
    for each in daemon.runners:
        each.poll_once()
    data = settings(fake_twitter, fake_hackernews, fake_slack, archive)
    running = {r["source"]: r for r in sources_json(tmp_path, data, clock)}
    assert running["hackernews"]["next_poll"] is not None and not running["hackernews"]["stale"]

    stopped_at = clock.now()
    for each in daemon.runners:  # what Daemon.shutdown does for each source it polled
        each.mark_stopped()
    clock.advance(timedelta(minutes=10))
    path = tmp_path / "config.yaml"
    result = CliRunner().invoke(cli, ["sources", "-c", str(path)], obj=clock)
    assert result.exit_code == 0, result.output
    assert (f"uproar: the daemon is not running: it stopped at {format_time(stopped_at)} "
            "(10m ago)") in result.output
    hackernews = next(ln for ln in result.output.splitlines() if ln.startswith("│ hackernews"))
    assert "(stale)" in hackernews and "in " not in hackernews  # no "next poll in 1m"
    rows = {r["source"]: r for r in sources_json(tmp_path, data, clock)}
    assert rows["hackernews"]["stale"] and rows["hackernews"]["next_poll"] is None


def test_a_daemon_that_vanished_leaves_a_stale_state(
        daemon_for: Any, fake_twitter: FakeTwitter, fake_hackernews: FakeHackerNews,
        fake_slack: FakeSlack, clock: SimulatedClock, archive: str, tmp_path: Path) -> None:
    daemon = daemon_for(token=fake_twitter.bearer_token)
    for each in daemon.runners:
        each.poll_once()
    saved_at = clock.now()
    data = settings(fake_twitter, fake_hackernews, fake_slack, archive)
    sources_json(tmp_path, data)  # writes the config file
    clock.advance(timedelta(hours=2))  # killed: it never saved that it stopped
    result = CliRunner().invoke(cli, ["sources", "-c", str(tmp_path / "config.yaml")], obj=clock)
    assert (f"the daemon is not running, or its state is stale since {format_time(saved_at)} "
            "(2h ago)") in result.output
