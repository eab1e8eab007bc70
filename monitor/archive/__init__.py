"""The archive: mentions, poll cursors and alert state in SQLite (WAL + FTS5) or PostgreSQL."""

from __future__ import annotations

from monitor.archive.archive import Archive
from monitor.archive.records import ArchivedMention, StoredMention, StoreResult

__all__ = ["Archive", "ArchivedMention", "StoreResult", "StoredMention"]
