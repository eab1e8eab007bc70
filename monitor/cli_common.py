"""What every `uproar` command shares: the config option and the error-to-one-line group."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from models.base import ModelError
from monitor.errors import ConfigError, UproarError

CONFIG_OPTION = click.option(
    "-c",
    "--config",
    "config_path",
    default="config.yaml",
    show_default=True,
    envvar="UPROAR_CONFIG",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file (or set UPROAR_CONFIG).",
)


class UproarGroup(click.Group):
    """Turns Uproar's typed errors into one clear line (several for a config) and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            from monitor.logging_setup import redact

            click.echo(f"uproar: {exc.source}: invalid configuration:", err=True)
            for problem in exc.problems:
                click.echo(f"  {redact(problem)}", err=True)
            ctx.exit(1)
        except (UproarError, ModelError) as exc:
            from monitor.logging_setup import redact

            first, *rest = redact(str(exc)).splitlines() or [""]
            click.echo(f"uproar: error: {first}", err=True)
            for line in rest:
                click.echo(f"  {line}", err=True)
            ctx.exit(1)


