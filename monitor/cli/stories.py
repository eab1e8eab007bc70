"""``uproar stories``: the complaint stories in the archive, newest activity first, or one story's
mentions. Read-only (a SQLite archive is opened with ``mode=ro``).

Try it without the main group: ``python -m monitor.cli.stories --archive sqlite:///uproar.db``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from monitor.analyst.extent import DEFAULT_SINCE
from monitor.cli.backtest import _load_config, _OneLineErrors
from monitor.cli.common import CONFIG_OPTION
from monitor.errors import UproarError


class StoriesError(UproarError):
    """The stories cannot be listed; the message says what to change."""


@click.command(
    "stories",
    cls=_OneLineErrors,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
Examples:
  uproar stories                                   # the config's archive, last 30 days
  uproar stories --brand united --since 2026-03-01 --limit 50
  uproar stories --archive sqlite:///uproar.db --show 12      # one story's complaints
  uproar stories --format json > stories.json
""",
)
@CONFIG_OPTION
@click.option("--archive", "archive_url", metavar="URL", default=None,
              help="Archive to read (default: archive.url from the config).")
@click.option("--brand", help="Only this brand key.")
@click.option("--since", default=DEFAULT_SINCE, show_default=True,
              help="Stories active since: 7d, 12h (ago) or 2026-03-01[T14:30Z]; all: every one.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="At most this many stories (the most recently active).")
@click.option("--show", "story_id", type=int, default=None,
              help="Print this story and its complaints instead of the list.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.pass_context
def stories(
    ctx: click.Context,
    config_path: Path,
    archive_url: str | None,
    brand: str | None,
    since: str,
    limit: int,
    story_id: int | None,
    fmt: str,
) -> None:
    """List the complaint stories Uproar grouped (title, first and last seen, mentions, growth,
    reach, sources), or show one story with its complaints.
    """
    from monitor.analyst.filters import parse_time_bound
    from monitor.archive import Archive
    from monitor.cli.analyst import read_only_url
    from monitor.clock import Clock, SystemClock

    clock = ctx.obj if isinstance(ctx.obj, Clock) else SystemClock()
    config = _load_config(ctx, config_path, needed=not archive_url)
    url = archive_url or (config.archive.url if config else "")
    everything = since.strip().lower() == "all"
    start = None if everything else parse_time_bound(since, clock.now(), option="--since")
    with Archive(read_only_url(url)) as archive, archive.engine.connect() as connection:
        if story_id is not None:
            story, members = _one(connection, story_id)
            _print_one(story, members, fmt)
            return
        rows = _list(connection, brand, start, limit)
        if not rows:
            from monitor.analyst.extent import archive_extent, explain_empty

            click.echo(explain_empty("stories", archive_extent(connection),
                                     None if everything else since, start=start,
                                     filtered=brand is not None), err=True)
        _print_list(rows, fmt)


def _list(connection: Any, brand: str | None, start: Any, limit: int) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from monitor.archive.schema import stories as t

    query = select(t).where(t.c.merged_into.is_(None))
    if start is not None:
        query = query.where(t.c.last_seen >= start)
    if brand is not None:
        query = query.where(t.c.brand == brand)
    query = query.order_by(t.c.last_seen.desc(), t.c.id.desc()).limit(limit)
    return [_story_json(row) for row in connection.execute(query).mappings()]


def _one(connection: Any, story_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from sqlalchemy import select

    from monitor.archive.schema import mentions, story_mentions
    from monitor.archive.schema import stories as t
    from monitor.serve.reads import resolve_story

    asked, story_id = story_id, resolve_story(connection, story_id)
    row = connection.execute(select(t).where(t.c.id == story_id)).mappings().first()
    if row is None:
        raise StoriesError(f"no story #{asked}; list them with: uproar stories")
    m, sm = mentions.c, story_mentions.c
    members = connection.execute(
        select(m.source, m.url, m.text, m.author_handle, m.author_followers, m.created_at,
               sm.similarity)
        .join_from(story_mentions, mentions, sm.mention_id == m.id)
        .where(sm.story_id == story_id)
        .order_by(m.created_at, m.id)
    ).mappings()
    story = _story_json(row)
    if asked != story_id:
        story["merged_from"] = asked
    return story, [{**dict(r), "created_at": _iso(r["created_at"])} for r in members]


def _story_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "brand": row["brand"],
        "title": row["title"],
        "first_seen": _iso(row["first_seen"]),
        "last_seen": _iso(row["last_seen"]),
        "mentions": row["mention_count"],
        "rate_per_hour": row["rate_per_hour"],
        "growth_per_hour": round(float(row["growth_per_hour"]), 2),
        "total_reach": int(row["total_reach"]),
        "sources": row["sources"],
        "top_posts": row["top_posts"],
    }


def _iso(value: Any) -> str:
    from monitor.alerts.incidents import aware

    return aware(value).isoformat().replace("+00:00", "Z")


def _print_list(rows: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        json.dump(rows, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    if not rows:
        return
    click.echo(f"{'id':>5}  {'brand':<12}{'first seen (UTC)':<18}{'last seen':<18}"
               f"{'mentions':>9}{'growth/h':>9}{'reach':>12}  title")
    for r in rows:
        click.echo(
            f"{r['id']:>5}  {_plain(r['brand'])[:11]:<12}{r['first_seen'][:16]:<18}"
            f"{r['last_seen'][:16]:<18}{r['mentions']:>9}{'×' + str(r['growth_per_hour']):>9}"
            f"{r['total_reach']:>12,}  {_plain(r['title'])}"
        )


def _print_one(story: dict[str, Any], members: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        json.dump({**story, "complaints": members}, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    sources = ", ".join(f"{k} {v}" for k, v in (story["sources"] or {}).items())
    if story.get("merged_from"):
        click.echo(f"story #{story['merged_from']} was merged into story #{story['id']}")
    click.echo(f"story #{story['id']} ({_plain(story['brand'])}): {_plain(story['title'])}")
    click.echo(f"  {story['mentions']} complaints, {story['first_seen']} to "
               f"{story['last_seen']}; reach {story['total_reach']:,}; sources: {sources}")
    for m in members:
        who = f"@{_plain(m['author_handle'] or '?').lstrip('@')}"
        text = " ".join(_plain(m["text"]).split())[:200]
        click.echo(f"  {m['created_at'][:16]}  {m['source']:<8} {who}: {text}")


def _plain(text: str) -> str:
    """Untrusted text for the terminal: no escapes, bidi controls or zero-width characters."""
    from monitor.untrusted import displayable

    return displayable(str(text), one_line=True)


def main() -> None:
    stories(prog_name="python -m monitor.cli.stories")


if __name__ == "__main__":
    main()
