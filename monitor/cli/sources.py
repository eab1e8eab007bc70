"""``uproar sources``: each source's health, read from the archive (works while the daemon
runs, from another shell or host): enabled, state, last success, last error, consecutive
failures, items in the last poll, next poll, and why a source is paused."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from connectors.base import format_time
from monitor.cli.common import CONFIG_OPTION
from monitor.clock import Clock, SystemClock
from monitor.daemon.source_health import SourceHealth, load_health

# A poll this much overdue means no daemon is polling: `uproar sources` says the state is stale.
STALE_AFTER = timedelta(minutes=5)


@dataclass(slots=True)
class SourceRow:
    source: str
    enabled: bool | None  # None: not in the config (or no config was read)
    state: str  # ok | failing | paused | not polled yet | disabled
    health: SourceHealth | None
    stale: bool = False  # saved by a daemon that has stopped (or stopped saving)


def daemon_status(saved: list[SourceHealth], now: datetime) -> str | None:
    """None while a daemon polls; else one line saying it stopped, or since when its saved
    state is stale."""
    polled = [h for h in saved if h.last_poll_at is not None]
    if not polled:
        return None
    last = max(h.updated_at for h in polled)
    when = f"{format_time(last)} ({ago(last, now)})"
    if all(h.next_poll_at is None for h in polled):
        return f"the daemon is not running: it stopped at {when}; states are as it left them"
    if all(h.next_poll_at is None or h.next_poll_at + STALE_AFTER < now for h in polled):
        return (f"the daemon is not running, or its state is stale since {when}: no poll it "
                "planned has happened; states are as it last saved them")
    return None


def source_rows(enabled: dict[str, bool], saved: list[SourceHealth]) -> list[SourceRow]:
    """Configured sources in config order, then sources only the archive knows."""
    by_name = {h.source: h for h in saved}
    rows = []
    for name in [*enabled, *(n for n in by_name if n not in enabled)]:
        health = by_name.get(name)
        on = enabled.get(name)
        rows.append(SourceRow(name, on, _state(on, health), health))
    return rows


def _state(enabled: bool | None, health: SourceHealth | None) -> str:
    if enabled is False:
        return "disabled"
    if health is None or health.last_poll_at is None:
        return "not polled yet"
    if health.paused:
        return "paused"
    return "failing" if health.consecutive_failures else "ok"


def mark_stale(rows: list[SourceRow]) -> None:
    for row in rows:
        row.stale = row.health is not None and row.state != "disabled"


def row_json(row: SourceRow) -> dict[str, Any]:
    h = row.health

    def when(value: datetime | None) -> str | None:
        return format_time(value) if value is not None else None

    return {
        "source": row.source,
        "enabled": row.enabled,
        "state": row.state,
        "last_poll": when(h.last_poll_at) if h else None,
        "last_success": when(h.last_success_at) if h else None,
        "last_error": h.last_error if h else None,
        "last_error_at": when(h.last_error_at) if h else None,
        "consecutive_failures": h.consecutive_failures if h else 0,
        "items_last_poll": h.items_last_poll if h else None,
        "next_poll": when(h.next_poll_at) if h and not row.stale else None,
        "paused": h.paused if h else None,
        "stale": row.stale,
    }


def ago(value: datetime | None, now: datetime) -> str:
    """``3m ago`` / ``in 4m`` / ``-``, to the largest whole unit."""
    if value is None:
        return "-"
    delta = now - value
    future = delta < timedelta(0)
    seconds = int(abs(delta.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            text = f"{seconds // size}{unit}"
            break
    else:
        text = f"{seconds}s"
    return f"in {text}" if future else f"{text} ago"


_STYLES = {"ok": "green", "failing": "yellow", "paused": "bold red", "disabled": "dim",
           "not polled yet": "dim"}


def print_table(rows: list[SourceRow], now: datetime) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from monitor.untrusted import displayable

    table = Table(title="Uproar sources", title_justify="left")
    for column in ("source", "enabled", "state", "last success", "failures", "items",
                   "next poll", "last error / why paused"):
        table.add_column(column, overflow="fold")
    for row in rows:
        h = row.health
        why = (h.paused or h.last_error or "") if h and row.state in ("paused", "failing") else ""
        state = f"[{_STYLES[row.state]}]{row.state}[/]" + (" [dim](stale)[/]" if row.stale else "")
        table.add_row(
            row.source,
            {True: "yes", False: "no", None: "?"}[row.enabled],
            state,
            ago(h.last_success_at, now) if h else "-",
            str(h.consecutive_failures) if h else "0",
            str(h.items_last_poll) if h and h.items_last_poll is not None else "-",
            ago(h.next_poll_at, now) if h and row.state != "disabled" and not row.stale else "-",
            # Error text can hold text from the internet: no markup, escapes or bidi from it.
            escape(displayable(why, one_line=True)),
        )
    Console(width=160).print(table)


@click.command("sources")
@CONFIG_OPTION
@click.option("--archive", "archive_url", default=None, metavar="URL",
              help="Archive to read (default: archive.url from the config).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="json: one array of objects, times in UTC ISO-8601.")
@click.pass_context
def sources(ctx: click.Context, config_path: Path, archive_url: str | None, fmt: str) -> None:
    """Show each source's health, as the running daemon last saved it in the archive:
    enabled, state (ok, failing, paused, disabled), last success, consecutive failures,
    items in the last poll, next poll, and the last error or why the source is paused.
    When the daemon has stopped (or its saved state is stale), it says so first.

    \b
    Example:
      uproar sources -c /etc/uproar/config.yaml
      uproar sources --format json | jq '.[] | select(.state != "ok")'
    """
    from monitor.cli.analyst import open_archive

    enabled: dict[str, bool] = {}
    explicit = ctx.get_parameter_source("config_path") not in (
        click.core.ParameterSource.DEFAULT, None)
    if archive_url is None or explicit or config_path.is_file():
        from monitor.config import load_config

        config = load_config(config_path).config
        enabled = {name: s.enabled for name, s in config.sources.all().items()}
    with open_archive(ctx, config_path, archive_url) as (archive, _threshold):
        saved = load_health(archive.engine)
    rows = source_rows(enabled, saved)
    clock = ctx.obj if isinstance(ctx.obj, Clock) else SystemClock()
    now = clock.now()
    status = daemon_status(saved, now)
    if status is not None:
        mark_stale(rows)
        click.echo(f"uproar: {status}", err=True)
    if fmt == "json":
        click.echo(json.dumps([row_json(r) for r in rows], ensure_ascii=False, indent=2))
    else:
        print_table(rows, now)
