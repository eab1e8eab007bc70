"""The archive: mentions, poll cursors and alert state in SQLite (WAL + FTS5) or PostgreSQL.

Owns the schema, its Alembic migrations (``migrations/``, found by path), storing, retention and
the hourly rollup.

May import: the other stages it needs (no circles), ``monitor.config``, ``monitor.signals``,
``monitor.clock``, ``monitor.errors``, ``connectors`` and ``models``. Must not import
``monitor.cli`` or ``monitor.daemon`` (checked by ``lint-imports``); imported by the pipeline,
the daemon and the CLI.
"""

from __future__ import annotations

from monitor.archive.archive import Archive
from monitor.archive.records import ArchivedMention, StoredMention, StoreResult

__all__ = ["Archive", "ArchivedMention", "StoreResult", "StoredMention"]
