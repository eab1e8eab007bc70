"""Schema migrations: Alembic, run in code on the archive's own engine when the archive opens.

The revisions live in ``monitor/archive/migrations/versions/`` (shipped with the package; no
``alembic.ini``). Their ids are the schema versions written with four digits, ``0001`` …
``0006``, in one straight line, so ``SCHEMA_VERSION`` in ``schema.py`` is the head's number.

:func:`upgrade` runs every pending revision in **one** transaction (SQLite and PostgreSQL both
have transactional DDL) under a lock, so two daemons starting together never both migrate and a
failure leaves the database as it was: SQLite takes the write lock up front (``BEGIN
IMMEDIATE``), PostgreSQL a transaction-scoped advisory lock.

Archives made before Alembic record their version in a one-row ``schema_info`` table. They are
*adopted*: stamped at the revision of that version, ``schema_info`` dropped, then upgraded, all
in the same transaction.

Adding a revision: copy the newest file in ``versions/`` (or run
``command.revision(alembic_config(), "what it does", rev_id="0009")`` for an empty one), set
``revision`` to the next number and ``down_revision`` to the previous, write the DDL out in the
revision (never import the live tables of ``schema.py``: a revision must keep doing what it did),
make the same change in ``schema.py`` and bump ``SCHEMA_VERSION``.
``tests/archive/test_migrations.py`` checks the chain and that the head database equals
``schema.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, inspect, text

from monitor.archive.engine import SQLITE_BEGIN_OPTION, error_reason
from monitor.archive.schema import SCHEMA_VERSION
from monitor.errors import ArchiveError

log = logging.getLogger(__name__)

# The Alembic environment and revisions, found next to this module (works from a wheel too).
SCRIPT_LOCATION = Path(__file__).with_name("migrations")

# Where archives made before Alembic recorded their schema version (one row, id = 1).
LEGACY_VERSION_TABLE = "schema_info"

# Key of the PostgreSQL advisory lock that serialises concurrent migrations (any constant).
_PG_MIGRATION_LOCK = 0x55_50_52_4F_41_52


def revision_id(version: int) -> str:
    """The Alembic revision of schema version ``version`` (``3`` -> ``"0003"``)."""
    return f"{version:04d}"


def version_of(revision: str | None) -> int:
    """The schema version of an Alembic revision; 0 for an empty database (``None``)."""
    return 0 if revision is None else int(revision)


HEAD = revision_id(SCHEMA_VERSION)


@dataclass(frozen=True)
class StoredRevision:
    """What a database records about its schema, before any migration."""

    revision: str | None  # None: an empty database
    legacy_version: int | None = None  # set when it still has the pre-Alembic schema_info

    @property
    def version(self) -> int:
        return version_of(self.revision)


@dataclass(frozen=True)
class Upgrade:
    """What :func:`upgrade` did: the revision before (None: empty) and after."""

    before: StoredRevision
    after: str

    @property
    def changed(self) -> bool:
        return self.before.revision != self.after or self.before.legacy_version is not None


def alembic_config(
    connection: Connection | None = None, script_location: Path | str = SCRIPT_LOCATION
) -> Config:
    """An Alembic config built in code; ``env.py`` runs the revisions on ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(script_location).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def pending(
    before: str | None, target: str = "head", script_location: Path | str = SCRIPT_LOCATION
) -> list[tuple[str, str]]:
    """``(revision, description)`` of each revision from ``before`` to ``target``, oldest first."""
    script = ScriptDirectory.from_config(alembic_config(None, script_location))
    steps = script.iterate_revisions(target, before or "base")
    return [(step.revision, _describe(step.doc)) for step in reversed(list(steps))]


def stored_revision(connection: Connection, display_url: str = "the archive") -> StoredRevision:
    """The revision recorded in the database (``alembic_version``, else legacy ``schema_info``)."""
    tables = set(inspect(connection).get_table_names())
    if "alembic_version" in tables:
        # Plain SQL: MigrationContext would log its dialect on every open of the archive.
        rows = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        if len(rows) > 1:
            raise ArchiveError(
                f"{display_url} records several schema revisions ({', '.join(sorted(rows))}); "
                "Uproar's migrations are one straight line: fix alembic_version by hand"
            )
        return StoredRevision(rows[0] if rows else None)
    if LEGACY_VERSION_TABLE in tables:
        version = connection.execute(
            text(f"SELECT version FROM {LEGACY_VERSION_TABLE} WHERE id = 1")
        ).scalar()
        legacy = int(version or 0)
        return StoredRevision(revision_id(legacy) if legacy else None, legacy_version=legacy)
    if "mentions" in tables:
        raise ArchiveError(
            f"{display_url} has a mentions table but no alembic_version: it is not an Uproar "
            "archive; point archive.url at a new file or database"
        )
    return StoredRevision(None)


def plan(
    engine: Engine, display_url: str, *, script_location: Path | str = SCRIPT_LOCATION
) -> tuple[StoredRevision, list[tuple[str, str]]]:
    """What :func:`upgrade` to head would do, changing nothing: the stored revision and steps."""
    script = ScriptDirectory.from_config(alembic_config(None, script_location))
    with engine.connect() as connection:
        stored = stored_revision(connection, display_url)
    _refuse_unknown(script, stored, display_url)
    return stored, pending(stored.revision, script_location=script_location)


def upgrade(
    engine: Engine,
    display_url: str,
    target: str = "head",
    *,
    script_location: Path | str = SCRIPT_LOCATION,
) -> Upgrade:
    """Bring the database to ``target`` (adopting a pre-Alembic archive first), atomically."""
    with _migration_transaction(engine) as connection:
        config = alembic_config(connection, script_location)
        script = ScriptDirectory.from_config(config)
        before = stored_revision(connection, display_url)
        _refuse_unknown(script, before, display_url)
        if before.legacy_version is not None:
            _adopt(connection, script, before)
            log.info(
                "archive at %s: schema version %s of the pre-Alembic migrator stamped as "
                "revision %s", display_url, before.legacy_version, before.revision
            )
        elif target == "head" and before.revision == (head := script.get_current_head()):
            return Upgrade(before, head or "base")  # the usual open: nothing to do
        applied: list[str] = []  # env.py appends each revision as it completes
        config.attributes["applied"] = applied
        try:
            command.upgrade(config, target)
        except ArchiveError:
            raise
        except CommandError as exc:
            raise ArchiveError(
                f"cannot migrate archive at {display_url} from schema revision "
                f"{before.revision or 'none'} to {target}: {exc}"
            ) from exc
        except Exception as exc:
            steps = pending(before.revision, target, script_location)
            failed = next((step for step in steps if step[0] not in applied), None)
            where = f"to schema revision {failed[0]} ({failed[1]})" if failed else f"to {target}"
            raise ArchiveError(
                f"migrating archive at {display_url} {where} failed: {error_reason(exc)}; "
                "nothing was changed"
            ) from exc
        after = MigrationContext.configure(connection).get_current_revision()
    if before.revision is None:
        log.info("archive at %s: created (schema revision %s)", display_url, after)
    else:
        log.info("archive at %s: schema upgraded from revision %s to %s (%d steps)",
                 display_url, before.revision, after, len(applied))
    return Upgrade(before, after or "base")


@contextmanager
def _migration_transaction(engine: Engine) -> Iterator[Connection]:
    options = {SQLITE_BEGIN_OPTION: "IMMEDIATE"}
    with engine.connect().execution_options(**options) as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
            )
        yield connection


def _refuse_unknown(script: ScriptDirectory, stored: StoredRevision, display_url: str) -> None:
    if stored.revision is None:
        return
    try:
        known = script.get_revision(stored.revision) is not None
    except CommandError:
        known = False
    if not known:
        head = script.get_current_head()
        raise ArchiveError(
            f"archive at {display_url} is schema revision {stored.revision}, this Uproar knows "
            f"up to {head}: upgrade Uproar"
        )


def _adopt(connection: Connection, script: ScriptDirectory, stored: StoredRevision) -> None:
    """Stamp a pre-Alembic archive at the revision of its version and retire ``schema_info``."""
    context = MigrationContext.configure(connection)
    if stored.revision is not None:
        context.stamp(script, stored.revision)
    connection.exec_driver_sql(f"DROP TABLE {LEGACY_VERSION_TABLE}")


def _describe(doc: Any) -> str:
    return str(doc or "").strip().splitlines()[0].rstrip(".") if doc else ""
