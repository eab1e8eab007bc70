"""``uproar maintain``: retention and database upkeep, run daily (systemd timer or cron)."""

from __future__ import annotations

from pathlib import Path

import click

from monitor.cli.common import CONFIG_OPTION
from monitor.clock import Clock, SystemClock


@click.command("maintain")
@CONFIG_OPTION
@click.option(
    "--archive",
    "archive_url",
    default=None,
    metavar="URL",
    help="Archive to maintain (default: archive.url from the config).",
)
@click.option(
    "--vacuum",
    is_flag=True,
    help="SQLite: rewrite the file once (VACUUM) and switch it to incremental vacuum, so later "
    "runs return freed pages. Needs free disk space the size of the file; pauses writers.",
)
def maintain(config_path: Path, archive_url: str | None, vacuum: bool) -> None:
    """Apply archive.retention (clear raw payloads, delete mentions past their retention;
    hourly and daily volume is kept), copy the brands' own handles for the
    incident_response_times view, then tidy the database: SQLite incremental vacuum, FTS5
    merge and PRAGMA optimize; PostgreSQL VACUUM ANALYZE. Safe while the daemon runs: work
    is done in short transactions. Run it daily.

    \b
    Examples:
      uproar maintain -c /etc/uproar/config.yaml
      uproar maintain -c config.yaml --vacuum   # once, for an archive made before 0.2
    """
    from monitor.archive import Archive
    from monitor.archive.retention import RetentionPolicy
    from monitor.archive.retention import maintain as run_maintenance
    from monitor.config import load_config

    config = load_config(config_path).config
    retention = config.archive.retention
    policy = RetentionPolicy(raw_payloads=retention.raw_payloads, mentions=retention.mentions)
    ctx = click.get_current_context()
    clock = ctx.obj if isinstance(ctx.obj, Clock) else SystemClock()
    handles = {brand.key: list(brand.handles) for brand in config.brands}
    with Archive(archive_url or config.archive.url) as archive:
        report = run_maintenance(archive, policy, clock.now(), handles=handles, full_vacuum=vacuum)
    click.echo(
        f"cleared {report.raw_cleared} raw payloads, deleted {report.mentions_deleted} mentions, "
        f"freed {report.pages_freed} pages"
    )
    for step in report.steps:
        click.echo(f"  {step}")
