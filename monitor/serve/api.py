"""The read-only HTTP API over the archive, and the dashboard's static files.

Every ``/api`` route reads through ``monitor.analyst`` (the same filters and queries as
``uproar query`` and ``uproar stats``). Bad filter values are 400 with the same one-line
message the CLI prints; an archive that cannot be read is 503. When a token is configured every
``/api`` route needs it (401 otherwise); the dashboard's files carry no data and need none.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from models.base import SENTIMENTS
from monitor import __version__
from monitor.analyst.filters import AnalystError, MentionFilter, Order, parse_time_bound
from monitor.analyst.output import mention_json
from monitor.analyst.queries import select_mentions, to_archived
from monitor.analyst.stats import Bucket, severe_complaints, volume
from monitor.archive import Archive
from monitor.archive.engine import error_reason
from monitor.clock import Clock, SystemClock
from monitor.serve import models, reads
from monitor.serve.auth import BearerToken

MAX_PAGE = 500  # rows per page: bigger pages are what `uproar export` is for
MAX_OFFSET = 10_000  # deep pages read every row before them; narrow the filter or export
STORY_POSTS = 20  # mentions shown with a story

# The dashboard loads only its own files, and nothing it shows can run as code: even if post
# text were ever inserted as HTML, inline scripts and event handlers would not execute.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def static_dir() -> str:
    return str(resources.files("monitor.serve") / "static")


def _why_empty(
    conn: Connection, request: Request, what: str, start: datetime | None, filtered: bool
) -> str:
    """An empty answer's explanation, as the CLI gives it (``monitor.analyst.extent``)."""
    from monitor.analyst.extent import archive_extent, explain_empty

    params = request.query_params
    since = params.get("since") or None
    since = None if since is not None and since.strip().lower() == "all" else since
    return explain_empty(what, archive_extent(conn), since,
                         params.get("until") or None, start=start, filtered=filtered,
                         option="since")


def _connection(request: Request) -> Iterator[Connection]:
    archive: Archive = request.app.state.archive
    with archive.engine.connect() as conn:
        yield conn


def _time_bound(clock: Clock, value: str | None, option: str) -> datetime | None:
    """``value`` as a time; empty or ``all`` (no bound) is None."""
    if not value or value.strip().lower() == "all":
        return None
    return parse_time_bound(value, clock.now(), option=option)


def _mention_filter(
    request: Request,
    text: Annotated[str | None, Query(description="Every word must occur.")] = None,
    brand: Annotated[str | None, Query(description="Brand key.")] = None,
    source: Annotated[str | None, Query(description="twitter, reddit, rss, ...")] = None,
    sentiment: Annotated[str | None, Query(description=", ".join(SENTIMENTS))] = None,
    min_complaint: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
    author: Annotated[str | None, Query(description="Handle, @ optional.")] = None,
    story: Annotated[
        int | None, Query(description="Story id: its mentions (uproar query --story).")
    ] = None,
    incident: Annotated[
        int | None,
        Query(description="Incident id: its brand while it was open (uproar query --incident)."),
    ] = None,
    since: Annotated[str | None, Query(description="7d, 12h or 2026-03-01[T14:30Z].")] = None,
    until: Annotated[str | None, Query(description="Exclusive; same forms.")] = None,
    sort: Annotated[Order, Query(description="time: newest first.")] = "time",
) -> MentionFilter:
    """The filters of ``uproar query`` from query parameters; times relative to the clock."""
    clock: Clock = request.app.state.clock
    return MentionFilter(
        text=text or None,
        brand=brand or None,
        source=source or None,
        sentiment=sentiment or None,
        min_complaint=min_complaint,
        author=author or None,
        story=story,
        incident=incident,
        since=_time_bound(clock, since, "since"),
        until=_time_bound(clock, until, "until"),
        order=sort,
    )


Conn = Annotated[Connection, Depends(_connection)]
Filter = Annotated[MentionFilter, Depends(_mention_filter)]


def create_app(
    archive: Archive,
    *,
    token: str = "",
    clock: Clock | None = None,
    complaint_threshold: float = 0.5,
) -> FastAPI:
    """The application serving ``archive`` (which the caller opens and closes)."""
    clock = clock or SystemClock()
    app = FastAPI(
        title="Uproar archive API",
        version=__version__,
        description=(
            "Read-only access to the mentions Uproar archived: search with the filters of "
            "`uproar query`, volume over time, stories. With a token configured, send "
            "`Authorization: Bearer <token>`."
        ),
        docs_url=None,  # Swagger UI and ReDoc load from a CDN; the schema is at /openapi.json
        redoc_url=None,
    )
    app.state.archive = archive
    app.state.clock = clock
    auth = [Depends(BearerToken(token))]
    default_threshold = complaint_threshold

    @app.middleware("http")
    async def _headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(AnalystError)
    async def _bad_filter(_request: Request, exc: AnalystError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(SQLAlchemyError)
    async def _archive_down(_request: Request, exc: SQLAlchemyError) -> JSONResponse:
        return JSONResponse(
            {"detail": f"reading the archive failed: {error_reason(exc)}"}, status_code=503
        )

    def time_bound(value: str | None, option: str) -> datetime | None:
        return _time_bound(clock, value, option)


    @app.get("/api/mentions", response_model=models.MentionPage, dependencies=auth,
             tags=["mentions"])
    def search_mentions(
        request: Request,
        conn: Conn,
        f: Filter,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    ) -> dict[str, Any]:
        """Search mentions: the filters of `uproar query`, one page (`offset`, `limit`). An
        empty first page says why in `empty` (the window, and what the archive holds)."""
        # The first offset + limit + 1 rows, not SQL OFFSET: the newest-page plans of the
        # analyst code (monitor/analyst/newest.py) are exact for the first `limit` rows only.
        rows = offset + limit + 1
        query = select_mentions(conn, replace(f, limit=rows))
        found = [to_archived(row._mapping) for row in conn.execute(query).all()[offset:]]
        more = len(found) > limit
        filtered = any(getattr(f, name) is not None for name in (
            "text", "brand", "source", "sentiment", "min_complaint", "author", "story",
            "incident"))
        return {
            "items": [mention_json(item) for item in found[:limit]],
            "offset": offset,
            "limit": limit,
            "next_offset": offset + limit if more else None,
            "empty": _why_empty(conn, request, "mentions", f.since, filtered)
            if not found and offset == 0 else None,
        }

    @app.get("/api/mentions/{mention_id}", response_model=models.MentionDetail,
             dependencies=auth, tags=["mentions"])
    def get_mention(conn: Conn, mention_id: Annotated[int, Path(ge=1)]) -> dict[str, Any]:
        """One mention with its raw payload (what the source sent)."""
        item = reads.mention_by_id(conn, mention_id)
        if item is None:
            raise HTTPException(404, detail=f"no mention {mention_id} in the archive")
        out = mention_json(item)
        out["fetched_at"] = item.fetched_at.isoformat()
        out["raw"] = dict(item.mention.raw) or None
        return out

    @app.get("/api/stats/volume", response_model=list[models.VolumeBucket], dependencies=auth,
             tags=["stats"])
    def get_volume(
        conn: Conn,
        f: Filter,
        by: Bucket = "day",
        complaint_threshold: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
    ) -> list[dict[str, Any]]:
        """Mentions and complaints per brand and hour or day (empty buckets as zeros)."""
        threshold = complaint_threshold if complaint_threshold is not None else default_threshold
        return [
            {
                "bucket": row.bucket,
                "brand": row.brand,
                "mentions": row.mentions,
                "complaints": row.complaints,
                "share": row.share,
            }
            for row in volume(conn, f, by, threshold)
        ]

    @app.get("/api/stats/sentiment", response_model=list[models.SentimentBucket],
             dependencies=auth, tags=["stats"])
    def get_sentiment(conn: Conn, f: Filter, by: Bucket = "day") -> list[dict[str, Any]]:
        """Mentions per sentiment and hour or day, summed over the brands (a mention naming
        two brands counts twice without a brand filter), and the complaints among them that
        accuse or blame (complaint severity 3-4)."""
        if f.sentiment is not None:
            raise AnalystError("sentiment over time covers every sentiment: drop sentiment=")
        counts: dict[datetime, dict[str, int]] = {}
        for label in SENTIMENTS:
            for row in volume(conn, replace(f, sentiment=label), by, default_threshold):
                bucket = counts.setdefault(row.bucket, dict.fromkeys(SENTIMENTS, 0))
                bucket[label] += row.mentions
        severe = severe_complaints(conn, f, by, default_threshold)
        return [
            {"bucket": at, **counts[at], "severe_complaints": severe.get(at, 0)}
            for at in sorted(counts)
        ]

    @app.get("/api/stories", response_model=models.StoryPage, dependencies=auth,
             tags=["stories"])
    def list_stories(
        request: Request,
        conn: Conn,
        brand: str | None = None,
        since: Annotated[str | None, Query(description="Active since: 7d, 2026-03-01")] = None,
        until: Annotated[str | None, Query(description="First seen before this time.")] = None,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    ) -> dict[str, Any]:
        """Stories (complaints about the same thing), most recently active first."""
        start = time_bound(since, "since")
        found = reads.list_stories(
            conn,
            brand=brand or None,
            since=start,
            until=time_bound(until, "until"),
            offset=offset,
            limit=limit + 1,
        )
        return {
            "items": found[:limit],
            "offset": offset,
            "limit": limit,
            "next_offset": offset + limit if len(found) > limit else None,
            "empty": _why_empty(conn, request, "stories", start, bool(brand))
            if not found and offset == 0 else None,
        }

    @app.get("/api/stories/{story_id}", response_model=models.StoryDetail, dependencies=auth,
             tags=["stories"])
    def get_story(conn: Conn, story_id: Annotated[int, Path(ge=1)]) -> dict[str, Any]:
        """A story with its timeline (hourly mentions, its brand's alerts and their
        acknowledgements) and its most-engaged posts."""
        found = reads.get_story(conn, story_id)
        if found is None:
            raise HTTPException(404, detail=f"no story {story_id} in the archive")
        story_id = int(found["id"])  # a merged story's id resolves to its survivor
        posts = select_mentions(conn, MentionFilter(order="engagement", limit=STORY_POSTS))
        posts = posts.where(reads.in_story(story_id))
        found["hourly"] = reads.story_hourly(conn, story_id)
        found["incidents"] = reads.story_incidents(conn, found)
        found["posts"] = [mention_json(to_archived(row._mapping)) for row in conn.execute(posts)]
        return found

    index = f"{static_dir()}/index.html"

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(index, media_type="text/html")

    app.mount("/static", StaticFiles(directory=static_dir()), name="static")
    return app
