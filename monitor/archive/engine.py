"""Build the SQLAlchemy engine for an archive URL: SQLite pragmas, JSON, readable errors."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from monitor.errors import ArchiveError

SUPPORTED_BACKENDS = ("sqlite", "postgresql")

# How long a SQLite writer waits for another writer (the alerting code, a second process)
# before failing with "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 10_000

# Execution option naming how a SQLite transaction begins. Writers ask for IMMEDIATE so they
# take the write lock up front (and wait for it under busy_timeout) instead of failing when a
# read-then-write transaction tries to upgrade its lock.
SQLITE_BEGIN_OPTION = "uproar_sqlite_begin"

_PASSWORD_IN_URL = re.compile(r"(://[^:/@]*:)[^@/]*@")


def redact(url: str | URL) -> str:
    """The URL with its password replaced by ``***``, safe for logs and error messages."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return _PASSWORD_IN_URL.sub(r"\1***@", url)


def error_reason(exc: BaseException) -> str:
    """The first line of what the database driver said (SQLAlchemy adds pages of context)."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


def json_default(value: Any) -> Any:
    """Serialise what raw payloads commonly hold besides plain JSON, never failing a batch."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _json_dumps(value: Any) -> str:
    return json.dumps(value, default=json_default, ensure_ascii=False)


def build_engine(url: str) -> Engine:
    """Parse ``url`` and create its engine; raises :class:`ArchiveError` naming the URL."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ArchiveError(
            f"archive url {redact(url)!r} is not a database URL: use sqlite:///path/to/uproar.db "
            "or postgresql+psycopg://user:password@host/dbname"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise ArchiveError(
            f"archive url {redact(parsed)!r} uses {backend!r}: Uproar supports sqlite:/// and "
            "postgresql+psycopg:// URLs"
        )
    if backend == "sqlite":
        _create_parent_directory(parsed)
    try:
        engine = create_engine(
            parsed, json_serializer=_json_dumps, pool_pre_ping=backend != "sqlite"
        )
    except (NoSuchModuleError, ImportError) as exc:
        raise ArchiveError(
            f"cannot open archive at {redact(parsed)}: database driver missing ({exc}); "
            "install it, e.g. pip install 'psycopg[binary]'"
        ) from exc
    if backend == "sqlite":
        _install_sqlite_hooks(engine)
    else:
        _install_postgresql_hooks(engine)
    return engine


def _install_postgresql_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        from psycopg.types.array import ListBinaryDumper  # only PostgreSQL archives need psycopg

        # psycopg prepares a statement on its 5th run, and PostgreSQL may then switch to a
        # generic plan that cannot see the bound values: a text search for a word in most
        # mentions went from 5 ms to 450 ms (GIN scan of every match instead of walking the
        # time index). Planning each run costs well under a millisecond.
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET plan_cache_mode = force_custom_plan")
        dbapi_connection.commit()
        # Python lists (the column arrays of monitor/archive/bulk.py's batch statements) go over
        # the wire in binary: psycopg's text format escapes every element with a regex, which was
        # half of the client's time in Archive.store (50 -> 27 µs of CPU per mention).
        dbapi_connection.adapters.register_dumper(list, ListBinaryDumper)


def _create_parent_directory(url: URL) -> None:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return
    parent = Path(database).expanduser().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArchiveError(
            f"cannot create the directory {str(parent)!r} for archive {redact(url)}: "
            f"{exc.strerror or exc}; create it or point archive.url elsewhere"
        ) from exc


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN: the sqlite3 module would otherwise run
        # DDL outside any transaction, and migrations must be all-or-nothing.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            # A new, empty file only: `uproar maintain` can then hand pages freed by retention
            # back to the file system without rewriting the file.
            if cursor.execute("PRAGMA page_count").fetchone()[0] == 0:
                cursor.execute("PRAGMA auto_vacuum = INCREMENTAL")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "")
        connection.exec_driver_sql(
            f"BEGIN {mode}" if mode in ("IMMEDIATE", "EXCLUSIVE") else "BEGIN"
        )
