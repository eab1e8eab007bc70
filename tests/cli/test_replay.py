"""`uproar replay` stores where the config says (and says where), a throw-away archive is an
explicit flag, a live archive needs --force, and undecodable lines are skipped by name."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from monitor.archive import Archive
from monitor.cli import cli
from tests.fakes.feedserver import RSS, FeedServer
from tests.test_e2e import DEMO, RSS_BODY, demo_config

FIRST_LINES = 60  # enough of the demo's chatter to store something, fast


def _demo_part(tmp_path: Path) -> Path:
    part = tmp_path / "part.jsonl"
    part.write_text("\n".join(DEMO.read_text().splitlines()[:FIRST_LINES]) + "\n")
    return part


def test_replay_stores_into_the_configs_archive_and_says_where(tmp_path: Path) -> None:
    config = demo_config(tmp_path)  # archive.url: sqlite:///<tmp>/uproar.db
    runner = CliRunner()
    result = runner.invoke(cli, ["replay", str(_demo_part(tmp_path)), "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert f"stored in {tmp_path / 'uproar.db'} (see: uproar stories -c {config} " \
        "--since 2026-03-01" in result.output  # the replayed days, not the last 30
    with Archive(f"sqlite:///{tmp_path}/uproar.db") as archive:
        stored = archive.count_mentions()
    assert stored > 0
    # ... so the analyst's commands on the same config find them.
    found = runner.invoke(cli, ["query", "-c", str(config), "--format", "json", "--since", "all"])
    assert found.exit_code == 0, found.output
    assert len([ln for ln in found.stdout.splitlines() if ln.startswith("{")]) == stored
    # Replaying the same file again adds nothing, and says why nothing was alerted.
    again = runner.invoke(cli, ["replay", str(_demo_part(tmp_path)), "-c", str(config)])
    assert again.exit_code == 0, again.output
    assert "every mention was already in the archive" in again.output


def test_archive_option_overrides_the_config(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    other = tmp_path / "other.db"
    result = CliRunner().invoke(
        cli, ["replay", str(_demo_part(tmp_path)), "-c", str(config), "--archive",
              f"sqlite:///{other}"],
    )
    assert result.exit_code == 0, result.output
    assert f"stored in {other}" in result.output
    assert other.exists() and not (tmp_path / "uproar.db").exists()


def test_throwaway_keeps_nothing(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    result = CliRunner().invoke(
        cli, ["replay", str(_demo_part(tmp_path)), "-c", str(config), "--throwaway"]
    )
    assert result.exit_code == 0, result.output
    assert "nothing kept (--throwaway)" in result.output
    assert not list(tmp_path.glob("*.db*"))


def test_replay_into_a_live_archive_asks_for_force(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    url = feed_server.add_route("/news.rss", RSS_BODY.encode(), content_type=RSS)
    config = demo_config(tmp_path, feeds=[url])
    runner = CliRunner()
    assert runner.invoke(cli, ["poll", "-c", str(config)]).exit_code == 0
    part = _demo_part(tmp_path)

    refused = runner.invoke(cli, ["replay", str(part), "-c", str(config)])
    assert refused.exit_code == 1
    assert "holds mentions polled live from rss" in refused.output
    assert "--force" in refused.output
    with Archive(f"sqlite:///{tmp_path}/uproar.db") as archive:
        assert archive.count_mentions() == 1  # only the polled one: nothing replayed

    forced = runner.invoke(cli, ["replay", str(part), "-c", str(config), "--force"])
    assert forced.exit_code == 0, forced.output
    with Archive(f"sqlite:///{tmp_path}/uproar.db") as archive:
        assert archive.count_mentions() > 1


def test_a_line_of_invalid_utf8_is_skipped_by_name(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    lines = [line.encode() for line in DEMO.read_text().splitlines()[:FIRST_LINES]]
    invalid = b'{"source": "x", "text": "caf\xe9 \xff"}'  # Latin-1 bytes, not UTF-8
    broken = [*lines[:3], invalid, *lines[3:]]
    path = tmp_path / "broken.jsonl"
    path.write_bytes(b"\n".join(broken) + b"\n")
    runner = CliRunner()

    result = runner.invoke(cli, ["replay", str(path), "-c", str(config)])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    column = invalid.index(0xE9) + 1
    assert f"{path}:4: not UTF-8 text (byte 0xe9 at column {column})" in result.output
    assert f"replayed {FIRST_LINES} mentions" in result.output
    assert "1 bad lines skipped" in result.output
    assert result.exit_code == 1

    lenient = runner.invoke(cli, ["replay", str(path), "-c", str(config), "--lenient"])
    assert lenient.exit_code == 0, lenient.output
    assert f"{path}:4: not UTF-8" in lenient.output
