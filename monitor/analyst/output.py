"""Archived mentions as a terminal table, CSV, JSON lines or Parquet.

JSON lines carry the DESIGN.md mention shape (``Mention.to_json()``) plus ``id``, ``brands`` and
``classification``. CSV and Parquet carry one flat row per mention (:data:`COLUMNS`).

Text from the internet is untrusted: a CSV cell that starts with ``=``, ``+``, ``-``, ``@``
(or a tab or carriage return) is prefixed with ``'`` so a spreadsheet shows it as text instead
of running it as a formula (OWASP "CSV injection"). Parquet and JSON keep the text unchanged.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from rich.console import Console
from rich.table import Table
from rich.text import Text

from connectors.base import format_time
from monitor.analyst.filters import AnalystError
from monitor.archive.records import ArchivedMention
from monitor.untrusted import displayable

COLUMNS = (
    "id",
    "created_at",
    "source",
    "source_id",
    "brands",
    "author_handle",
    "author_name",
    "author_followers",
    "text",
    "url",
    "likes",
    "reposts",
    "replies",
    "score",
    "lang",
    "sentiment",
    "p_negative",
    "p_neutral",
    "p_positive",
    "complaint",
    "severity",
    "model",
    "model_version",
)

# First characters that make a spreadsheet treat a cell as a formula (or hide one after them).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

PARQUET_INSTALL_HINT = "Parquet export needs pyarrow: pip install 'uproar[parquet]'"

TABLE_TEXT_WIDTH = 80  # characters of a mention's text shown in the terminal table


def mention_json(item: ArchivedMention) -> dict[str, Any]:
    """The JSON-lines object of one archived mention."""
    out: dict[str, Any] = {"id": item.id, **item.mention.to_json(), "brands": list(item.brands)}
    c = item.classification
    out["classification"] = (
        None
        if c is None
        else {**c.to_json(), "model": item.model_name, "model_version": item.model_version}
    )
    return out


def flat_row(item: ArchivedMention) -> dict[str, Any]:
    """One CSV/Parquet row: every :data:`COLUMNS` key; ``brands`` is a list."""
    m, c = item.mention, item.classification
    scores = c.scores if c is not None else {}
    return {
        "id": item.id,
        "created_at": m.created_at,
        "source": m.source,
        "source_id": m.source_id,
        "brands": list(item.brands),
        "author_handle": m.author.handle,
        "author_name": m.author.name,
        "author_followers": m.author.followers,
        "text": m.text,
        "url": m.url,
        "likes": m.engagement.likes,
        "reposts": m.engagement.reposts,
        "replies": m.engagement.replies,
        "score": m.engagement.score,
        "lang": m.lang,
        "sentiment": c.sentiment if c is not None else None,
        "p_negative": scores.get("negative"),
        "p_neutral": scores.get("neutral"),
        "p_positive": scores.get("positive"),
        "complaint": c.complaint if c is not None else None,
        "severity": c.severity if c is not None else None,
        "model": item.model_name,
        "model_version": item.model_version,
    }


def defuse(cell: str) -> str:
    """``cell`` made safe to open in a spreadsheet (see the module docstring)."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def csv_cells(item: ArchivedMention) -> list[Any]:
    row = flat_row(item)
    row["created_at"] = format_time(row["created_at"])
    row["brands"] = ",".join(row["brands"])
    return [defuse(v) if isinstance(v, str) else ("" if v is None else v) for v in row.values()]


class MentionWriter(Protocol):
    """Writes batches of mentions to one output; ``close`` finishes it (footer, flush)."""

    def write(self, batch: Sequence[ArchivedMention]) -> None: ...

    def close(self) -> None: ...


class CsvWriter:
    def __init__(self, stream: IO[str]) -> None:
        self._writer = csv.writer(stream)
        self._writer.writerow(COLUMNS)

    def write(self, batch: Sequence[ArchivedMention]) -> None:
        self._writer.writerows(csv_cells(item) for item in batch)

    def close(self) -> None:
        pass


class JsonLinesWriter:
    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, batch: Sequence[ArchivedMention]) -> None:
        self._stream.writelines(
            json.dumps(mention_json(item), ensure_ascii=False) + "\n" for item in batch
        )

    def close(self) -> None:
        pass


class ParquetWriter:
    """One Parquet row group per batch; ``brands`` is a list column, times are UTC."""

    def __init__(self, path: Path) -> None:
        pa, pq = import_pyarrow()
        self._pa = pa
        self._schema = pa.schema(
            [
                ("id", pa.int64()),
                ("created_at", pa.timestamp("us", tz="UTC")),
                ("source", pa.string()),
                ("source_id", pa.string()),
                ("brands", pa.list_(pa.string())),
                ("author_handle", pa.string()),
                ("author_name", pa.string()),
                ("author_followers", pa.int64()),
                ("text", pa.string()),
                ("url", pa.string()),
                ("likes", pa.int64()),
                ("reposts", pa.int64()),
                ("replies", pa.int64()),
                ("score", pa.int64()),
                ("lang", pa.string()),
                ("sentiment", pa.string()),
                ("p_negative", pa.float64()),
                ("p_neutral", pa.float64()),
                ("p_positive", pa.float64()),
                ("complaint", pa.float64()),
                ("severity", pa.int64()),
                ("model", pa.string()),
                ("model_version", pa.string()),
            ]
        )
        self._writer = pq.ParquetWriter(str(path), self._schema)

    def write(self, batch: Sequence[ArchivedMention]) -> None:
        if batch:
            rows = [flat_row(item) for item in batch]
            self._writer.write_table(self._pa.Table.from_pylist(rows, schema=self._schema))

    def close(self) -> None:
        self._writer.close()


def import_pyarrow() -> tuple[Any, Any]:
    """``(pyarrow, pyarrow.parquet)``, or :class:`AnalystError` saying how to install them."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise AnalystError(PARQUET_INSTALL_HINT) from None
    return pyarrow, pyarrow.parquet


# (header, justify, max width or None, shown on narrow terminals too)
_TABLE_COLUMNS = (
    ("id", "right", None, True),
    ("time (UTC)", "left", None, True),
    ("source", "left", 10, False),
    ("brands", "left", 16, True),
    ("author", "left", 18, False),
    ("sentiment", "left", None, False),
    ("complaint", "right", None, True),
    ("engagement", "right", None, False),
)
WIDE_TABLE = 120  # terminal columns from which every column fits beside a readable text


def render_table(items: Sequence[ArchivedMention], console: Console) -> None:
    """A terminal table, one row per mention; narrow terminals get fewer columns.

    The text takes the width left over and wraps; the short columns keep their values whole.
    """
    wide = console.width >= WIDE_TABLE
    shown = [wide or narrow for *_, narrow in _TABLE_COLUMNS]
    table = Table(header_style="bold", expand=True)
    for (name, justify, width, _), show in zip(_TABLE_COLUMNS, shown, strict=True):
        if show:
            table.add_column(name, justify=justify, no_wrap=True, max_width=width)  # type: ignore[arg-type]
    table.add_column("text", ratio=1, min_width=24, overflow="fold")
    for item in items:
        m, c = item.mention, item.classification
        e = m.engagement
        cells = (
            str(item.id),
            m.created_at.strftime("%Y-%m-%d %H:%M"),
            m.source,
            ",".join(item.brands),
            m.author.handle,
            c.sentiment if c is not None else "",
            f"{c.complaint:.2f}" if c is not None else "",
            str(e.likes + e.reposts + e.replies + e.score),
        )
        row = [cell for cell, show in zip(cells, shown, strict=True) if show] + [_short(m.text)]
        # Text(), not str: "[bold]" in a tweet is the author's text, not rich markup.
        # No terminal escapes (ESC, BEL, NUL…), bidi controls or zero-width characters.
        table.add_row(*(Text(displayable(cell, one_line=True)) for cell in row))
    console.print(table)


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= TABLE_TEXT_WIDTH else flat[: TABLE_TEXT_WIDTH - 1] + "…"
