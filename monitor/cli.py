"""The `uproar` command line. The only place errors become one-line messages and exit codes."""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from monitor import __version__
from monitor.cli_common import CONFIG_OPTION, UproarGroup
from monitor.errors import ConfigError

if TYPE_CHECKING:
    from monitor.config import Config


def setup_logging(
    level: str = "INFO", config: Config | None = None, fmt: str | None = None
) -> None:
    """Plain or JSON lines on stderr (``logging.format``, or ``fmt``); ``config``'s secrets and
    anything shaped like a credential are redacted (``monitor.logging_setup``)."""
    from monitor.logging_setup import config_secrets, configure

    chosen = fmt or (config.logging.format if config is not None else "plain")
    secrets = config_secrets(config) if config is not None else ()
    configure(level, "json" if chosen == "json" else "plain", secrets)


@click.group(cls=UproarGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="uproar")
def cli() -> None:
    """Uproar listens for your brand's names, recognises complaints, notices when one starts to
    spread, and alerts the PR team in Slack.

    \b
    Start here:
      uproar check-config -c config.yaml
      uproar replay monitor/demo/larkspur-cello.jsonl -c monitor/demo/config.yaml
      uproar run -c config.yaml
    """


@cli.command("check-config")
@CONFIG_OPTION
@click.option("--explain", default=None, metavar="KEY=VALUE,...",
              help="Also show which route, policy and quiet hours a sample alert would take.")
def check_config(config_path: Path, explain: str | None) -> None:
    """Validate a config file: print every problem with its YAML path and line (exit 1), or a
    summary of brands, sources, schedules and where alerts go.

    \b
    Example:
      uproar check-config -c /etc/uproar/config.yaml
      uproar check-config -c config.yaml --explain brand=united,severity=warning,source=twitter
    """
    from monitor.config import load_config
    from monitor.sources import source_problems
    from monitor.summary import summarize

    loaded = load_config(config_path)
    problems = source_problems(loaded.config)
    if problems:
        raise ConfigError(problems, str(config_path))
    for line in summarize(loaded):
        click.echo(line)
    if explain is not None:
        from monitor.cli_alerts import explain_route

        for line in explain_route(loaded.config, explain):
            click.echo(line)


@cli.command("run")
@CONFIG_OPTION
@click.option("--log-format", type=click.Choice(["plain", "json"]), default=None,
              help="Log lines as plain text or JSON objects (default: logging.format).")
def run(config_path: Path, log_format: str | None) -> None:
    """Run the daemon: poll every enabled source on its schedule, classify, archive, detect
    spikes and alert. Stops cleanly on SIGTERM or Ctrl-C (the current batch is finished);
    SIGHUP reloads the config file (an invalid one is logged and the old config keeps running).

    \b
    Example:
      uproar run -c config.yaml
      uproar run -c config.yaml --log-format json
      systemctl reload uproar     # sends SIGHUP
    """
    from monitor.app import build_app, load_model
    from monitor.clock import SystemClock
    from monitor.config import load_config
    from monitor.daemon import Daemon, SignalBox
    from monitor.sources import source_problems

    loaded = load_config(config_path)
    problems = source_problems(loaded.config)
    if problems:
        raise ConfigError(problems, str(config_path))
    setup_logging(loaded.config.logging.level, loaded.config, log_format)
    log = logging.getLogger("uproar")
    clock = SystemClock()
    model = None
    model_spec = ""
    signals = SignalBox()
    signals.install()
    try:
        while True:
            if model is None or model_spec != loaded.config.classifier.model:
                log.info("loading classifier %s", loaded.config.classifier.model)
                model = load_model(loaded.config)
                model_spec = loaded.config.classifier.model
            app = build_app(loaded.config, clock, classifier=model, console=sys.stderr)
            try:
                daemon = Daemon(app)
            except BaseException:
                app.close()
                raise
            if daemon.run_forever(signals) != "reload":
                return
            try:
                candidate = load_config(config_path)
                problems = source_problems(candidate.config)
                if problems:
                    raise ConfigError(problems, str(config_path))
            except ConfigError as exc:
                log.error(
                    "reload refused, keeping the running config: %s", "; ".join(exc.problems)
                )
            else:
                loaded = candidate
                setup_logging(loaded.config.logging.level, loaded.config, log_format)
                log.info("config reloaded from %s", config_path)
            if not signals.rearm():
                return
    finally:
        signals.restore()


@cli.command("poll")
@CONFIG_OPTION
@click.option("--source", "source", default=None, help="Poll only this source (e.g. rss).")
@click.option("--dry-run", is_flag=True, help="Store nothing and alert nothing; just print.")
def poll(config_path: Path, source: str | None, dry_run: bool) -> None:
    """Poll each enabled source (or one) once now and print the new mentions as JSON lines.

    \b
    Example:
      uproar poll -c config.yaml --source rss --dry-run | head
    """
    from monitor.app import build_app
    from monitor.clock import SystemClock
    from monitor.config import load_config
    from monitor.runner import SourceRunner
    from monitor.sources import brand_queries, enabled_connectors

    loaded = load_config(config_path)
    setup_logging(loaded.config.logging.level, loaded.config)
    connectors = enabled_connectors(loaded.config, source)
    clock = SystemClock()
    app = build_app(loaded.config, clock, console=sys.stderr)
    failed = 0
    try:
        for name, connector in connectors.items():
            settings = getattr(loaded.config.sources, name)
            runner = SourceRunner(
                name, connector, app.pipeline, brand_queries(loaded.config), clock,
                settings.every, settings.lookback,
            )
            outcome = runner.poll_once(dry_run=dry_run, force=True)
            failed += not outcome.ok
            for mention in outcome.mentions:
                click.echo(json.dumps(mention.to_json(), ensure_ascii=False))
            connector.close()
        if not dry_run:
            app.pipeline.evaluate()
            report = app.pipeline.deliver()
            for failure in report.failures:
                click.echo(f"uproar: alert not delivered: {failure.error}", err=True)
    finally:
        app.close()
    if failed:
        raise click.exceptions.Exit(1)


@cli.command("replay")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@CONFIG_OPTION
@click.option("--speed", type=float, default=None,
              help="Simulated seconds per real second (e.g. 600: ten minutes a second).")
@click.option("--instant", is_flag=True, help="As fast as possible (the default).")
@click.option("--archive", "archive_url", default=None,
              help="Archive URL to replay into (default: a temporary SQLite file, deleted after).")
def replay_cmd(
    file: Path, config_path: Path, speed: float | None, instant: bool, archive_url: str | None
) -> None:
    """Replay recorded mentions (JSON lines) through the whole pipeline on a simulated clock,
    and wait until every alert it raised has been delivered.

    \b
    Example:
      uproar replay monitor/demo/larkspur-cello.jsonl -c monitor/demo/config.yaml
      uproar replay recorded.jsonl -c config.yaml --speed 600 --archive sqlite:///replay.db
    """
    from rich.progress import Progress

    from monitor.app import build_app
    from monitor.clock import SimulatedClock
    from monitor.config import load_config
    from monitor.replay import read_mentions, replay

    if instant and speed:
        raise click.UsageError("choose --speed N or --instant, not both")
    loaded = load_config(config_path)
    setup_logging("WARNING", loaded.config)
    mentions, bad = read_mentions(file)
    for line in bad:
        click.echo(f"uproar: skipped {line}", err=True)
    if not mentions:
        raise click.ClickException(f"{file}: no mentions to replay")
    clock = SimulatedClock(mentions[0].created_at)
    with tempfile.TemporaryDirectory(prefix="uproar-replay-") as tmp:
        url = archive_url or f"sqlite:///{tmp}/replay.db"
        app = build_app(loaded.config, clock, archive_url=url, console=sys.stdout)
        detection = loaded.config.detection
        try:
            with Progress(transient=True, console=_stderr_console()) as progress:
                task = progress.add_task("replaying", total=len(mentions))
                report = replay(
                    mentions,
                    app.pipeline,
                    clock,
                    bucket=detection.bucket,
                    tail=detection.window + detection.bucket,
                    speed=None if instant else speed,
                    progress=lambda n: progress.advance(task, n),
                )
        finally:
            app.close()
    click.echo(
        f"replayed {report.mentions} mentions ({report.new} new, {report.duplicates} duplicates, "
        f"{report.unmatched} matched no brand) from {report.started:%Y-%m-%d %H:%M} to "
        f"{report.ended:%Y-%m-%d %H:%M} UTC; {report.signals} signals, {report.sent} messages "
        f"sent to {app.alert_target}",
        err=True,
    )
    if report.failed:
        for failure in report.failed:
            click.echo(f"uproar: alert not delivered: {failure}", err=True)
        raise click.exceptions.Exit(1)


def _stderr_console():  # type: ignore[no-untyped-def]
    from rich.console import Console

    return Console(stderr=True)


def _register_optional() -> None:
    """Commands that live in their own modules."""
    from monitor.cli_alerts import alerts
    from monitor.cli_analyst import export, query, stats
    from monitor.cli_backtest import backtest
    from monitor.cli_classify import classify, train
    from monitor.cli_detect import detect
    from monitor.cli_maintain import maintain
    from monitor.cli_migrate import migrate
    from monitor.cli_serve import serve

    for command in (classify, train, detect, query, stats, export, backtest, serve, alerts):
        cli.add_command(command)
    from monitor.cli_group import group
    from monitor.cli_sources import sources
    from monitor.cli_stories import stories

    cli.add_command(sources)
    cli.add_command(stories)
    cli.add_command(group)
    cli.add_command(maintain)
    cli.add_command(migrate)


_register_optional()


def main() -> None:
    cli(prog_name="uproar")


if __name__ == "__main__":
    main()
