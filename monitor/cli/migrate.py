"""``uproar migrate``: bring the archive's schema to this Uproar's revision (Alembic)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from monitor.cli.common import CONFIG_OPTION

if TYPE_CHECKING:
    from monitor.archive.migrate import StoredRevision


@click.command("migrate")
@CONFIG_OPTION
@click.option(
    "--archive",
    "archive_url",
    default=None,
    metavar="URL",
    help="Archive to migrate (default: archive.url from the config).",
)
@click.option(
    "--dry-run", is_flag=True, help="Only print the current and target revision and the steps."
)
def migrate(config_path: Path, archive_url: str | None, dry_run: bool) -> None:
    """Upgrade the archive's schema to the newest revision this Uproar knows, in one
    transaction: a failure changes nothing. Prints the current and target revision and each
    step. An archive made before the Alembic migrations is stamped at the revision of its old
    schema version first. The daemon and every command also do this when they open the
    archive; run it by hand to upgrade before a deploy, or to see what would change.

    \b
    Examples:
      uproar migrate -c /etc/uproar/config.yaml --dry-run
      uproar migrate --archive postgresql+psycopg://uproar@db/uproar
    """
    from sqlalchemy.exc import SQLAlchemyError

    from monitor.archive import migrate as migrations
    from monitor.archive.engine import build_engine, error_reason, redact
    from monitor.errors import ArchiveError

    if archive_url is None:
        from monitor.config import load_config

        archive_url = load_config(config_path).config.archive.url
    display = redact(archive_url)
    engine = build_engine(archive_url)
    try:
        stored, steps = migrations.plan(engine, display)
        click.echo(f"archive: {display}")
        click.echo(f"current: {_describe(stored)}")
        click.echo(f"target:  {migrations.HEAD} (head)")
        for revision, description in steps:
            click.echo(f"  {revision}  {description}")
        if dry_run:
            click.echo(f"{len(steps)} step(s) to run; nothing changed (--dry-run)")
            return
        result = migrations.upgrade(engine, display)
    except SQLAlchemyError as exc:
        raise ArchiveError(f"cannot migrate archive at {display}: {error_reason(exc)}") from exc
    finally:
        engine.dispose()
    if result.changed:
        click.echo(f"upgraded to {result.after}")
    else:
        click.echo(f"already at {result.after}: nothing to do")


def _describe(stored: StoredRevision) -> str:
    if stored.revision is None:
        return "none (a new, empty archive)"
    text = f"{stored.revision} (schema version {stored.version})"
    if stored.legacy_version is not None:
        text += ", recorded by the pre-Alembic migrator: it will be stamped, then upgraded"
    return text
