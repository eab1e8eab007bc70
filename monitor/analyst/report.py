"""``uproar stats`` output: volume rows as CSV or JSON lines, or three terminal tables."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from typing import IO, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from connectors.base import format_time
from models.base import severity_words
from monitor.analyst.output import defuse
from monitor.analyst.stats import AuthorRow, Bucket, IncidentRow, SeverityRow, VolumeRow
from monitor.untrusted import displayable

VOLUME_COLUMNS = ("bucket", "brand", "mentions", "complaints", "share")


def volume_json(row: VolumeRow) -> dict[str, Any]:
    return {
        "bucket": format_time(row.bucket),
        "brand": row.brand,
        "mentions": row.mentions,
        "complaints": row.complaints,
        "share": round(row.share, 4),
    }


def write_volume_csv(rows: Sequence[VolumeRow], stream: IO[str]) -> None:
    writer = csv.writer(stream)
    writer.writerow(VOLUME_COLUMNS)
    for row in rows:
        cells = volume_json(row)
        cells["brand"] = defuse(cells["brand"])
        writer.writerow(cells.values())


def write_volume_jsonl(rows: Sequence[VolumeRow], stream: IO[str]) -> None:
    stream.writelines(json.dumps(volume_json(row)) + "\n" for row in rows)


def render_stats(
    console: Console,
    by: Bucket,
    volume: Sequence[VolumeRow],
    authors: Sequence[AuthorRow],
    incidents: Sequence[IncidentRow],
    severity: Sequence[SeverityRow] = (),
) -> None:
    """Volume per bucket, complaint severity, then the top authors and the top incidents."""
    time_format = "%Y-%m-%d %H:00" if by == "hour" else "%Y-%m-%d"
    console.print(
        _table(
            f"Volume per {by} (UTC)",
            [("bucket", "left"), ("brand", "left"), ("mentions", "right"),
             ("complaints", "right"), ("share", "right")],
            [
                (r.bucket.strftime(time_format), r.brand, str(r.mentions), str(r.complaints),
                 f"{r.share:.0%}")
                for r in volume
            ],
        )
    )
    if severity:
        totals: dict[str, int] = {}
        for row in severity:
            totals[row.brand] = totals.get(row.brand, 0) + row.complaints
        console.print(
            _table(
                "Complaint severity",
                [("brand", "left"), ("severity", "left"), ("complaints", "right"),
                 ("share", "right")],
                [
                    (r.brand,
                     "not rated" if r.level is None else f"{r.level} {severity_words(r.level)}",
                     str(r.complaints), f"{r.complaints / max(totals[r.brand], 1):.0%}")
                    for r in severity
                ],
            )
        )
    console.print(
        _table(
            "Top authors",
            [("source", "left"), ("author", "left"), ("mentions", "right"),
             ("complaints", "right"), ("engagement", "right")],
            [
                (a.source, a.handle, str(a.mentions), str(a.complaints), str(a.engagement))
                for a in authors
            ],
        )
    )
    console.print(
        _table(
            "Top incidents (use the id with --incident)",
            [("id", "right"), ("brand", "left"), ("status", "left"), ("severity", "left"),
             ("opened (UTC)", "left"), ("mentions", "right"), ("peak", "right"),
             ("title", "left")],
            [
                (str(i.id), i.brand, i.status, i.severity, i.opened_at.strftime("%Y-%m-%d %H:%M"),
                 str(i.mentions), str(i.peak_count), i.title)
                for i in incidents
            ],
        )
    )


def _table(
    title: str, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[str]]
) -> Table | Text:
    if not rows:
        return Text(f"{title}: none", style="dim")
    table = Table(title=title, title_justify="left", header_style="bold")
    for name, justify in columns:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        # Handles and titles come from the internet: no terminal escapes, bidi or zero-width.
        table.add_row(*(Text(displayable(cell, one_line=True)) for cell in row))
    return table
