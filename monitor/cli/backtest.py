"""``uproar backtest``: the alerts the detector would have raised on history, with given settings.

Try it without the main group: ``python -m monitor.cli.backtest --replay FILE -c config.yaml``.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from models.base import ModelError
from monitor.cli.common import CONFIG_OPTION
from monitor.errors import ConfigError, UproarError

if TYPE_CHECKING:
    from models.base import Classifier
    from monitor.backtest import BacktestResult
    from monitor.config import Config


class BacktestError(UproarError):
    """A backtest that cannot run; the message says what to change."""


class _Duration(click.ParamType):
    name = "duration"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        from monitor.durations import parse_duration

        try:
            duration = parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if duration <= timedelta(0):
            self.fail(f"must be longer than zero, got {value!r}", param, ctx)
        return duration


class _OneLineErrors(click.Command):
    """Uproar's typed errors as one clear line and exit code 1, also outside the `uproar` group
    (the group does the same; whichever catches first prints the same thing)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            click.echo(f"uproar: {exc.source}: invalid configuration:", err=True)
            for problem in exc.problems:
                click.echo(f"  {problem}", err=True)
            ctx.exit(1)
        except (UproarError, ModelError) as exc:
            first, *rest = str(exc).splitlines() or [""]
            click.echo(f"uproar: error: {first}", err=True)
            for line in rest:
                click.echo(f"  {line}", err=True)
            ctx.exit(1)


@click.command(
    "backtest",
    cls=_OneLineErrors,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
Examples:
  uproar backtest --replay monitor/demo/larkspur-cello.jsonl -c monitor/demo/config.yaml
  uproar backtest --since 30d --threshold 4.5 --min-count 8      # the config's archive
  uproar backtest --archive sqlite:///uproar.db --brand united --since 2026-03-01 \\
      --until 2026-04-01 --window 1h --cooldown 6h --format csv > alerts.csv
""",
)
@CONFIG_OPTION
@click.option("--archive", "archive_url", metavar="URL", default=None,
              help="Archive to read (default: archive.url from the config). Uses the stored "
                   "complaint probabilities; no model is loaded.")
@click.option("--replay", "replay_file", metavar="FILE.jsonl", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Recorded mentions (JSON lines) instead of the archive: matched to the "
                   "config's brands and classified with the configured model.")
@click.option("--brand", help="Only this brand key (default: every brand).")
@click.option("--since", help="From this time: 7d, 12h (ago) or 2026-03-01[T14:30Z].")
@click.option("--until", help="Before this time (exclusive), same forms as --since.")
@click.option("--threshold", type=float, default=None,
              help="Spike score (σ above the baseline) an alert needs  [config: preset's 3.5].")
@click.option("--min-count", type=click.IntRange(min=1), default=None,
              help="Fewest complaints in the window that can alert  [config: detection.min_count].")
@click.option("--window", type=_Duration(), default=None,
              help="Complaints are counted over this window, e.g. 30m  [config: detection.window].")
@click.option("--bucket", type=_Duration(), default=None,
              help="Detection runs every bucket, e.g. 5m  [config: detection.bucket].")
@click.option("--cooldown", type=_Duration(), default=None,
              help="Quiet time per brand after an alert, e.g. 2h  [config: detection.cooldown].")
@click.option("--complaint-threshold", type=click.FloatRange(0.0, 1.0), default=None,
              help="A mention is a complaint from this probability, e.g. 0.5  "
                   "[config: classifier.complaint_threshold].")
@click.option("--warm-up/--no-warm-up", default=True, show_default=True,
              help="With --since on the archive: first learn the baseline from the "
                   "detection.history before it, as the daemon does when it starts.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True,
              help="csv: one row per alert (the summary goes to stderr); json: one document "
                   "with settings, summary and alerts.")
@click.pass_context
def backtest(
    ctx: click.Context,
    config_path: Path,
    archive_url: str | None,
    replay_file: Path | None,
    brand: str | None,
    since: str | None,
    until: str | None,
    threshold: float | None,
    min_count: int | None,
    window: timedelta | None,
    bucket: timedelta | None,
    cooldown: timedelta | None,
    complaint_threshold: float | None,
    warm_up: bool,
    fmt: str,
) -> None:
    """Run the spike detector over the archive (or a replay file) with the config's detection
    settings, or the ones given here, and print which alerts would have fired, when and why.
    Nothing is stored and nothing is sent: tune the settings here before going live.
    """
    from monitor.analyst.filters import parse_time_bound
    from monitor.clock import Clock, SystemClock

    if archive_url is not None and replay_file is not None:
        raise click.UsageError("choose --archive URL or --replay FILE, not both")
    clock = ctx.obj if isinstance(ctx.obj, Clock) else SystemClock()
    now = clock.now()
    start = parse_time_bound(since, now, option="--since") if since else None
    end = parse_time_bound(until, now, option="--until") if until else None
    if start is not None and end is not None and start >= end:
        raise BacktestError("--since must be before --until")
    config = _load_config(ctx, config_path, needed=replay_file is not None or not archive_url)
    overrides: dict[str, Any] = dict(threshold=threshold, min_count=min_count, window=window,
                                     bucket=bucket, cooldown=cooldown)
    if replay_file is not None:
        assert config is not None
        result = backtest_replay(
            replay_file, config, brand=brand, since=start, until=end,
            complaint_threshold=complaint_threshold, **overrides,
        )
    else:
        url = archive_url or (config.archive.url if config else "")
        result = backtest_archive(
            url, config, brand=brand, since=start, until=end, warm_up=warm_up,
            complaint_threshold=complaint_threshold, **overrides,
        )
    _print(result, fmt)


# -- the two inputs ---------------------------------------------------------------------------


def backtest_replay(
    path: Path,
    config: Config,
    *,
    classifier: Classifier | None = None,
    brand: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    complaint_threshold: float | None = None,
    progress: bool = True,
    **overrides: Any,
) -> BacktestResult:
    """Backtest a JSONL file of mentions; ``classifier`` defaults to the configured model."""
    from rich.console import Console
    from rich.progress import Progress

    from monitor.backtest import classify_mentions, run_backtest
    from monitor.brands.query import BrandMatcher, parse_query
    from monitor.replay import read_mentions

    keys = _brand_keys(config, brand)
    settings = _settings(config, overrides)
    threshold = _first(complaint_threshold, config.classifier.complaint_threshold)
    mentions, bad = read_mentions(path)
    for line in bad:
        click.echo(f"uproar: skipped {line}", err=True)
    if not mentions:
        raise BacktestError(f"{path}: no mentions to backtest")
    mentions = [
        m for m in mentions
        if (since is None or m.created_at >= since) and (until is None or m.created_at < until)
    ]
    if classifier is None:
        from monitor.daemon.app import load_model

        classifier = load_model(config)
    matcher = BrandMatcher([(b.key, parse_query(b.query)) for b in config.brands])
    with Progress(transient=True, console=Console(stderr=True), disable=not progress) as bar:
        task = bar.add_task("classifying", total=len(mentions))
        items = classify_mentions(
            mentions, matcher, classifier, batch_size=config.classifier.batch_size,
            progress=lambda n: bar.advance(task, n),
        )
        bar.update(task, completed=len(mentions))
    names = {b.key: b.name for b in config.brands}
    return run_backtest(
        items, settings, complaint_threshold=threshold, brands=keys,
        brand_names=names, since=since, until=until,
        join_window=config.alerts.join_window,
        stories=_story_stage(config.detection, threshold, names, settings.min_count),
    )


def backtest_archive(
    url: str,
    config: Config | None,
    *,
    brand: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    complaint_threshold: float | None = None,
    warm_up: bool = True,
    **overrides: Any,
) -> BacktestResult:
    """Backtest the complaints stored in the archive at ``url`` (read-only for SQLite)."""
    from sqlalchemy.exc import SQLAlchemyError

    from monitor.archive import Archive
    from monitor.archive.engine import error_reason
    from monitor.backtest import (
        archive_brands,
        archive_complaints,
        archive_first_time,
        run_backtest,
        seed_from_archive,
    )
    from monitor.cli.analyst import read_only_url
    from monitor.config import AlertsConfig, ClassifierConfig, DetectionConfig
    from monitor.detect.brand import BrandMonitor

    settings = _settings(config, overrides)
    classifier_config = config.classifier if config else ClassifierConfig()
    detection = config.detection if config else DetectionConfig()
    threshold = _first(complaint_threshold, classifier_config.complaint_threshold)
    names = {b.key: b.name for b in config.brands} if config else {}
    with Archive(read_only_url(url)) as archive:
        try:
            if brand is not None:
                keys = [brand]
            elif config is not None:
                keys = [b.key for b in config.brands]
            else:
                keys = archive_brands(archive)
            monitor = BrandMonitor(settings)
            if since is not None and warm_up:
                seed_from_archive(monitor, archive, keys, before=since,
                                  history=detection.history, threshold=threshold)
            # The period starts with the history, not with its first complaint.
            start = since if since is not None else archive_first_time(archive, brand)
            result = run_backtest(
                archive_complaints(archive, threshold=threshold, brand=brand, since=since,
                                   until=until),
                settings, complaint_threshold=threshold, brands=keys, brand_names=names,
                since=start, until=until, monitor=monitor,
                join_window=(config.alerts if config else AlertsConfig()).join_window,
                stories=_story_stage(detection, threshold, names, settings.min_count),
            )
            # Only complaints were read; count every mention of the watched brands once.
            result.mentions = archive.count_mentions(brand=brand, since=since, until=until)
        except SQLAlchemyError as exc:
            raise BacktestError(f"reading archive at {archive.url} failed: {error_reason(exc)}") \
                from exc
    if brand is not None and brand not in names and config is not None:
        result.notes.append(f"brand {brand!r} is not in the config; showing its key as name")
    return result


# -- helpers ----------------------------------------------------------------------------------


def _story_stage(detection: Any, threshold: float, names: dict[str, str], min_count: int) -> Any:
    """Stories as the daemon groups them, by key phrases only: the archive mode has no model,
    and both modes must agree (the daemon also uses the classifier's embeddings)."""
    from monitor.detect.stage import build_story_stage
    from monitor.pipeline import example_of

    return build_story_stage(
        engine=None,
        classifier=None,
        example_of=example_of,
        complaint_threshold=threshold,
        brand_names=names,
        story_similarity=detection.story_similarity,
        high_reach_followers=detection.high_reach_followers,
        min_count=min_count,
    )


def _load_config(ctx: click.Context, path: Path, *, needed: bool) -> Config | None:
    """The config when it is needed, named with -c, or present; else ``None`` (defaults)."""
    from monitor.config import load_config

    explicit = ctx.get_parameter_source("config_path") not in (
        click.core.ParameterSource.DEFAULT,
        None,
    )
    if needed or explicit or path.is_file():
        return load_config(path).config
    return None


def _brand_keys(config: Config, brand: str | None) -> list[str]:
    keys = [b.key for b in config.brands]
    if brand is None:
        return keys
    if brand not in keys:
        raise BacktestError(f"--brand {brand!r} is not in the config; its brands are "
                            f"{', '.join(keys)}")
    return [brand]


def _settings(config: Config | None, overrides: dict[str, Any]):  # type: ignore[no-untyped-def]
    from monitor.backtest import override_settings
    from monitor.daemon.app import detection_settings
    from monitor.detect.brand import DetectionSettings

    base = detection_settings(config) if config is not None else DetectionSettings()
    try:
        return override_settings(base, **overrides)
    except ValueError as exc:
        raise BacktestError(f"invalid detection settings: {exc} (check --window and --bucket)") \
            from exc


def _first(*values: float | None) -> float:
    return next(v for v in values if v is not None)


def _print(result: BacktestResult, fmt: str) -> None:
    from monitor.backtest import render_table, write_csv, write_json

    if fmt == "csv":
        write_csv(result, sys.stdout)
        click.echo(result.summary(), err=True)
    elif fmt == "json":
        write_json(result, sys.stdout)
    else:
        from rich.console import Console

        render_table(result, Console())


def main() -> None:
    backtest(prog_name="python -m monitor.cli.backtest")


if __name__ == "__main__":
    main()
