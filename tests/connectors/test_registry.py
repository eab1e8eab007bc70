"""Connectors are found through the ``uproar.connectors`` entry-point group, so a third-party
package adds a source by declaring one: here a tiny plugin distribution made by the test (a
``.dist-info`` with ``entry_points.txt`` on a temporary ``sys.path`` entry) polls a local
server and its mentions land in a real archive."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

import monitor.daemon.sources as sources
from monitor.cli import cli
from monitor.clock import SimulatedClock
from monitor.daemon.runner import SourceRunner
from monitor.daemon.sources import (
    BUILTIN,
    ENTRY_POINT_GROUP,
    brand_queries,
    enabled_connectors,
    registered_connectors,
    source_problems,
)
from monitor.errors import ConfigError
from tests.fakes.feedserver import FeedServer
from tests.sourcekit import config, make_app

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

PLUGIN = '''
"""A third-party connector: reads {"posts": [...]} from a JSON endpoint."""
from __future__ import annotations

import httpx

from connectors.base import Connector, FetchResult, Mention, parse_time


class EchoConnector(Connector):
    name = "echo"

    def __init__(self, *, api_url: str, timeout: float, channel: str = "general") -> None:
        if not api_url:
            raise ValueError("api_url is required")
        self.api_url = api_url
        self.channel = channel
        self.client = httpx.Client(timeout=timeout)

    def fetch(self, queries, cursor):
        seen = (cursor or {}).get("seen", 0)
        body = self.client.get(self.api_url + "posts", params={"channel": self.channel}).json()
        posts = body["posts"][seen:]
        mentions = [Mention(source="echo", source_id=str(p["id"]), url="", text=p["text"],
                            created_at=parse_time(p["at"])) for p in posts]
        return FetchResult(mentions, {"seen": seen + len(posts)})

    def close(self):
        self.client.close()
'''


def install_plugin(root: Path, *, name: str = "echo",
                   target: str = "uproar_echo_plugin:EchoConnector") -> None:
    """Write a plugin module and its distribution metadata under ``root``."""
    (root / "uproar_echo_plugin.py").write_text(PLUGIN, encoding="utf-8")
    info = root / "uproar_echo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: uproar-echo\nVersion: 1.0\n",
                                   encoding="utf-8")
    (info / "entry_points.txt").write_text(
        textwrap.dedent(f"""\
            [{ENTRY_POINT_GROUP}]
            {name} = {target}
            """), encoding="utf-8")


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    install_plugin(root)
    monkeypatch.syspath_prepend(str(root))
    return root


def test_builtin_connectors_are_declared_as_entry_points() -> None:
    found = registered_connectors()
    for name, target in BUILTIN.items():
        assert found[name].target == target
        assert found[name].package == "uproar"


def test_without_package_metadata_the_builtin_table_is_used(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A source tree run without `pip install`: importlib.metadata finds no entry points.
    monkeypatch.setattr(sources, "entry_points", lambda group: [])
    found = registered_connectors()
    assert {n: r.target for n, r in found.items()} == BUILTIN


def test_a_plugin_package_adds_a_source_that_polls_into_the_archive(
        plugin_path: Path, feed_server: FeedServer, tmp_path: Path) -> None:
    posts = [{"id": 1, "text": "united lost my bag", "at": "2024-05-01T11:58:00Z"},
             {"id": 2, "text": "nothing to see", "at": "2024-05-01T11:59:00Z"}]
    feed_server.add_route("/echo/posts", json.dumps({"posts": posts}),
                          content_type="application/json")
    assert registered_connectors()["echo"].package == "uproar-echo"
    cfg = config({"echo": {"enabled": True, "api_url": feed_server.url("/echo/"),
                           "every": "1m", "channel": "support"}})
    assert source_problems(cfg) == []
    connector = enabled_connectors(cfg)["echo"]
    assert type(connector).__name__ == "EchoConnector"
    assert connector.channel == "support"  # type: ignore[attr-defined]

    clock = SimulatedClock(NOW)
    app = make_app(cfg, clock, f"sqlite:///{tmp_path / 'a.db'}")
    try:
        runner = SourceRunner("echo", connector, app.pipeline, brand_queries(cfg), clock,
                              cfg.sources.echo.every)
        outcome = runner.poll_once()
        assert outcome.ok and outcome.new == 1 and outcome.unmatched == 1
        [stored] = app.archive.search("bag")
        assert (stored.mention.source, stored.mention.source_id) == ("echo", "1")
        assert feed_server.requests_for("/echo/posts")[0].query == "channel=support"
    finally:
        connector.close()
        app.close()


def test_check_config_names_a_source_whose_plugin_is_not_installed(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "brands: [{key: united, name: United, query: united}]\n"
        "sources:\n  rss: {enabled: false}\n  hackernews: {enabled: false}\n"
        "  mastodn: {enabled: true}\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["check-config", "-c", str(path)])
    assert result.exit_code == 1
    assert "sources.mastodn (line 5): no connector called 'mastodn' is installed" in result.output
    assert "mastodon" in result.output  # the installed names help spot the typo


def test_a_plugin_that_cannot_be_loaded_is_a_config_problem(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "broken"
    root.mkdir()
    install_plugin(root, name="ghost", target="uproar_missing_module:Ghost")
    monkeypatch.syspath_prepend(str(root))
    cfg = config({"ghost": {"enabled": True}})
    problems = source_problems(cfg)
    assert len(problems) == 1
    assert problems[0].startswith("sources.ghost: the ghost connector cannot be loaded")
    with pytest.raises(ConfigError):
        enabled_connectors(cfg)


def test_a_plugin_refusing_its_settings_names_the_source(plugin_path: Path) -> None:
    cfg = config({"echo": {"enabled": True, "colour": "red"}})
    with pytest.raises(ConfigError, match=r"sources\.echo: the echo connector .* refused its "
                                          r"settings: .*colour"):
        enabled_connectors(cfg)


def test_a_plugin_cannot_replace_a_builtin_source(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "evil"
    root.mkdir()
    install_plugin(root, name="rss")
    monkeypatch.syspath_prepend(str(root))
    assert registered_connectors()["rss"].target == BUILTIN["rss"]
