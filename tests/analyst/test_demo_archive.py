"""An analyst's first hour on the demo's archive (March 2026, read months later): every view
has the same default window, an empty answer says what the archive holds, story and incident
ids go with --story and --incident, several words are one search."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from monitor.archive import Archive
from monitor.archive.schema import incidents
from monitor.cli import cli
from monitor.clock import SimulatedClock
from tests.test_e2e import DEMO, demo_config

LATER = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)  # long after the demo's 2026-03-02..04
HELD = "the archive holds 695 mentions from 2026-03-02 to 2026-03-04"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("demo-archive")
    path = demo_config(folder)
    done = CliRunner().invoke(cli, ["replay", str(DEMO), "-c", str(path)])
    assert done.exit_code == 0, done.output
    yield path


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "-c", str(config)], obj=SimulatedClock(LATER))


@pytest.mark.parametrize("command", ["query", "stats", "stories"])
def test_an_empty_default_window_says_what_the_archive_holds(config: Path, command: str) -> None:
    result = run(config, command)
    assert result.exit_code == 0, result.output
    what = "stories" if command == "stories" else "mentions"
    assert f"no {what} in the last 30 days; {HELD} — try --since 2026-03-01" in result.output


def test_the_suggested_since_shows_them(config: Path) -> None:
    shown = run(config, "stats", "--since", "2026-03-01")
    assert shown.exit_code == 0, shown.output
    assert "no mentions" not in shown.output and "larkspur" in shown.output
    stories = run(config, "stories", "--since", "2026-03-01", "--format", "json")
    assert json.loads(stories.stdout)


def test_filters_that_match_nothing_are_named_as_the_cause(config: Path) -> None:
    result = run(config, "query", "zeppelin", "--since", "2026-03-01")
    assert result.exit_code == 0, result.output
    assert f"no mentions match these filters since 2026-03-01; {HELD}" in result.output
    assert "try --since" not in result.output


def test_several_words_are_one_search(config: Path) -> None:
    result = run(config, "query", "smashed", "cello", "--since", "all", "--format", "json",
                 "--limit", "500")
    assert result.exit_code == 0, result.output
    found = [json.loads(line) for line in result.stdout.splitlines()]
    assert found
    assert all("smashed" in m["text"].lower() and "cello" in m["text"].lower() for m in found)
    quoted = run(config, "query", "smashed cello", "--since", "all", "--format", "json",
                 "--limit", "500")
    assert quoted.stdout == result.stdout


def test_story_ids_from_stories_work_with_query_story(config: Path) -> None:
    listed = json.loads(run(config, "stories", "--since", "all", "--format", "json").stdout)
    story = max(listed, key=lambda s: s["mentions"])
    shown = json.loads(
        run(config, "stories", "--show", str(story["id"]), "--format", "json").stdout
    )
    members = {m["url"] for m in shown["complaints"]}

    result = run(config, "query", "--story", str(story["id"]), "--since", "all",
                 "--format", "json", "--limit", "1000")
    assert result.exit_code == 0, result.output
    assert {json.loads(line)["url"] for line in result.stdout.splitlines()} == members

    missing = run(config, "query", "--story", "9999", "--since", "all")
    assert missing.exit_code == 1
    assert "no story 9999 in the archive: `uproar stories` lists" in missing.output


def test_incident_ids_go_with_incident(config: Path) -> None:
    listed = run(config, "alerts", "list")
    assert listed.exit_code == 0, listed.output
    with Archive(f"sqlite:///{config.parent}/uproar.db") as archive, archive.engine.connect() as c:
        incident = c.execute(select(incidents.c.id)).scalars().first()
    assert f"#{incident}" in listed.output or str(incident) in listed.output
    result = run(config, "query", "--incident", str(incident), "--since", "all",
                 "--format", "json", "--limit", "1000")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip()
    stats = run(config, "stats", "--incident", str(incident), "--since", "all")
    assert stats.exit_code == 0, stats.output
