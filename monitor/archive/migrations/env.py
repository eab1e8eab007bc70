"""Alembic environment of the Uproar archive. Run by ``monitor.archive.migrate``, not by a CLI.

``migrate.upgrade`` opens the connection, begins the one transaction every revision runs in,
takes the migration lock, and passes the connection in ``config.attributes["connection"]``;
there is no ``alembic.ini`` and no URL here. Revisions inspect the live database (they are
written to be safe on archives adopted from the pre-Alembic migrator), so offline ``--sql``
generation is not supported.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo

from monitor.archive.schema import metadata


def run_migrations() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "the archive's migrations run on a connection from monitor.archive.migrate "
            "(uproar migrate, or opening the archive); offline SQL generation is not supported"
        )
    applied: list[str] | None = config.attributes.get("applied")

    def record(
        ctx: MigrationContext,
        step: MigrationInfo,
        heads: Collection[Any],
        run_args: Mapping[str, Any],
    ) -> None:
        if applied is not None and step.up_revision_id is not None:
            applied.append(step.up_revision_id)

    context.configure(
        connection=connection,
        target_metadata=metadata,
        # Our SQLite engine issues BEGIN itself (engine.py), so DDL is transactional there too.
        transactional_ddl=True,
        # SQLite can only ALTER a table by copying it: let autogenerate write batch operations.
        render_as_batch=connection.dialect.name == "sqlite",
        on_version_apply=record,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
