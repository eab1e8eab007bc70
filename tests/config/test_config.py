"""Config loading: env expansion, durations, every problem with its YAML path and line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.config import load_config
from monitor.durations import format_duration, parse_duration
from monitor.errors import ConfigError
from tests.paths import ROOT

ROOT = ROOT

MINIMAL = """\
brands:
  - {key: united, name: United Airlines, query: '"united airlines" OR @united'}
archive: {url: "sqlite:///uproar.db"}
alerts:
  slack: {token: "${SLACK_BOT_TOKEN}", channel: "#brand-alerts", api_url: "https://slack.com/api/"}
http: {listen: "127.0.0.1:9464"}
sources:
  rss: {enabled: true, feeds: ["https://example.com/feed.xml"], every: 5m}
  twitter: {enabled: false, api_url: "https://api.twitter.com/", every: 5m}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("2h", 7200), ("7d", 604800), ("1h30m", 5400), ("500ms", 0.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_duration_round_trip_and_errors() -> None:
    assert format_duration(timedelta(minutes=90)) == "1h30m"
    for bad in ("5", "five minutes", "5 parsecs", 60, True):
        with pytest.raises(ValueError, match="duration like 90s"):
            parse_duration(bad)


def test_example_config_runs_without_credentials() -> None:
    loaded = load_config(ROOT / "config.yaml", environ={})
    config = loaded.config
    assert config.alerts.slack.token == ""
    assert "SLACK_BOT_TOKEN" in loaded.unset_vars
    assert list(config.sources.enabled()) == ["rss", "hackernews"]
    assert config.sources.rss.every == timedelta(minutes=5)


def test_minimal_config_with_only_design_keys(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, MINIMAL), environ={"SLACK_BOT_TOKEN": "xoxb-1"})
    assert loaded.config.alerts.slack.token == "xoxb-1"
    assert loaded.config.brands[0].name == "United Airlines"
    assert loaded.config.detection.window == timedelta(minutes=30)


def test_env_default_syntax(tmp_path: Path) -> None:
    text = MINIMAL.replace('"sqlite:///uproar.db"', '"${DB_URL:-sqlite:///fallback.db}"')
    assert load_config(write(tmp_path, text), environ={}).config.archive.url == (
        "sqlite:///fallback.db"
    )
    env = {"DB_URL": "sqlite:///x.db"}
    assert load_config(write(tmp_path, text), environ=env).config.archive.url == "sqlite:///x.db"


def test_every_problem_reported_with_path_and_line(tmp_path: Path) -> None:
    text = MINIMAL.replace("every: 5m}", "every: soon, colour: blue}", 1).replace(
        "key: united", "key: United Air"
    ).replace("'\"united airlines\" OR @united'", "'(united OR'")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), environ={})
    problems = "\n".join(info.value.problems)
    assert "brands[0].key (line 2)" in problems
    assert "brands[0].query (line 2)" in problems
    assert "position" in problems
    assert "sources.rss.every (line 8): expected a duration like 90s" in problems
    assert "sources.rss.colour (line 8): unknown key" in problems
    assert len(info.value.problems) == 4


def test_wrong_type_hint(tmp_path: Path) -> None:
    text = MINIMAL + "classifier: {batch_size: 'sixty'}\n"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), environ={})
    assert "classifier.batch_size (line 10)" in info.value.problems[0]


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "brands:\n  - key: [unclosed\n"), environ={})
    assert "line" in info.value.problems[0] and "YAML syntax error" in info.value.problems[0]


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cp config\.yaml"):
        load_config(tmp_path / "nope.yaml", environ={})


def test_check_config_cli_ok_and_failure(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["check-config", "-c", str(ROOT / "config.yaml")], env={
        "SLACK_BOT_TOKEN": ""})
    assert ok.exit_code == 0, ok.output
    assert "United Airlines" in ok.output
    assert "rss" in ok.output and "every 5m" in ok.output
    assert "printed to the console" in ok.output

    bad = write(tmp_path, MINIMAL.replace("every: 5m}", "every: 5}", 1) + "nonsense: 1\n")
    result = runner.invoke(cli, ["check-config", "-c", str(bad)])
    assert result.exit_code == 1
    assert "sources.rss.every (line 8)" in result.output
    assert "nonsense (line 10): unknown key" in result.output


def test_check_config_refuses_unavailable_source_and_missing_keys(tmp_path: Path) -> None:
    text = MINIMAL.replace("twitter: {enabled: false", "twitter: {enabled: true")
    text += "  youtube: {enabled: true}\n"
    result = CliRunner().invoke(
        cli, ["check-config", "-c", str(write(tmp_path, text))], env={"TWITTER_BEARER_TOKEN": ""}
    )
    assert result.exit_code == 1
    # The line of the source that misses its variable is named.
    assert "sources.twitter.bearer_token (line 9): twitter is enabled but has no bearer_token; " \
        "set TWITTER_BEARER_TOKEN" in result.output
    assert "sources.youtube.api_key (line 10): youtube is enabled but has no api_key" \
        in result.output


def test_check_config_prints_youtube_quota_cost(tmp_path: Path) -> None:
    text = MINIMAL + '  youtube: {enabled: true, every: 5m, api_key: "k"}\n'
    result = CliRunner().invoke(cli, ["check-config", "-c", str(write(tmp_path, text))])
    assert result.exit_code == 0, result.output
    assert "youtube: 1 searches every 5 min cost about 28,800 of 10,000 daily units (EXCEEDS" \
        in result.output


def test_source_urls_must_be_http(tmp_path: Path) -> None:
    text = MINIMAL + '  mastodon: {enabled: true, api_url: "ftp://x"}\n'
    result = CliRunner().invoke(cli, ["check-config", "-c", str(write(tmp_path, text))])
    assert result.exit_code == 1
    assert "sources.mastodon.api_url (line 10): expected an http" in result.output


# -- first-hour mistakes: each message names the right line and says what is allowed ----------


def check(tmp_path: Path, text: str) -> str:
    result = CliRunner().invoke(cli, ["check-config", "-c", str(write(tmp_path, text))])
    assert result.exit_code == 1, result.output
    return result.output


def test_a_bad_indentation_names_both_lines(tmp_path: Path) -> None:
    # `url` is indented too far; YAML's parser notices only at `retention`, the line after.
    text = MINIMAL.replace('archive: {url: "sqlite:///uproar.db"}',
                           'archive:\n    url: "sqlite:///uproar.db"\n  retention: 30d')
    out = check(tmp_path, text)
    assert "line 5: YAML syntax error: expected <block end>" in out
    assert "check the indentation of line 4 and line 5" in out


def test_a_tab_says_yaml_wants_spaces(tmp_path: Path) -> None:
    out = check(tmp_path, MINIMAL.replace("  rss:", "\trss:"))
    assert "line 8: YAML syntax error" in out and "YAML indents with spaces, not tabs" in out


def test_an_unclosed_quote_names_where_it_began(tmp_path: Path) -> None:
    out = check(tmp_path, MINIMAL + 'logging: {level: "INFO}\n')
    assert "line 11: YAML syntax error: found unexpected end of stream (while scanning a " \
        "quoted scalar that begins on line 10)" in out


def test_logging_level_lists_the_allowed_values(tmp_path: Path) -> None:
    out = check(tmp_path, MINIMAL + "logging: {level: LOUD}\n")
    assert "logging.level (line 10): expected one of DEBUG, INFO, WARNING, ERROR, got 'LOUD'" in out
    assert "pattern" not in out


def test_a_word_for_a_number_gets_no_quotes_hint(tmp_path: Path) -> None:
    out = check(tmp_path, MINIMAL + "detection:\n  min_count: five\n")
    assert "detection.min_count (line 11): expected a whole number like 5, got 'five'" in out
    assert "quotes" not in out


def test_a_misspelled_key_gets_a_did_you_mean(tmp_path: Path) -> None:
    out = check(tmp_path, MINIMAL.replace("every: 5m}", "evry: 5m}", 1) + "sorces: {}\n")
    assert "sources.rss.evry (line 8): unknown key (did you mean 'every'?)" in out
    assert "sorces (line 10): unknown key (did you mean 'sources'?)" in out


def test_unset_variables_are_named_with_their_line(tmp_path: Path) -> None:
    text = MINIMAL + "serve: {token: \"${UPROAR_SERVE_TOKEN}\"}\n"
    result = CliRunner().invoke(cli, ["check-config", "-c", str(write(tmp_path, text))],
                                env={"SLACK_BOT_TOKEN": "", "UPROAR_SERVE_TOKEN": ""})
    assert result.exit_code == 0, result.output
    assert "printed to the console (SLACK_BOT_TOKEN is not set; used on line 5)" in result.output
    assert "not set: UPROAR_SERVE_TOKEN (line 10)" in result.output


def test_a_self_referencing_alias_is_a_one_line_problem(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("brands:\n  - {key: a, name: A, query: a}\nclassifier:\n  model: &a [*a]\n")
    result = CliRunner().invoke(cli, ["check-config", "-c", str(path)])
    assert result.exit_code == 1 and not isinstance(result.exception, RecursionError)
    assert "classifier.model[0] (line 4): an alias refers to a value that contains it" in (
        result.output)
