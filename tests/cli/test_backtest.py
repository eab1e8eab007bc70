"""`uproar backtest`: the demo story alerts once, the chatter never, the archive agrees."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from models.base import Classification
from monitor.archive import Archive
from monitor.archive.records import StoredMention
from monitor.backtest import BacktestResult, classify_mentions
from monitor.brands.query import BrandMatcher, parse_query
from monitor.cli.backtest import backtest, backtest_archive, backtest_replay
from monitor.config import Config, load_config
from monitor.replay import read_mentions
from tests.paths import ROOT

ROOT = ROOT
DEMO = ROOT / "monitor" / "demo" / "larkspur-cello.jsonl"
DEMO_CONFIG = ROOT / "monitor" / "demo" / "config.yaml"
STORY_START = datetime(2026, 3, 4, 14, 7, tzinfo=UTC)  # the cello story breaks
FETCHED = datetime(2026, 3, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(DEMO_CONFIG).config


@pytest.fixture(scope="module")
def from_replay(config: Config, default_classifier: Any) -> BacktestResult:
    return backtest_replay(DEMO, config, classifier=default_classifier, progress=False)


@pytest.fixture(scope="module")
def archive_url(
    config: Config, default_classifier: Any, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """An archive holding the demo's mentions, classified and stored as the daemon would."""
    mentions, bad = read_mentions(DEMO)
    assert not bad
    matcher = BrandMatcher([(b.key, parse_query(b.query)) for b in config.brands])
    items = classify_mentions(mentions, matcher, default_classifier)
    url = f"sqlite:///{tmp_path_factory.mktemp('backtest') / 'uproar.db'}"
    with Archive(url) as archive:
        archive.store(
            [
                StoredMention(
                    item.mention,
                    item.brands,
                    Classification(
                        sentiment="negative" if item.complaint >= 0.5 else "neutral",
                        scores={"negative": item.complaint, "neutral": 1 - item.complaint,
                                "positive": 0.0},
                        complaint=item.complaint,
                    ),
                    default_classifier.name,
                    default_classifier.version,
                )
                for item in items
            ],
            fetched_at=FETCHED,
        )
    return url


def _key(result: BacktestResult) -> list[tuple[Any, ...]]:
    return [
        (s.at, s.brand, s.severity, s.count, round(s.expected, 6), round(s.score, 6),
         s.reasons, tuple(ex.source_id for ex in s.examples))
        for s in result.signals
    ]


# -- detection ------------------------------------------------------------------------------


def test_demo_story_alerts_once_and_chatter_never(from_replay: BacktestResult) -> None:
    assert from_replay.brands == ["larkspur"]
    assert len(from_replay.alerts) == 1
    alert = from_replay.alerts[0]
    assert alert.brand == "larkspur"
    assert alert.brand_name == "Larkspur Airways"
    assert STORY_START < alert.at < datetime(2026, 3, 5, tzinfo=UTC)
    # Nothing fired during the two days of ordinary chatter; later signals only update it.
    assert all(s.at > STORY_START for s in from_replay.signals)
    assert set(from_replay.incidents) == {1}
    assert alert.count >= 5 and alert.score >= 3.5
    assert alert.examples and alert.examples[0].url.startswith("https://example.com/")
    assert from_replay.mentions > from_replay.complaints > 0
    assert from_replay.started is not None and from_replay.started < STORY_START
    assert from_replay.alerts_by_brand() == {"larkspur": 1}
    assert from_replay.alerts_per_brand_per_week() == pytest.approx(
        1 / (from_replay.period.total_seconds() / (7 * 86400))
    )
    assert from_replay.summary().startswith("1 alert")


def test_the_alert_names_the_story_and_quotes_its_posts(from_replay: BacktestResult) -> None:
    first = from_replay.alerts[0]
    assert first.story_title is not None and "cello" in first.story_title
    assert any(r.startswith("the story: ") and "complaints since" in r for r in first.reasons)
    # The quoted posts are the story's: the smashed cello, or instruments in general.
    assert all(any(w in ex.text.lower() for w in ("cello", "instrument"))
               for ex in first.examples)


def test_a_high_threshold_silences_volume_alerts(
    config: Config, default_classifier: Any
) -> None:
    """Only volume is silenced: any alert left comes from a story or a post's spread.

    (With the frozen-feature model of 1.d8ce1cb1 the demo's story also raised story_growth
    here; the fine-tuned model splits its first five complaints into a story of their own, and
    the main story's growth stays under the ×growth_ratio bar. Story growth itself is tested
    on constructed stories in tests/detect/test_stories.py.)
    """
    result = backtest_replay(
        DEMO, config, classifier=default_classifier, threshold=50, progress=False
    )
    assert [s.kind for s in result.signals if s.kind == "complaint_volume"] == []
    assert {s.kind for s in result.alerts} <= {"story_growth", "engagement_velocity",
                                               "high_reach_author"}


def test_min_count_override_is_applied(config: Config, default_classifier: Any) -> None:
    result = backtest_replay(
        DEMO, config, classifier=default_classifier, min_count=100_000, progress=False
    )
    assert result.settings.min_count == 100_000
    assert result.signals == []


def test_archive_gives_the_replay_file_results(
    archive_url: str, config: Config, from_replay: BacktestResult
) -> None:
    from_archive = backtest_archive(archive_url, config)
    assert _key(from_archive) == _key(from_replay)
    assert from_archive.incidents == from_replay.incidents
    assert from_archive.complaints == from_replay.complaints
    assert from_archive.mentions == from_replay.mentions
    assert from_archive.started == from_replay.started
    assert from_archive.ended == from_replay.ended
    assert from_archive.summary() == from_replay.summary()


def test_archive_without_config_watches_its_brands(archive_url: str) -> None:
    result = backtest_archive(archive_url, None, brand=None)
    assert result.brands == ["larkspur"]
    assert len(result.alerts) == 1
    assert result.alerts[0].brand_name == "larkspur"  # no config: the key stands in


def test_archive_chatter_only_period_alerts_never(archive_url: str, config: Config) -> None:
    result = backtest_archive(
        archive_url, config, until=datetime(2026, 3, 4, 12, tzinfo=UTC)
    )
    assert result.signals == []
    assert result.complaints > 0


def test_archive_since_warms_up_from_history(archive_url: str, config: Config) -> None:
    since = datetime(2026, 3, 4, 12, tzinfo=UTC)
    result = backtest_archive(archive_url, config, since=since)
    assert result.started == since
    assert len(result.alerts) == 1 and result.alerts[0].at > STORY_START
    # Without history, the detector is still warming up (3 h) when the story breaks.
    cold = backtest_archive(archive_url, config, since=since, warm_up=False)
    assert all(s.at >= since for s in cold.signals)


# -- the command ------------------------------------------------------------------------------


def _run(args: list[str]) -> Any:
    # Wide enough for every column of the table to show whole.
    return CliRunner().invoke(backtest, args, catch_exceptions=False, env={"COLUMNS": "200"})


def test_cli_csv(archive_url: str) -> None:
    result = _run(["--archive", archive_url, "-c", str(DEMO_CONFIG), "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["alert"] for r in rows].count("new") == 1
    first = rows[0]
    assert first["brand"] == "larkspur" and first["brand_name"] == "Larkspur Airways"
    assert datetime.fromisoformat(first["time"]) > STORY_START
    assert first["example_url"].startswith("https://example.com/")
    assert float(first["score"]) >= 3.5
    assert "1 alert" in result.stderr


def test_cli_json(archive_url: str) -> None:
    result = _run(["--archive", archive_url, "-c", str(DEMO_CONFIG), "--format", "json",
                   "--window", "30m", "--bucket", "5m", "--cooldown", "2h",
                   "--complaint-threshold", "0.5"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["settings"] == {
        "threshold": 3.5, "min_count": 5, "window": "30m", "bucket": "5m", "cooldown": "2h",
        "complaint_threshold": 0.5,
    }
    assert doc["summary"]["alerts"] == 1
    assert doc["summary"]["alerts_by_brand"] == {"larkspur": 1}
    first = doc["alerts"][0]
    assert first["alert"] == "new" and first["incident"] == 1
    assert first["examples"][0]["url"] == first["top_example_url"]
    assert first["reasons"] and "complaints in 30 min" in first["reasons"][0]


def test_cli_threshold_table(archive_url: str) -> None:
    result = _run(["--archive", archive_url, "--threshold", "50"])
    assert result.exit_code == 0, result.output
    assert "No alerts would have fired." in result.stdout
    assert "0 alerts" in result.stdout


def test_cli_table_shows_the_alert(archive_url: str) -> None:
    result = _run(["--archive", archive_url, "-c", str(DEMO_CONFIG)])
    assert result.exit_code == 0, result.output
    assert "Larkspur Airways" in result.stdout and "#1 new" in result.stdout
    assert "1 alert" in result.stdout


def test_cli_replay_uses_the_configured_model(
    monkeypatch: pytest.MonkeyPatch, default_classifier: Any
) -> None:
    monkeypatch.setattr("monitor.daemon.app.load_model", lambda config: default_classifier)
    result = _run(["--replay", str(DEMO), "-c", str(DEMO_CONFIG), "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["summary"]["alerts"] == 1


def test_cli_errors_are_one_line(archive_url: str, tmp_path: Path) -> None:
    result = _run(["--archive", archive_url, "--window", "1m", "--bucket", "5m"])
    assert result.exit_code == 1
    assert result.stderr.startswith("uproar: error: invalid detection settings")
    result = _run(["--archive", f"sqlite:///{tmp_path / 'missing.db'}"])
    assert result.exit_code == 1 and "no archive file" in result.stderr
    result = _run(["--replay", str(DEMO), "-c", str(DEMO_CONFIG), "--brand", "nope"])
    assert result.exit_code == 1 and "not in the config" in result.stderr
    result = _run(["--replay", str(DEMO), "--archive", archive_url])
    assert result.exit_code == 2


def test_help_has_an_example() -> None:
    result = _run(["--help"])
    assert result.exit_code == 0
    assert "Example" in result.output
    assert "uproar backtest --replay monitor/demo/larkspur-cello.jsonl" in result.output
