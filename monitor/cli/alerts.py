"""`uproar alerts`: list, acknowledge, resolve and silence alerts from the shell.

Everything goes through the archive named in the config, so these commands work while a daemon
runs: an acknowledgement stops its escalation, and the daemon posts the thread reply and updates
the Slack message on its next delivery round.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from monitor.cli.common import CONFIG_OPTION
from monitor.errors import UproarError
from monitor.untrusted import displayable


@contextmanager
def _book(config_path: Path) -> Iterator[Any]:
    from monitor.alerts.incidents import IncidentBook
    from monitor.alerts.rules import Router
    from monitor.archive import Archive
    from monitor.clock import SystemClock
    from monitor.config import load_config

    config = load_config(config_path).config
    slack = config.alerts.slack
    archive = Archive(config.archive.url)
    try:
        yield IncidentBook(
            archive.engine,
            SystemClock(),
            target="slack" if slack.token else "console",
            router=Router(config.alerts, slack.channel),
        )
    finally:
        archive.close()


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M}"


@click.group("alerts")
def alerts() -> None:
    """List, acknowledge, resolve and silence alerts (works while the daemon runs).

    \b
    Example:
      uproar alerts list -c config.yaml
      uproar alerts ack 12 --by dave
      uproar alerts silence --brand united --for 2h --reason "known outage, statement out"
    """


@alerts.command("list")
@CONFIG_OPTION
@click.option("--all", "show_all", is_flag=True, help="Include resolved incidents.")
@click.option("--limit", default=50, show_default=True, help="Show at most this many.")
def list_cmd(config_path: Path, show_all: bool, limit: int) -> None:
    """List incidents, newest first: status, severity, escalation level and who acknowledged.

    \b
    Example:
      uproar alerts list -c config.yaml --all
    """
    from monitor.archive import schema

    with _book(config_path) as book:
        t, e = schema.incidents, schema.escalations
        query = select(t).order_by(t.c.id.desc()).limit(limit)
        if not show_all:
            query = query.where(t.c.status != "resolved")
        with book.engine.connect() as conn:
            rows = list(conn.execute(query).mappings())
            levels = {
                r.incident_id: r
                for r in conn.execute(select(e.c.incident_id, e.c.level, e.c.status, e.c.next_at))
            }
    if not rows:
        click.echo("no open incidents" if not show_all else "no incidents")
        return
    click.echo(f"{'ID':>5}  {'STATUS':<12} {'SEVERITY':<9} {'BRAND':<14} {'OPENED (UTC)':<17} NOTE")
    for row in rows:
        state = row["state"] or {}
        route = state.get("route") or {}
        note = ""
        if route.get("muted"):
            note = f"muted: {route['muted']}"
        elif row["status"] == "acknowledged":
            note = f"by {row['acknowledged_by']} at {_when(row['acknowledged_at'])}"
        elif (esc := state.get("escalated")) and row["status"] == "open":
            note = f"escalated to level {esc.get('level')}"
        timer = levels.get(row["id"])
        if row["status"] == "open" and timer is not None and timer.status == "active":
            note = (note + "; " if note else "") + f"next level at {_when(timer.next_at)}"
        elif row["status"] == "open" and timer is not None and timer.status == "waiting":
            note = (note + "; " if note else "") + "waiting to be posted"
        line = (
            f"{row['id']:>5}  {row['status']:<12} {row['severity']:<9} {row['brand']:<14} "
            f"{_when(row['opened_at']):<17} {note}"
        )
        click.echo(displayable(line, one_line=True).rstrip())  # names and reasons from outside


@alerts.command("ack")
@click.argument("incident_id", type=int)
@CONFIG_OPTION
@click.option("--by", default=None, help="Who acknowledges (default: your user name).")
def ack_cmd(incident_id: int, config_path: Path, by: str | None) -> None:
    """Acknowledge an incident: escalation stops, the Slack thread says who.

    \b
    Example:
      uproar alerts ack 12 -c config.yaml --by dave
    """
    with _book(config_path) as book:
        if book.acknowledge(incident_id, _who(by)):
            click.echo(f"incident #{incident_id} acknowledged; escalation stopped")
        else:
            click.echo(f"incident #{incident_id} was already acknowledged or resolved")


@alerts.command("resolve")
@click.argument("incident_id", type=int)
@CONFIG_OPTION
@click.option("--by", default=None, help="Who resolves (default: your user name).")
def resolve_cmd(incident_id: int, config_path: Path, by: str | None) -> None:
    """Resolve an incident: its thread is closed; a new spike later opens a new incident.

    \b
    Example:
      uproar alerts resolve 12 -c config.yaml
    """
    with _book(config_path) as book:
        if book.resolve(incident_id, _who(by)):
            click.echo(f"incident #{incident_id} resolved")
        else:
            click.echo(f"incident #{incident_id} was already resolved")


@alerts.command("silence")
@CONFIG_OPTION
@click.option("--brand", "brands", multiple=True, help="Brand key (repeat for several).")
@click.option("--severity", "severities", multiple=True,
              type=click.Choice(["info", "warning", "critical"]), help="Only these severities.")
@click.option("--signal", "signals", multiple=True, help="Only these signal kinds.")
@click.option("--source", "sources", multiple=True, help="Only alerts quoting these sources.")
@click.option("--for", "duration", required=True, help="How long, like 30m, 2h or 1d.")
@click.option("--reason", required=True, help="Why: shown to everyone who lists silences.")
@click.option("--by", default=None, help="Who silences (default: your user name).")
def silence_cmd(
    config_path: Path,
    brands: tuple[str, ...],
    severities: tuple[str, ...],
    signals: tuple[str, ...],
    sources: tuple[str, ...],
    duration: str,
    reason: str,
    by: str | None,
) -> None:
    """Silence matching alerts for a while: they are recorded but nothing is sent.

    \b
    Example:
      uproar alerts silence -c config.yaml --brand united --for 2h --reason "statement is out"
    """
    from monitor.alerts.rules import Matchers
    from monitor.alerts.silences import SilenceBook
    from monitor.durations import parse_duration

    try:
        length = parse_duration(duration)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--for") from exc
    if not (brands or severities or signals or sources):
        raise click.UsageError("say what to silence: --brand, --severity, --signal or --source")
    matchers = Matchers(
        brand=list(brands) or None,
        severity=list(severities) or None,
        signal=list(signals) or None,
        source=list(sources) or None,
    )
    with _book(config_path) as book:
        silence = SilenceBook(book.engine, book.clock).add(matchers, length, reason, _who(by))
    click.echo(
        f"silence #{silence.id}: {matchers.describe()} until {_when(silence.ends_at)} UTC "
        f"({silence.reason})"
    )


@alerts.command("silences")
@CONFIG_OPTION
@click.option("--all", "show_all", is_flag=True, help="Include ended silences.")
def silences_cmd(config_path: Path, show_all: bool) -> None:
    """List silences: those created here (with their ids) and those in the config.

    \b
    Example:
      uproar alerts silences -c config.yaml
    """
    from monitor.alerts.silences import SilenceBook
    from monitor.config import load_config

    configured = load_config(config_path).config.alerts.silences
    with _book(config_path) as book:
        found = SilenceBook(book.engine, book.clock).list(include_ended=show_all)
        now = book.clock.now()
    shown = [c for c in configured if show_all or c.until > now]
    if not found and not shown:
        click.echo("no silences")
        return
    for c in shown:
        state = "active" if c.until > now else "ended"
        line = f"config {state}: {c.match.describe()} until {_when(c.until)} UTC: {c.reason}"
        click.echo(displayable(line, one_line=True))
    for s in found:
        state = "active" if s.active(now) else "ended"
        line = (
            f"#{s.id} {state}: {s.matchers.describe()} until {_when(s.ends_at)} UTC, "
            f"by {s.created_by}: {s.reason}"
        )
        click.echo(displayable(line, one_line=True))


@alerts.command("unsilence")
@click.argument("silence_id", type=int)
@CONFIG_OPTION
def unsilence_cmd(silence_id: int, config_path: Path) -> None:
    """End a silence now.

    \b
    Example:
      uproar alerts unsilence 3 -c config.yaml
    """
    from monitor.alerts.silences import SilenceBook

    with _book(config_path) as book:
        silence = SilenceBook(book.engine, book.clock).end(silence_id)
    click.echo(f"silence #{silence.id} ended")


def explain_route(config: Any, facts_text: str) -> list[str]:
    """``check-config --explain``: how an alert with these facts would be routed now."""
    from monitor.alerts.rules import AlertFacts, Router

    try:
        facts = AlertFacts.parse(facts_text)
    except ValueError as exc:
        raise UproarError(f"--explain: {exc}") from exc
    brands = {b.key for b in config.brands}
    lines = ["", "routing:"]
    if facts.brand and facts.brand not in brands:
        known = ", ".join(sorted(brands))
        lines.append(f"  note: no brand {facts.brand!r} in this config ({known})")
    router = Router(config.alerts, config.alerts.slack.channel)
    lines.extend("  " + line for line in router.explain(facts, datetime.now(UTC)))
    return lines
