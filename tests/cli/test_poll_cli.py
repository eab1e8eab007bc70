"""`uproar poll --dry-run` creates nothing, and a failing source prints each cause."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from click.testing import CliRunner

from monitor.cli import cli
from tests.fakes.feedserver import RSS, FeedServer
from tests.test_e2e import RSS_BODY, demo_config


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_dry_run_creates_no_archive(tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.add_route("/news.rss", RSS_BODY.encode(), content_type=RSS)
    config = demo_config(tmp_path, feeds=[url])
    result = CliRunner().invoke(cli, ["poll", "-c", str(config), "--dry-run"])
    assert result.exit_code == 0, result.output
    printed = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [m["url"] for m in printed] == ["https://news.example/1"]
    assert not list(tmp_path.glob("uproar.db*")), "a dry run created the archive"


def test_dry_run_leaves_an_existing_archive_as_it_was(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    url = feed_server.add_route("/news.rss", RSS_BODY.encode(), content_type=RSS)
    config = demo_config(tmp_path, feeds=[url])
    runner = CliRunner()
    assert runner.invoke(cli, ["poll", "-c", str(config)]).exit_code == 0
    db = tmp_path / "uproar.db"
    before = db.read_bytes()
    again = runner.invoke(cli, ["poll", "-c", str(config), "--dry-run"])
    assert again.exit_code == 0, again.output
    assert not [ln for ln in again.stdout.splitlines() if ln.startswith("{")]  # known: not new
    assert db.read_bytes() == before


def test_every_failing_feed_is_named_with_its_cause(tmp_path: Path) -> None:
    feeds = [f"http://127.0.0.1:{closed_port()}/{name}.rss" for name in ("a", "b", "c")]
    config = demo_config(tmp_path, feeds=feeds)
    result = CliRunner().invoke(cli, ["poll", "-c", str(config), "--dry-run"])
    assert result.exit_code == 1
    for feed in feeds:
        assert f"uproar: rss: feed {feed}: connection failed" in result.output
    assert "poll rss: 0 new, 0 duplicates, 3 errors" in result.output
    assert not list(tmp_path.glob("uproar.db*"))
