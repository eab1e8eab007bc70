"""The `uproar` command line. The only place errors become one-line messages and exit codes.

Owns the ``uproar`` group and its core commands (``check-config``, ``run``, ``poll``, ``replay``);
every other command family is a module here (``classify``, ``detect``, ``analyst``, ...) listed in
``cli.lazy_commands``, and what only commands use (``summary``, ``compare``, ``classify_input``).
May import anything in ``monitor``, ``connectors`` and ``models``; nothing imports it (it is the
top: checked by ``lint-imports``).
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from monitor import __version__
from monitor.cli.common import CONFIG_OPTION, UproarGroup
from monitor.errors import ConfigError

if TYPE_CHECKING:
    from connectors.base import Mention
    from monitor.config import Config, LoadedConfig


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
    from monitor.cli.summary import summarize
    from monitor.config import load_config
    from monitor.daemon.sources import source_problems

    loaded = load_config(config_path)
    problems = loaded.located(source_problems(loaded.config))
    if problems:
        raise ConfigError(problems, str(config_path))
    for line in summarize(loaded):
        click.echo(line)
    if explain is not None:
        from monitor.cli.alerts import explain_route

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
    from monitor.clock import SystemClock
    from monitor.config import load_config
    from monitor.daemon.app import build_app, load_model
    from monitor.daemon.loop import Daemon, SignalBox
    from monitor.daemon.sources import source_problems

    loaded = load_config(config_path)
    problems = loaded.located(source_problems(loaded.config))
    if problems:
        raise ConfigError(problems, str(config_path))
    setup_logging(loaded.config.logging.level, loaded.config, log_format)
    log = logging.getLogger("uproar")
    clock = SystemClock()
    model = None
    model_spec = ""
    signals = SignalBox()
    signals.install()
    pending: list[LoadedConfig] = []

    def reread() -> Config | None:
        """The config file anew, or None (the refusal logged) to keep the running one."""
        try:
            candidate = load_config(config_path)
            problems = candidate.located(source_problems(candidate.config))
            if problems:
                raise ConfigError(problems, str(config_path))
        except ConfigError as exc:
            log.error("reload refused, keeping the running config: %s", "; ".join(exc.problems))
            return None
        pending[:] = [candidate]
        if candidate.config.logging != loaded.config.logging:
            setup_logging(candidate.config.logging.level, candidate.config, log_format)
            log.info("logging: %s, %s", candidate.config.logging.level,
                     log_format or candidate.config.logging.format)
        return candidate.config

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
            if daemon.run_forever(signals, reload=reread) != "reload":
                return
            # More than sources' settings changed: everything restarts on the new config.
            loaded = pending[0]
            setup_logging(loaded.config.logging.level, loaded.config, log_format)
            log.info("config reloaded from %s: restarting every job", config_path)
            if not signals.rearm():
                return
    finally:
        signals.restore()


@cli.command("poll")
@CONFIG_OPTION
@click.option("--source", "source", default=None, help="Poll only this source (e.g. rss).")
@click.option("--dry-run", is_flag=True,
              help="Store nothing, alert nothing, create nothing; just print.")
def poll(config_path: Path, source: str | None, dry_run: bool) -> None:
    """Poll each enabled source (or one) once now and print the new mentions as JSON lines;
    a source that fails prints each cause (every failing feed) on stderr and exits 1.

    \b
    Example:
      uproar poll -c config.yaml --source rss --dry-run | head
    """
    from monitor.config import load_config

    loaded = load_config(config_path)
    setup_logging(loaded.config.logging.level, loaded.config)
    if not dry_run:
        _poll(loaded.config, source, dry_run, None)
        return
    # A dry run reads the archive only to tell new from known (read-only), and never creates
    # one: without an archive file, everything fetched is new, judged in a throw-away one.
    from monitor.cli.analyst import read_only_url
    from monitor.errors import UproarError

    try:
        url = read_only_url(loaded.config.archive.url)
    except UproarError:  # no archive file yet
        with tempfile.TemporaryDirectory(prefix="uproar-poll-") as tmp:
            _poll(loaded.config, source, dry_run, f"sqlite:///{tmp}/dry-run.db")
        return
    _poll(loaded.config, source, dry_run, url)


def _poll(config: Config, source: str | None, dry_run: bool, archive_url: str | None) -> None:
    from monitor.clock import SystemClock
    from monitor.daemon.app import build_app
    from monitor.daemon.runner import SourceRunner
    from monitor.daemon.sources import brand_queries, enabled_connectors

    loaded = config
    connectors = enabled_connectors(config, source)
    clock = SystemClock()
    app = build_app(config, clock, archive_url=archive_url, console=sys.stderr)
    failed = 0
    try:
        for name, connector in connectors.items():
            settings = getattr(loaded.sources, name)
            runner = SourceRunner(
                name, connector, app.pipeline, brand_queries(loaded), clock,
                settings.every, settings.lookback, persist_health=not dry_run,
            )
            outcome = runner.poll_once(dry_run=dry_run, force=True)
            failed += not outcome.ok
            if not outcome.ok:
                for problem in outcome.problems:
                    click.echo(f"uproar: {name}: {problem}", err=True)
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
@click.option("--archive", "archive_url", default=None, metavar="URL",
              help="Archive URL to replay into (default: archive.url from the config).")
@click.option("--throwaway", is_flag=True,
              help="Replay into a temporary archive that is deleted afterwards.")
@click.option("--force", is_flag=True,
              help="Replay even into an archive that holds mentions polled live.")
@click.option("--lenient", is_flag=True,
              help="Exit 0 even when bad lines were skipped (they are still named).")
def replay_cmd(
    file: Path, config_path: Path, speed: float | None, instant: bool, archive_url: str | None,
    throwaway: bool, force: bool, lenient: bool,
) -> None:
    """Replay recorded mentions (JSON lines) through the whole pipeline on a simulated clock,
    store them in the config's archive (or --archive), and wait until every alert it raised has
    been delivered. Bad lines are named and skipped (exit 1 unless --lenient).

    \b
    Example:
      uproar replay monitor/demo/larkspur-cello.jsonl -c monitor/demo/config.yaml
      uproar query cello -c monitor/demo/config.yaml      # then look at what it stored
      uproar replay recorded.jsonl -c config.yaml --speed 600 --archive sqlite:///replay.db
      uproar replay recorded.jsonl -c config.yaml --throwaway
    """
    from monitor.config import load_config
    from monitor.replay import read_mentions

    if instant and speed:
        raise click.UsageError("choose --speed N or --instant, not both")
    if throwaway and archive_url:
        raise click.UsageError("choose --archive URL or --throwaway, not both")
    loaded = load_config(config_path)
    setup_logging("WARNING", loaded.config)
    mentions, bad = read_mentions(file)
    for line in bad:
        click.echo(f"uproar: skipped {line}", err=True)
    if not mentions:
        raise click.ClickException(f"{file}: no mentions to replay")
    if throwaway:
        with tempfile.TemporaryDirectory(prefix="uproar-replay-") as tmp:
            _replay_into(loaded.config, mentions, f"sqlite:///{tmp}/replay.db", speed, instant,
                         bad, lenient, look=None)
        return
    url = archive_url or loaded.config.archive.url
    if not force:
        _refuse_live_archive(url, config_path if archive_url is None else None)
    look = f"--archive '{archive_url}'" if archive_url else f"-c {config_path}"
    _replay_into(loaded.config, mentions, url, speed, instant, bad, lenient, look=look)


def _refuse_live_archive(url: str, config_path: Path | None) -> None:
    """Recorded mentions mixed into a live archive would distort its baselines and alerts."""
    from monitor.archive import Archive
    from monitor.replay import archive_place, live_sources

    with Archive(url) as archive:
        polled = live_sources(archive)
    if polled:
        where = f"archive.url of {config_path}" if config_path else "--archive"
        raise click.ClickException(
            f"{archive_place(url)} ({where}) holds mentions polled live from "
            f"{', '.join(polled)}; replaying recorded mentions into it would mix them in: "
            "pass --force to do it anyway, --archive URL for another archive, or --throwaway"
        )


def _replay_into(
    config: Config, mentions: list[Mention], url: str, speed: float | None, instant: bool,
    bad: list[str], lenient: bool, *, look: str | None,
) -> None:
    """Replay into ``url``; ``look``: the options that show that archive (None: thrown away)."""
    from rich.progress import Progress

    from monitor.clock import SimulatedClock
    from monitor.daemon.app import build_app
    from monitor.replay import archive_place, replay

    clock = SimulatedClock(mentions[0].created_at)
    app = build_app(config, clock, archive_url=url, console=sys.stdout)
    detection = config.detection
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
    skipped = f"; {len(bad)} bad lines skipped" if bad else ""
    click.echo(
        f"replayed {report.mentions} mentions ({report.new} new, {report.duplicates} duplicates, "
        f"{report.unmatched} matched no brand{skipped}) from {report.started:%Y-%m-%d %H:%M} to "
        f"{report.ended:%Y-%m-%d %H:%M} UTC; {report.signals} signals, {report.sent} messages "
        f"sent to {app.alert_target}",
        err=True,
    )
    if report.new == 0 and report.duplicates:
        click.echo("every mention was already in the archive: nothing new to alert on", err=True)
    if look is None:
        click.echo("nothing kept (--throwaway)", err=True)
    else:
        since = f"--since {report.started - timedelta(days=1):%Y-%m-%d}"  # the replayed days
        click.echo(f"stored in {archive_place(url)} (see: uproar stories {look} {since}; "
                   f"uproar stats {look} {since})", err=True)
    if report.failed:
        for failure in report.failed:
            click.echo(f"uproar: alert not delivered: {failure}", err=True)
        raise click.exceptions.Exit(1)
    if bad and not lenient:
        raise click.exceptions.Exit(1)


def _stderr_console():  # type: ignore[no-untyped-def]
    from rich.console import Console

    return Console(stderr=True)


# Commands that live in their own modules, imported only when they run (or when --help lists
# them): `uproar detect` on a small file should not pay for SQLAlchemy, FastAPI and torch.
cli.lazy_commands.update(
    {
        "classify": "monitor.cli.classify:classify",
        "train": "monitor.cli.classify:train",
        "detect": "monitor.cli.detect:detect",
        "query": "monitor.cli.analyst:query",
        "stats": "monitor.cli.analyst:stats",
        "export": "monitor.cli.analyst:export",
        "backtest": "monitor.cli.backtest:backtest",
        "serve": "monitor.cli.serve:serve",
        "alerts": "monitor.cli.alerts:alerts",
        "sources": "monitor.cli.sources:sources",
        "stories": "monitor.cli.stories:stories",
        "group": "monitor.cli.group:group",
        "maintain": "monitor.cli.maintain:maintain",
        "migrate": "monitor.cli.migrate:migrate",
    }
)


def main() -> None:
    cli(prog_name="uproar")

