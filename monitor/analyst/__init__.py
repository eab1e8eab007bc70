"""The analysts' side of the archive: filtered search, statistics and exports.

``filters`` turns command-line options into a :class:`MentionFilter`; ``queries`` and ``stats``
turn a filter into SQLAlchemy Core SELECTs (bound parameters only) for SQLite and PostgreSQL;
``output`` writes the rows as a table, CSV, JSON lines or Parquet. The commands live in
``monitor.cli.analyst``.

May import: the other stages it needs (no circles), ``monitor.config``, ``monitor.signals``,
``monitor.clock``, ``monitor.errors``, ``connectors`` and ``models``. Must not import
``monitor.cli`` or ``monitor.daemon`` (checked by ``lint-imports``); imported by the pipeline,
the daemon and the CLI.
"""

from __future__ import annotations

from monitor.analyst.filters import AnalystError, MentionFilter, parse_time_bound

__all__ = ["AnalystError", "MentionFilter", "parse_time_bound"]
