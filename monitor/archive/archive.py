"""The archive: every mention Uproar heard, its poll cursors and its alert state."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor.archive import migrate, queries, store
from monitor.archive.engine import SQLITE_BEGIN_OPTION, build_engine, error_reason, redact
from monitor.archive.records import ArchivedMention, StoredMention, StoreResult
from monitor.errors import ArchiveError


class Archive:
    """SQLite (WAL, FTS5) or PostgreSQL storage, opened and migrated (Alembic, to the head
    revision; see ``migrate.py``) by the constructor.

    ``engine`` is public: the alerting code works on the incidents, signals and outbox tables
    directly. Writers that must not interleave with others should use :meth:`write`.
    """

    def __init__(self, url: str) -> None:
        self.url = redact(url)  # for messages: never holds the password
        self.engine: Engine = build_engine(url)
        try:
            self.migration = migrate.upgrade(self.engine, self.url)
        except ArchiveError:
            self.engine.dispose()
            raise
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise ArchiveError(
                f"cannot open archive at {self.url}: {error_reason(exc)}; {_hint(exc)}"
            ) from exc
        self.revision = self.migration.after  # the Alembic revision, "0005"
        self.schema_version = migrate.version_of(self.revision)
        # The schema version it had before opening: 0 for a new archive.
        self.previous_version = self.migration.before.version

    @classmethod
    def open(cls, url: str) -> Archive:
        return cls(url)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Archive:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Archive({self.url!r})"

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A connection in a write transaction, committed on success and rolled back on error.

        On SQLite the transaction starts with BEGIN IMMEDIATE: it waits (busy timeout) for the
        write lock up front instead of failing half-way when another writer got there first.
        """
        options = {SQLITE_BEGIN_OPTION: "IMMEDIATE"}
        with self.engine.connect().execution_options(**options) as connection, connection.begin():
            yield connection

    # -- mentions ---------------------------------------------------------------------------

    def known_ids(self, source: str, source_ids: Sequence[str]) -> set[str]:
        """Which of ``source_ids`` are already archived for ``source`` (to skip re-classifying)."""
        with self.engine.connect() as connection:
            return store.known_ids(connection, source, source_ids)

    def store(
        self,
        batch: Sequence[StoredMention],
        *,
        source: str | None = None,
        cursor: Mapping[str, Any] | None = None,
        fetched_at: datetime,
    ) -> StoreResult:
        """Archive a batch and, when given, the cursor of ``source`` — in one transaction.

        New mentions are inserted with their brands and classification; a mention already
        archived only gets its engagement counts (and author followers) refreshed.
        """
        if cursor is not None:
            if source is None:
                raise ValueError("store(cursor=...) needs source= to know whose cursor it is")
            try:
                json.dumps(cursor)
            except (TypeError, ValueError) as exc:
                raise ArchiveError(
                    f"cursor of source {source!r} is not JSON-serialisable: {exc}"
                ) from exc
        try:
            with self.write() as connection:
                result = store.store_mentions(connection, batch, fetched_at)
                if cursor is not None and source is not None:
                    store.save_cursor(connection, source, cursor, fetched_at)
        except SQLAlchemyError as exc:
            raise ArchiveError(
                f"storing {len(batch)} mentions in archive at {self.url} failed: "
                f"{error_reason(exc)}; nothing was stored"
            ) from exc
        return result

    def cursor(self, source: str) -> dict[str, Any] | None:
        """The cursor saved with ``source``'s last stored poll, or None."""
        with self.engine.connect() as connection:
            return store.load_cursor(connection, source)

    # -- reading ----------------------------------------------------------------------------

    def complaint_counts(
        self, brand: str, since: datetime, until: datetime, bucket: timedelta, threshold: float
    ) -> list[tuple[datetime, int]]:
        """Complaint mentions of ``brand`` per epoch-aligned bucket (empty buckets omitted)."""
        with self.engine.connect() as connection:
            return queries.complaint_counts(connection, brand, since, until, bucket, threshold)

    def mentions_for_examples(
        self, brand: str, since: datetime, until: datetime, min_complaint: float, limit: int
    ) -> list[ArchivedMention]:
        """The most-shared complaints of ``brand`` in ``[since, until)``, for alert examples."""
        with self.engine.connect() as connection:
            return queries.mentions_for_examples(
                connection, brand, since, until, min_complaint, limit
            )

    def count_mentions(
        self,
        *,
        brand: str | None = None,
        source: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        min_complaint: float | None = None,
    ) -> int:
        with self.engine.connect() as connection:
            return queries.count_mentions(
                connection,
                brand=brand,
                source=source,
                since=since,
                until=until,
                min_complaint=min_complaint,
            )

    def search(
        self,
        text: str | None,
        *,
        brand: str | None = None,
        source: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
    ) -> list[ArchivedMention]:
        """Mentions containing every word of ``text`` (any input is safe), newest first."""
        with self.engine.connect() as connection:
            return queries.search(
                connection, text, brand=brand, source=source, since=since, until=until, limit=limit
            )


def _hint(exc: BaseException) -> str:
    reason = error_reason(exc).lower()
    if "not a database" in reason:
        return "archive.url must name an Uproar SQLite file (or a new path)"
    if "unable to open database file" in reason:
        return "check that the path exists and is writable"
    if "password" in reason or "authentication" in reason:
        return "check the user and password in archive.url"
    if "does not exist" in reason:
        return "create the database first (createdb) or fix archive.url"
    return "check archive.url and that the database server is running and reachable"
