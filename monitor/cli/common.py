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
    """Turns Uproar's typed errors into one clear line (several for a config) and exit code 1.

    ``lazy_commands`` maps a command name to ``"module:attribute"``; the module is imported the
    first time the command is looked up, so one command's start-up does not pay for the others.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands: dict[str, str] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        target = self.lazy_commands.get(cmd_name)
        if command is None and target is not None:
            import importlib

            module, _, attribute = target.partition(":")
            command = getattr(importlib.import_module(module), attribute)
            self.add_command(command, cmd_name)
        return command

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


