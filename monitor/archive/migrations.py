"""Schema versions: create a fresh archive, bring an older one up to date, refuse a newer one.

``MIGRATIONS[n]`` takes a database from version ``n`` to ``n + 1``; an empty database is
version 0, so a fresh archive runs every migration in order, and every migration of one
``Archive`` open runs in a single transaction (DDL included: SQLite and PostgreSQL both have
transactional DDL) — a failure leaves the file as it was.

Rules for a new migration: append a function, bump ``schema.SCHEMA_VERSION``, make the change in
``schema.py`` too. Migration v1 builds tables from ``schema.py``'s metadata, so a later migration
that *adds* a column or index must skip it when it already exists (see :func:`add_column`); one
that changes or drops something must first pin the old table definition into v1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy import Column, Connection, Engine, inspect, select, text, update
from sqlalchemy.schema import CreateColumn

from monitor.archive.engine import SQLITE_BEGIN_OPTION, error_reason
from monitor.archive.fts import create_fts
from monitor.archive.schema import SCHEMA_VERSION, metadata, schema_info
from monitor.errors import ArchiveError

Migration = Callable[[Connection], None]

# Key of the PostgreSQL advisory lock that serialises concurrent migrations (any constant).
_PG_MIGRATION_LOCK = 0x55_50_52_4F_41_52


def _v1_initial(connection: Connection) -> None:
    """Every table of schema.py, plus the SQLite full-text index."""
    metadata.create_all(connection)
    if connection.dialect.name == "sqlite":
        create_fts(connection)


# The exact expression ``monitor.analyst.queries.text_condition`` searches with: PostgreSQL only
# uses an expression index for a query whose expression is textually the same.
PG_FTS_EXPRESSION = "to_tsvector('simple'::regconfig, text)"


def _v2_search_indexes(connection: Connection) -> None:
    """Indexes for the analysts' queries on a big archive.

    PostgreSQL: a GIN full-text index for ``uproar query TEXT`` (SQLite has had FTS5 since v1).
    Both: ``mention_brands (brand, created_at, complaint)`` replaces ``(brand, created_at)`` so
    hourly volume per brand is an index-only scan. ``IF [NOT] EXISTS`` because v1 builds
    schema.py's current indexes on a fresh database.
    """
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(
            "CREATE INDEX IF NOT EXISTS ix_mentions_fts ON mentions "
            f"USING gin ({PG_FTS_EXPRESSION})"
        )
    connection.exec_driver_sql("DROP INDEX IF EXISTS ix_mention_brands_brand_time")
    connection.exec_driver_sql(
        "CREATE INDEX IF NOT EXISTS ix_mention_brands_brand_time_complaint "
        "ON mention_brands (brand, created_at, complaint)"
    )
    if connection.dialect.name == "postgresql":
        # Statistics of the new index expression: without them the planner guesses how common
        # a word is and, on a big archive, filters every row of the time range (seconds).
        connection.exec_driver_sql("ANALYZE mentions")
        connection.exec_driver_sql("ANALYZE mention_brands")


def _v3_stories(connection: Connection) -> None:
    """Stories (issue 5: ``stories``, ``story_mentions``) and engagement/source state (issue 4).

    Every table of schema.py marked ``info={"since": 3}``; v1 already made them on a fresh file.
    """
    metadata.create_all(connection, [t for t in metadata.sorted_tables if t.info.get("since") == 3])


def _v4_alerting(connection: Connection) -> None:
    """Alert routing state (issue 6): escalation timers, acknowledgements, silences."""
    from monitor.archive.schema import digests, escalations, silences

    metadata.create_all(connection, tables=[escalations, silences, digests], checkfirst=True)


def _v5_analyst(connection: Connection) -> None:
    """Analyst archive (issue 7): the hourly volume rollup, brand accounts, SQL views.

    ``volume_hourly`` is recounted from ``mention_brands`` when this migration creates it (an
    existing archive); v1 already created it, empty, on a fresh one.
    """
    from monitor.archive import rollup, views
    from monitor.archive.schema import brand_accounts, volume_hourly

    existed = inspect(connection).has_table(volume_hourly.name)
    metadata.create_all(connection, tables=[volume_hourly, brand_accounts], checkfirst=True)
    if not existed:
        rollup.rebuild(connection)
    views.create_views(connection)


MIGRATIONS: tuple[Migration, ...] = (
    _v1_initial,
    _v2_search_indexes,
    _v3_stories,
    _v4_alerting,
    _v5_analyst,
)

if len(MIGRATIONS) != SCHEMA_VERSION:  # pragma: no cover - caught by any test run
    raise RuntimeError(
        f"schema.SCHEMA_VERSION is {SCHEMA_VERSION} but there are {len(MIGRATIONS)} migrations"
    )


def add_column(connection: Connection, table: str, column: Column) -> None:
    """``ALTER TABLE … ADD COLUMN`` unless the column is already there (for future migrations)."""
    existing = {c["name"] for c in inspect(connection).get_columns(table)}
    if column.name not in existing:
        ddl = CreateColumn(column).compile(dialect=connection.dialect)
        connection.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {ddl}")


def stored_version(connection: Connection, display_url: str = "the archive") -> int:
    """The version recorded in the database; 0 for an empty database."""
    tables = set(inspect(connection).get_table_names())
    if schema_info.name not in tables:
        if "mentions" in tables:
            raise ArchiveError(
                f"{display_url} has a mentions table but no schema_info: it is not an Uproar "
                "archive; point archive.url at a new file or database"
            )
        return 0
    version = connection.execute(
        select(schema_info.c.version).where(schema_info.c.id == 1)
    ).scalar()
    return int(version or 0)


def migrate(engine: Engine, display_url: str, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database to ``len(migrations)``; returns the version it was at before."""
    target = len(migrations)
    options = {SQLITE_BEGIN_OPTION: "IMMEDIATE"}
    with engine.connect().execution_options(**options) as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
            )
        before = stored_version(connection, display_url)
        if before > target:
            raise ArchiveError(
                f"archive at {display_url} is schema version {before}, this Uproar knows {target}: "
                "upgrade Uproar"
            )
        for version in range(before, target):
            try:
                migrations[version](connection)
            except ArchiveError:
                raise
            except Exception as exc:
                raise ArchiveError(
                    f"migrating archive at {display_url} from schema version {version} to "
                    f"{version + 1} failed: {error_reason(exc)}; nothing was changed"
                ) from exc
        if before != target:
            _stamp(connection, target, first=before == 0)
    return before


def _stamp(connection: Connection, version: int, *, first: bool) -> None:
    now = datetime.now(UTC)
    if first:
        connection.execute(schema_info.insert().values(id=1, version=version, migrated_at=now))
    else:
        connection.execute(
            update(schema_info)
            .where(schema_info.c.id == 1)
            .values(version=version, migrated_at=now)
        )
