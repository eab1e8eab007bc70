"""``uproar query``, ``uproar stats`` and ``uproar export``: the analysts' command line.

The archive comes from ``--archive`` or else the config's ``archive.url``. A SQLite archive is
opened read-only (``?mode=ro``), so these commands can never change it, even by accident, while
the daemon writes to it. Register the commands with ``cli.add_command(query)`` etc.; for a quick
try without the main group: ``python -m monitor.cli.analyst query --archive sqlite:///uproar.db``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import click
from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from models.base import SENTIMENTS
from monitor.analyst.extent import DEFAULT_SINCE
from monitor.analyst.filters import ORDERS, AnalystError, MentionFilter, parse_time_bound
from monitor.archive import Archive
from monitor.archive.engine import error_reason, redact
from monitor.cli.common import CONFIG_OPTION, UproarGroup
from monitor.clock import Clock, SystemClock

if TYPE_CHECKING:
    from monitor.analyst.output import MentionWriter

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_COMPLAINT_THRESHOLD = 0.5  # when neither --complaint-threshold nor a config says
EXPORT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}

ARCHIVE_OPTION = click.option(
    "--archive",
    "archive_url",
    default=None,
    metavar="URL",
    help="Archive to read, e.g. sqlite:///uproar.db (default: archive.url from the config).",
)


def filter_options(func: F) -> F:
    """The filters ``query`` and ``export`` share (``stats`` takes a subset)."""
    options = [
        click.argument("text", nargs=-1),
        click.option("--brand", help="Only mentions matched to this brand key."),
        click.option("--source", help="Only this source (twitter, reddit, rss, ...)."),
        click.option("--sentiment", type=click.Choice(SENTIMENTS), help="Only this sentiment."),
        click.option(
            "--min-complaint",
            type=click.FloatRange(0.0, 1.0),
            help="Only mentions at least this likely to be complaints (0-1).",
        ),
        click.option("--author", help="Only this author handle (case-insensitive, @ optional)."),
        click.option(
            "--story",
            type=int,
            metavar="ID",
            help="Only the mentions of this story (ids: uproar stories).",
        ),
        click.option(
            "--incident",
            type=int,
            metavar="ID",
            help="Only mentions of this incident's brand while it was open (ids: uproar stats, "
            "uproar alerts list).",
        ),
        click.option(
            "--since",
            help="From this time: 7d, 12h (ago) or 2026-03-01[T14:30Z]; all: everything "
            f"(query's default: {DEFAULT_SINCE}; export's: all).",
        ),
        click.option("--until", help="Before this time (exclusive), same forms as --since."),
        click.option(
            "--sort",
            "order",
            type=click.Choice(ORDERS),
            default="time",
            show_default=True,
            help="Newest first, or most engagement (likes+reposts+replies+score) first.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


# -- commands -------------------------------------------------------------------------------


@click.command("query")
@filter_options
@CONFIG_OPTION
@ARCHIVE_OPTION
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="json: one JSON object per line (the mention shape plus id, brands, classification).",
)
def query(config_path: Path, archive_url: str | None, limit: int, fmt: str, **opts: Any) -> None:
    """Search the archive: mentions containing every word of TEXT (any order, any case) that
    pass every filter, newest first, from the last 30 days unless --since says otherwise. An
    empty answer says what the archive holds.

    \b
    Examples:
      uproar query smashed cello --since all
      uproar query --story 7                      # the mentions of story 7 (uproar stories)
      uproar query "broke guitar" --brand united --since 7d
      uproar query --brand united --min-complaint 0.7 --sort engagement --limit 10
      uproar query refund --sentiment negative --format csv > refunds.csv
    """
    from rich.console import Console

    from monitor.analyst.output import CsvWriter, JsonLinesWriter, render_table
    from monitor.analyst.queries import fetch_mentions

    ctx = click.get_current_context()
    opts["since"] = opts["since"] or DEFAULT_SINCE
    f = build_filter(ctx, limit=limit, **opts)
    with open_archive(ctx, config_path, archive_url) as (archive, _), _read(archive) as conn:
        found = fetch_mentions(conn, f)
        empty = _explain_empty(conn, f, opts) if not found else None
    out = sys.stdout
    if empty:
        click.echo(empty, err=True)
    if fmt == "table":
        if found:
            render_table(found, Console(file=out, soft_wrap=False))
        more = " (the --limit; more may match)" if len(found) == limit else ""
        click.echo(f"{len(found)} mentions{more}", err=True)
        return
    writer = CsvWriter(out) if fmt == "csv" else JsonLinesWriter(out)
    writer.write(found)
    writer.close()


@click.command("stats")
@click.argument("text", nargs=-1)
@CONFIG_OPTION
@ARCHIVE_OPTION
@click.option("--brand", help="Only this brand key.")
@click.option("--source", help="Only this source.")
@click.option("--story", type=int, metavar="ID", help="Only this story's mentions (ids: stories).")
@click.option("--incident", type=int, metavar="ID", help="Only this incident's brand and window.")
@click.option("--since", default=DEFAULT_SINCE, show_default=True,
              help="7d, 12h or 2026-03-01; all: everything.")
@click.option("--until", help="Before this time (exclusive), same forms as --since.")
@click.option("--by", type=click.Choice(["hour", "day"]), default="day", show_default=True)
@click.option(
    "--complaint-threshold",
    type=click.FloatRange(0.0, 1.0),
    help="Complaint probability that counts as a complaint (default: the config's "
    "classifier.complaint_threshold, else 0.5).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="csv/json: the volume rows only (json: one object per line), for charts.",
)
def stats(
    config_path: Path,
    archive_url: str | None,
    by: str,
    complaint_threshold: float | None,
    fmt: str,
    **opts: Any,
) -> None:
    """Volume over time per brand with complaints and their share, plus the top authors and
    the top incidents. Empty hours or days inside the range show as zeros.

    \b
    Examples:
      uproar stats --brand united --since 30d
      uproar stats --by hour --since 2d --format csv > hourly.csv
      uproar stats "lost luggage" --since 2026-03-01 --until 2026-04-01
    """
    from rich.console import Console

    from monitor.analyst import report
    from monitor.analyst import stats as analyst_stats

    ctx = click.get_current_context()
    f = build_filter(ctx, **opts)
    with open_archive(ctx, config_path, archive_url) as (archive, config_threshold):
        threshold = _first(complaint_threshold, config_threshold, DEFAULT_COMPLAINT_THRESHOLD)
        with _read(archive) as conn:
            volume = analyst_stats.volume(conn, f, by, threshold)  # type: ignore[arg-type]
            authors = analyst_stats.top_authors(conn, f, threshold) if fmt == "table" else []
            incidents = analyst_stats.top_incidents(conn, f) if fmt == "table" else []
            severity = (
                analyst_stats.complaint_severity(conn, f, threshold) if fmt == "table" else []
            )
            heard = any(r.mentions for r in volume)
            empty = None if heard else _explain_empty(conn, f, opts)
    if empty:
        click.echo(empty, err=True)
        if fmt == "table":
            return
    out = sys.stdout
    if fmt == "csv":
        report.write_volume_csv(volume, out)
    elif fmt == "json":
        report.write_volume_jsonl(volume, out)
    else:
        console = Console(file=out)
        report.render_stats(
            console, by, volume, authors, incidents, severity  # type: ignore[arg-type]
        )


@click.command("export")
@filter_options
@CONFIG_OPTION
@ARCHIVE_OPTION
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl", "parquet"]),
    default=None,
    help="Default: from the --output extension (.csv, .jsonl, .parquet).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="File to write; replaced only once the export is complete.",
)
def export(
    config_path: Path,
    archive_url: str | None,
    limit: int | None,
    fmt: str | None,
    output: Path,
    **opts: Any,
) -> None:
    """Export every matching mention (no limit unless --limit) as CSV, JSON lines or Parquet.

    Rows stream from the database, so millions of mentions need little memory. The file is
    written under a temporary name and renamed when complete: an interrupted export leaves no
    half-written file behind.

    \b
    Examples:
      uproar export --brand united --since 30d --output united.csv
      uproar export "broke guitar" --min-complaint 0.7 --format jsonl -o complaints.jsonl
      uproar export --since 2026-01-01 --output q1.parquet   # needs uproar[parquet]
    """
    from monitor.analyst.output import import_pyarrow

    fmt = fmt or _format_from_name(output)
    if fmt == "parquet":
        import_pyarrow()  # fail before any work when pyarrow is missing
    _check_output(output)
    ctx = click.get_current_context()
    f = build_filter(ctx, limit=limit, **opts)
    with open_archive(ctx, config_path, archive_url) as (archive, _), _read(
        archive, snapshot=True
    ) as conn:
        written = _export(conn, f, fmt, output)
    click.echo(f"exported {written} mentions to {output}")


# -- helpers ----------------------------------------------------------------------------------


def build_filter(
    ctx: click.Context,
    *,
    text: str | tuple[str, ...] | None = None,
    since: str | None = None,
    until: str | None = None,
    **fields: Any,
) -> MentionFilter:
    """A :class:`MentionFilter` from command-line options; times relative to the clock.

    The clock is ``ctx.obj`` when that is a :class:`Clock` (tests pass a simulated one).
    """
    clock = ctx.obj if isinstance(ctx.obj, Clock) else SystemClock()
    now = clock.now()
    if since is not None and since.strip().lower() == "all":
        since = None
    if isinstance(text, tuple):  # several words on the command line are one search
        text = " ".join(text) or None
    return MentionFilter(
        text=text,
        since=parse_time_bound(since, now, option="--since") if since else None,
        until=parse_time_bound(until, now, option="--until") if until else None,
        **fields,
    )


@contextmanager
def open_archive(
    ctx: click.Context, config_path: Path, archive_url: str | None
) -> Iterator[tuple[Archive, float | None]]:
    """The archive (read-only when SQLite) and the config's complaint threshold, if loaded.

    The config is read when no ``--archive`` is given, or when ``-c`` names one explicitly.
    """
    threshold: float | None = None
    explicit = ctx.get_parameter_source("config_path") not in (
        click.core.ParameterSource.DEFAULT,
        None,
    )
    if archive_url is None or explicit:
        if archive_url is None and not explicit and not config_path.is_file():
            raise AnalystError(
                f"no archive to read: pass --archive sqlite:///path/to/uproar.db or a config "
                f"with -c (there is no {config_path} here)"
            )
        from monitor.config import load_config

        config = load_config(config_path).config
        threshold = config.classifier.complaint_threshold
        archive_url = archive_url or config.archive.url
    archive = Archive(read_only_url(archive_url))
    try:
        yield archive, threshold
    finally:
        archive.close()


def read_only_url(url: str) -> str:
    """``url`` for reading only: a SQLite file becomes a ``mode=ro`` URI; others unchanged.

    Raises :class:`AnalystError` when the SQLite file does not exist (opening would create it).
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url  # Archive explains what a database URL looks like
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return url
    if database.startswith("file:"):
        return url
    path = Path(database).expanduser()
    if not path.is_file():
        raise AnalystError(
            f"no archive file at {path}: check --archive or archive.url in the config "
            "(the daemon creates the file when it first runs)"
        )
    return f"sqlite:///file:{quote(str(path.resolve()))}?mode=ro&uri=true"


@contextmanager
def _read(archive: Archive, *, snapshot: bool = False) -> Iterator[Connection]:
    """A connection for reading; database errors become one-line :class:`AnalystError`.

    ``snapshot``: on PostgreSQL, one REPEATABLE READ transaction, so an export's COUNT and its
    rows see the same data while the daemon writes. (SQLite: one transaction already does.)
    """
    try:
        with archive.engine.connect() as connection:
            if snapshot and not archive.is_sqlite:
                connection = connection.execution_options(isolation_level="REPEATABLE READ")
            yield connection
    except SQLAlchemyError as exc:
        raise AnalystError(
            f"reading archive at {redact(archive.url)} failed: {error_reason(exc)}"
        ) from exc


def _explain_empty(conn: Connection, f: MentionFilter, opts: dict[str, Any]) -> str:
    """Why nothing matched: the window, and what the archive holds (``analyst.extent``)."""
    from monitor.analyst.extent import archive_extent, explain_empty

    since = opts.get("since")
    since = None if since is None or since.strip().lower() == "all" else since
    filtered = any(
        getattr(f, name) is not None
        for name in ("text", "brand", "source", "sentiment", "min_complaint", "author", "story",
                     "incident")
    )
    return explain_empty("mentions", archive_extent(conn), since, opts.get("until"),
                         start=f.since, filtered=filtered)


def _first(*values: float | None) -> float:
    return next(v for v in values if v is not None)


def _format_from_name(output: Path) -> str:
    fmt = EXPORT_FORMATS.get(output.suffix.lower())
    if fmt is None:
        raise AnalystError(
            f"cannot tell the format from {output.name!r}: add --format csv, jsonl or parquet "
            "(or name the file .csv, .jsonl or .parquet)"
        )
    return fmt


def _check_output(output: Path) -> None:
    parent = output.parent
    if not parent.is_dir():
        raise AnalystError(f"cannot write {output}: directory {parent} does not exist")
    if output.is_dir():
        raise AnalystError(f"cannot write {output}: it is a directory; give a file name")


def _export(conn: Connection, f: MentionFilter, fmt: str, output: Path) -> int:
    """Write the matching mentions to a temporary file beside ``output``, then rename it."""
    from rich.console import Console
    from rich.progress import Progress

    from monitor.analyst.queries import count_mentions, stream_batches

    total = count_mentions(conn, f)
    fd, tmp_name = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    written = 0
    try:
        with ExitStack() as files:
            writer = _writer(fmt, tmp, files)
            with Progress(console=Console(stderr=True), transient=True) as progress:
                task = progress.add_task(f"exporting to {output.name}", total=total)
                for batch in stream_batches(conn, f):
                    writer.write(batch)
                    written += len(batch)
                    progress.advance(task, len(batch))
            writer.close()
        tmp.chmod(_file_mode())  # mkstemp made it private; an export is an ordinary file
        _fsync(tmp)
        os.replace(tmp, output)
    except BaseException:  # Ctrl-C included: never leave a half-written file behind
        tmp.unlink(missing_ok=True)
        raise
    return written


def _writer(fmt: str, path: Path, files: ExitStack) -> MentionWriter:
    from monitor.analyst.output import CsvWriter, JsonLinesWriter, ParquetWriter

    if fmt == "parquet":
        return ParquetWriter(path)
    stream = files.enter_context(path.open("w", encoding="utf-8", newline=""))
    return CsvWriter(stream) if fmt == "csv" else JsonLinesWriter(stream)


def _file_mode() -> int:
    """The mode ``open()`` would give a new file: 0o666 less the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync(path: Path) -> None:
    """Make the finished file durable before the rename makes it visible."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


COMMANDS = (query, stats, export)


@click.group(cls=UproarGroup, context_settings={"help_option_names": ["-h", "--help"]})
def analyst_cli() -> None:
    """The analysts' commands on their own (the same ones as in `uproar`)."""


for _command in COMMANDS:
    analyst_cli.add_command(_command)


if __name__ == "__main__":
    analyst_cli(prog_name="python -m monitor.cli.analyst")
