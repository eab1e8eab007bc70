"""YouTube: new videos naming a brand, their statistics, and new comments (Data API v3).

Plain HTTP with httpx and an API key, not google-api-python-client: three read-only GET
endpoints do not need the discovery documents, OAuth machinery and ~20 MB of dependencies, and
httpx lets tests point ``api_url`` at a fake server like every other source.

One poll, in this order (each call's quota cost in brackets):

1. ``search.list`` [100] — ``part=snippet&type=video&order=date&q=...&publishedAfter=...`` for
   each brand query: its single-term OR-branches joined with YouTube's ``|`` into one search,
   each multi-term branch (``united baggage``) a search of its own (negations, ``@`` and ``#``
   dropped; :mod:`connectors.querytext`). ``publishedAfter`` is the newest ``publishedAt`` the
   last poll saw minus :data:`_SEARCH_OVERLAP` (YouTube's index lags); videos already returned in
   that overlap are skipped. The first poll of a search looks back :data:`_FIRST_LOOKBACK`. One
   page only (another costs 100 more); a full page with more behind it is reported once.
2. ``videos.list`` [1 per 50 ids] — ``part=statistics,snippet`` for the new videos and for
   ``watch_video_ids()`` (videos in active stories, where view velocity matters: they are
   returned again every poll with fresh counts). Engagement: likes=likeCount,
   replies=commentCount, score=viewCount.
3. ``commentThreads.list`` [1 per page] — ``order=time`` top-level comments of every watched
   video (``videoId``) and configured channel (``allThreadsRelatedToChannelId``), newest first,
   down to the newest comment the last poll saw (the first poll reads one page).

Quota: the cursor counts the units spent per *Pacific* day (YouTube's quota resets at midnight
Pacific time). A call that would take the count past ``daily_quota`` is skipped, together with
every later call of that kind in the poll, and "YouTube quota for <date> used up" is reported
once per day. :meth:`YouTubeConnector.units_per_day` tells ``uproar check-config`` what a polling
interval costs. The count is an estimate: other users of the same Google Cloud project spend
from the same quota.

Errors: an invalid key (``400 keyInvalid``), or one refused for this API (``403 forbidden``,
``accessNotConfigured``, ``ipRefererBlocked``...) raises :class:`AuthFailed` naming
YOUTUBE_API_KEY; ``403 quotaExceeded`` raises :class:`RateLimited` until the next Pacific
midnight; 5xx, network errors and HTML pages where JSON was expected raise
:class:`TransientError`. These end the poll and no cursor advances. A video with comments
turned off, a missing video or channel, or a query YouTube rejects is reported once as a
problem and the rest of the poll still runs.

Cursor (JSON-serialisable; searches and comment streams no longer configured are dropped)::

    {"quota": {"day": "YYYY-MM-DD", "used": int, "reported": bool},
     "searches": {"<q>": {"newest": str | None, "recent": {video_id: publishedAt},
                          "capped": bool, "error": str | None}},
     "comments": {"video:<id>" | "channel:<id>": {"newest": str | None, "seen": [comment ids],
                                                  "error": str | None}}}
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from typing import Any, ClassVar

import httpx

from connectors.base import (
    MAX_TEXT,
    AuthFailed,
    Author,
    Connector,
    ConnectorError,
    Engagement,
    FetchResult,
    Mention,
    RateLimited,
    TransientError,
    format_time,
    parse_time,
    utc_now,
)
from connectors.jsonhttp import endpoint, not_json, send
from connectors.querytext import or_groups
from connectors.rss import html_to_text

try:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    _PACIFIC: tzinfo = ZoneInfo("America/Los_Angeles")
except (ImportError, ZoneInfoNotFoundError):  # pragma: no cover - no tz database installed
    # Standard time all year: during daylight saving the day then "ends" an hour late, which
    # only delays polling after a used-up quota; it never spends tomorrow's units today.
    _PACIFIC = timezone(timedelta(hours=-8), "PST")

# Quota units per call (https://developers.google.com/youtube/v3/determine_quota_cost).
SEARCH_COST = 100
VIDEOS_COST = 1
COMMENTS_COST = 1
# Links in mentions point at the public site, whatever api_url a test or proxy uses.
_WATCH_URL = "https://www.youtube.com/watch?v="
# search.list's index lags minutes behind uploads; re-read this much before the newest seen.
_SEARCH_OVERLAP = timedelta(minutes=15)
# How far back the first poll of a new search reads.
_FIRST_LOOKBACK = timedelta(days=1)
# videos.list takes at most 50 ids per call.
_IDS_PER_CALL = 50
# commentThreads.list pages hold at most 100 threads; a busy video is read this many pages deep.
_COMMENTS_PER_PAGE = 100
_MAX_COMMENT_PAGES = 5
# Comments posted in the very same second are rare; a bound in case of a flood.
_MAX_SEEN = 200
_AUTH_HELP = "YouTube refused the API key: check YOUTUBE_API_KEY"
# errors[].reason values that mean "the key is no good for this API".
_AUTH_REASONS = frozenset({"keyInvalid", "keyExpired", "forbidden", "accessNotConfigured",
                           "ipRefererBlocked", "API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED",
                           "API_KEY_HTTP_REFERRER_BLOCKED", "API_KEY_IP_ADDRESS_BLOCKED",
                           "SERVICE_DISABLED", "unauthorized", "authError"})
# A video id: 11 characters of base64url (comment ids are longer and start with "Ug").
_VIDEO_ID = re.compile(r"[A-Za-z0-9_-]{11}")
_QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded"})
_RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})



def pacific_day(now: datetime) -> date:
    """The quota day (YouTube's quota resets at midnight Pacific time)."""
    return now.astimezone(_PACIFIC).date()


def next_pacific_midnight(now: datetime) -> datetime:
    day = pacific_day(now) + timedelta(days=1)
    return datetime.combine(day, time(0), tzinfo=_PACIFIC).astimezone(UTC)


# -- cursor state --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Quota:
    day: str
    used: int = 0
    reported: bool = False

    @classmethod
    def from_json(cls, data: object, today: str) -> _Quota:
        if not isinstance(data, Mapping) or data.get("day") != today:
            return cls(today)
        used = data.get("used")
        return cls(today, used if isinstance(used, int) and used >= 0 else 0,
                   data.get("reported") is True)


@dataclass(frozen=True, slots=True)
class _SearchState:
    newest: str | None = None
    recent: dict[str, str] = field(default_factory=dict)
    capped: bool = False
    error: str | None = None

    @classmethod
    def from_json(cls, data: object) -> _SearchState:
        if not isinstance(data, Mapping):
            return cls()
        recent, error = data.get("recent"), data.get("error")
        return cls(newest=_valid_time(data.get("newest")),
                   recent={str(k): str(v) for k, v in recent.items() if _valid_time(v)}
                   if isinstance(recent, Mapping) else {},
                   capped=data.get("capped") is True,
                   error=error if isinstance(error, str) and error else None)


@dataclass(frozen=True, slots=True)
class _CommentState:
    newest: str | None = None
    seen: list[str] = field(default_factory=list)
    error: str | None = None

    @classmethod
    def from_json(cls, data: object) -> _CommentState:
        if not isinstance(data, Mapping):
            return cls()
        seen, error = data.get("seen"), data.get("error")
        return cls(newest=_valid_time(data.get("newest")),
                   seen=[str(s) for s in seen] if isinstance(seen, list) else [],
                   error=error if isinstance(error, str) and error else None)


class _Rejected(Exception):
    """YouTube refused one search or comment stream: a problem for it, not for the poll."""


class _OutOfQuota(Exception):
    """The next call would take the day's count past ``daily_quota``."""


# -- the connector -------------------------------------------------------------------------------


class YouTubeConnector(Connector):
    """Video search, statistics and comments through the YouTube Data API v3 with an API key."""

    name: ClassVar[str] = "youtube"
    can_refresh: ClassVar[bool] = True

    def __init__(
        self,
        api_key: str,
        *,
        api_url: str = "https://www.googleapis.com/youtube/v3/",
        daily_quota: int = 10_000,
        max_results: int = 50,
        timeout: float = 20.0,
        clock: Callable[[], datetime] = utc_now,
        watch_video_ids: Callable[[], Sequence[str]] | None = None,
        channel_ids: Sequence[str] = (),
        client: httpx.Client | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("an API key is required (YOUTUBE_API_KEY)")
        if daily_quota < 1:
            raise ValueError("daily_quota must be at least 1")
        if not 1 <= max_results <= 50:
            raise ValueError("max_results must be between 1 and 50 (search.list's limit)")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.api_url = api_url.rstrip("/") + "/"
        self._key = api_key
        self._daily_quota = daily_quota
        self._max_results = max_results
        self._timeout = timeout
        self._clock = clock
        self._watch = watch_video_ids
        self._channels = list(dict.fromkeys(c for c in channel_ids if c))
        self._owns_client = client is None  # a client passed in belongs to the caller
        self._client = client if client is not None else httpx.Client(timeout=timeout)

    def watch(self, video_ids: Callable[[], Sequence[str]] | None) -> None:
        """Where each poll learns the videos to re-read and whose comments to follow (the
        daemon hands in the complaint videos of the archive's recent stories)."""
        self._watch = video_ids

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    # -- quota planning ------------------------------------------------------------------------

    @staticmethod
    def searches_for(queries: Sequence[str]) -> list[str]:
        """The ``q`` of every search.list call one poll makes for these brand queries."""
        out: dict[str, None] = {}
        for query in queries:
            groups = or_groups(query)
            single = [g[0].plain() for g in groups if len(g) == 1]
            if single:
                out.setdefault("|".join(dict.fromkeys(single)), None)
            for group in groups:
                if len(group) > 1:
                    out.setdefault(" ".join(t.plain() for t in group), None)
        return list(out)

    @staticmethod
    def units_per_day(every: timedelta, queries: int) -> int:
        """Quota units a day of polling every ``every`` with ``queries`` search.list calls per
        poll spends on searches (100 units each; statistics and comments cost 1 unit per call
        and are left out): 2 searches every 5 minutes need 57,600 of the default 10,000."""
        if every.total_seconds() <= 0:
            raise ValueError("every must be positive")
        polls = math.ceil(timedelta(days=1) / every)
        return polls * queries * SEARCH_COST

    # -- the poll ------------------------------------------------------------------------------

    def fetch(self, queries: Sequence[str], cursor: Mapping[str, Any] | None) -> FetchResult:
        """Search, refresh statistics, read comments; see the module docstring."""
        cursor = cursor if isinstance(cursor, Mapping) else {}
        now = self._clock()
        quota = _Quota.from_json(cursor.get("quota"), pacific_day(now).isoformat())
        problems: list[str] = []
        short = False  # some call was skipped for want of quota

        saved = _mapping(cursor.get("searches"))
        searches: dict[str, dict[str, Any]] = {}
        found: dict[str, dict[str, Any]] = {}  # video id -> search result
        for q in self.searches_for(queries):
            state = _SearchState.from_json(saved.get(q))
            if not short:
                try:
                    state, results = self._search(q, state, now, quota, problems)
                except _OutOfQuota:
                    short, results = True, []
                for item in results:
                    found.setdefault(item["id"]["videoId"], item)
            searches[q] = asdict(state)

        watched = [v for v in dict.fromkeys(self._watch() if self._watch else ()) if v]
        wanted = list(dict.fromkeys([*found, *watched]))
        videos, skipped = self._videos(wanted, quota)
        short = short or skipped
        mentions: dict[str, Mention] = {}
        for video_id in wanted:
            if video_id in videos:
                mentions[video_id] = _video_mention(videos[video_id])
            elif video_id in found:
                mentions[video_id] = _search_mention(found[video_id])

        saved_comments = _mapping(cursor.get("comments"))
        comments: dict[str, dict[str, Any]] = {}
        comments_short = False
        for key in [f"video:{v}" for v in watched] + [f"channel:{c}" for c in self._channels]:
            stream = _CommentState.from_json(saved_comments.get(key))
            if not comments_short:
                try:
                    stream, threads = self._comments(key, stream, quota, problems)
                except _OutOfQuota:
                    comments_short, threads = True, []
                for thread in threads:
                    mention = _comment_mention(thread)
                    mentions.setdefault(mention.source_id, mention)
            comments[key] = asdict(stream)

        if (short or comments_short) and not quota.reported:
            quota.reported = True
            problems.append(f"YouTube quota for {quota.day} used up ({quota.used} units); "
                            "next poll after midnight Pacific")
        return FetchResult(mentions=list(mentions.values()),
                           cursor={"quota": asdict(quota), "searches": searches,
                                   "comments": comments},
                           problems=problems)

    def refresh(self, ids: Sequence[str]) -> list[Mention]:
        """Current views, likes and comment counts of these videos (``videos.list``
        ``part=statistics,snippet``, 50 ids a call, 1 quota unit each — outside the poll's
        daily count, which this estimate then undercounts a little). Comment ids are skipped
        (their likes matter less than their video's views); deleted videos are left out."""
        wanted = [i for i in dict.fromkeys(ids) if _VIDEO_ID.fullmatch(i)]
        mentions: list[Mention] = []
        for start in range(0, len(wanted), _IDS_PER_CALL):
            try:
                body = self._get("videos", {"part": "statistics,snippet",
                                            "id": ",".join(wanted[start:start + _IDS_PER_CALL]),
                                            "maxResults": _IDS_PER_CALL})
            except _Rejected as exc:
                raise ConnectorError(self.name, f"YouTube refused a videos.list look-up: {exc}"
                                     ) from exc
            mentions.extend(_video_mention(item) for item in body.get("items") or ()
                            if isinstance(item, dict) and item.get("id")
                            and _mapping(item.get("snippet")).get("publishedAt"))
        return mentions

    # -- the three calls -----------------------------------------------------------------------

    def _search(self, q: str, state: _SearchState, now: datetime, quota: _Quota,
                problems: list[str]) -> tuple[_SearchState, list[dict[str, Any]]]:
        label = f"YouTube search {q!r}"
        if state.newest is not None:
            after = parse_time(state.newest) - _SEARCH_OVERLAP
        else:
            after = now - _FIRST_LOOKBACK
        self._spend(quota, SEARCH_COST)
        try:
            body = self._get("search", {"part": "snippet", "q": q, "type": "video",
                                        "order": "date", "publishedAfter": format_time(after),
                                        "maxResults": self._max_results})
        except _Rejected as exc:
            reason = f"{label}: YouTube rejected it ({exc})"
            if state.error != reason:
                problems.append(reason)
            return replace(state, error=reason), []
        if state.error is not None:
            problems.append(f"{label} works again")
        items = [i for i in body.get("items") or ()
                 if isinstance(i, dict) and (i.get("id") or {}).get("videoId")]
        capped = bool(body.get("nextPageToken")) and len(items) >= self._max_results
        if capped and not state.capped:
            problems.append(f"{label}: more than {self._max_results} new videos since the last "
                            "poll; read the newest only (poll more often or narrow the query)")
        times = {i["id"]["videoId"]: _valid_time((i.get("snippet") or {}).get("publishedAt"))
                 for i in items}
        new = [i for i in items if i["id"]["videoId"] not in state.recent]
        stamps = [t for t in times.values() if t] + ([state.newest] if state.newest else [])
        newest = max(stamps, key=parse_time) if stamps else None
        recent = {**state.recent, **{k: v for k, v in times.items() if v}}
        if newest is not None:
            cutoff = parse_time(newest) - _SEARCH_OVERLAP
            recent = {k: v for k, v in recent.items() if parse_time(v) >= cutoff}
        return _SearchState(newest=newest, recent=recent, capped=capped), new

    def _videos(self, ids: list[str],
                quota: _Quota) -> tuple[dict[str, dict[str, Any]], bool]:
        """videos.list for ``ids``, 50 a call; and whether some were skipped for quota."""
        videos: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), _IDS_PER_CALL):
            try:
                self._spend(quota, VIDEOS_COST)
            except _OutOfQuota:
                return videos, True
            try:
                body = self._get("videos", {"part": "statistics,snippet",
                                            "id": ",".join(ids[start:start + _IDS_PER_CALL]),
                                            "maxResults": _IDS_PER_CALL})
            except _Rejected:
                continue  # a malformed id: those videos come from the search snippet, if any
            for item in body.get("items") or ():
                if isinstance(item, dict) and item.get("id"):
                    videos[str(item["id"])] = item
        return videos, False

    def _comments(self, key: str, state: _CommentState, quota: _Quota,
                  problems: list[str]) -> tuple[_CommentState, list[dict[str, Any]]]:
        kind, _, ident = key.partition(":")
        label = f"YouTube comments of {kind} {ident}"
        param = "videoId" if kind == "video" else "allThreadsRelatedToChannelId"
        mark = parse_time(state.newest) if state.newest else None
        seen = set(state.seen)
        threads: list[dict[str, Any]] = []
        page_token: str | None = None
        try:
            for _page in range(_MAX_COMMENT_PAGES if mark else 1):
                self._spend(quota, COMMENTS_COST)
                params: dict[str, Any] = {"part": "snippet", param: ident, "order": "time",
                                          "maxResults": _COMMENTS_PER_PAGE,
                                          "textFormat": "plainText"}
                if page_token:
                    params["pageToken"] = page_token
                body = self._get("commentThreads", params)
                reached_old = False
                for thread in _threads(body):
                    published = parse_time(_top(thread)["publishedAt"])
                    if mark is not None and (published < mark or (
                            published == mark and thread["id"] in seen)):
                        reached_old = published < mark or reached_old
                        continue
                    threads.append(thread)
                page_token = body.get("nextPageToken")
                if reached_old or not page_token:
                    break
        except _Rejected as exc:
            reason = f"{label}: {exc}"
            if state.error != reason:
                problems.append(reason)
            return replace(state, error=reason), []
        if state.error is not None:
            problems.append(f"{label} can be read again")
        newest, seen_now = state.newest, list(state.seen)
        for thread in threads:
            stamp = format_time(parse_time(_top(thread)["publishedAt"]))
            if newest is None or parse_time(stamp) > parse_time(newest):
                newest, seen_now = stamp, []
            if stamp == newest and len(seen_now) < _MAX_SEEN:
                seen_now.append(str(thread["id"]))
        return _CommentState(newest=newest, seen=seen_now), threads

    # -- HTTP ----------------------------------------------------------------------------------

    def _spend(self, quota: _Quota, cost: int) -> None:
        if quota.used + cost > self._daily_quota:
            raise _OutOfQuota
        quota.used += cost

    def _get(self, resource: str, params: Mapping[str, Any]) -> dict[str, Any]:
        response = send(self._client, "GET", self.api_url + resource,
                        params={**params, "key": self._key},
                        headers={"Accept": "application/json"}, source=self.name,
                        service="YouTube", base_url=self.api_url, what=f"{resource}.list",
                        timeout=self._timeout)
        return self._checked(response)

    def _checked(self, response: httpx.Response) -> dict[str, Any]:
        code = response.status_code
        where = endpoint(response)
        try:
            body = response.json()
        except ValueError:
            body = None
        if code == 200 and isinstance(body, dict):
            return body
        if body is None:
            raise not_json(self.name, "YouTube", response)
        reasons, message = _google_error(body)
        if reasons & _QUOTA_REASONS:
            now = self._clock()
            reset = next_pacific_midnight(now)
            raise RateLimited(self.name, f"YouTube says the daily quota is used up ({message});"
                                         f" it resets at {format_time(reset)} (midnight "
                                         "Pacific)", retry_after=(reset - now).total_seconds())
        if code == 429 or reasons & _RATE_REASONS:
            raise RateLimited(self.name, f"YouTube rate limit reached ({message})")
        if code == 401 or reasons & _AUTH_REASONS or "API key not valid" in message:
            raise AuthFailed(self.name, f"{_AUTH_HELP} (HTTP {code}: {message})")
        if code >= 500:
            raise TransientError(self.name, f"YouTube server error at {where}: HTTP {code} "
                                            f"{message}")
        if code in (400, 403, 404):
            raise _Rejected(f"HTTP {code} {', '.join(sorted(reasons)) or 'error'}: {message}")
        raise ConnectorError(self.name, f"unexpected answer from {where}: HTTP {code} {message}")


# -- mapping -------------------------------------------------------------------------------------


def _video_mention(video: Mapping[str, Any]) -> Mention:
    snippet = _mapping(video.get("snippet"))
    stats = _mapping(video.get("statistics"))
    video_id = str(video["id"])
    return Mention(
        source="youtube",
        source_id=video_id,
        url=_WATCH_URL + video_id,
        text=_join(str(snippet.get("title") or ""), str(snippet.get("description") or "")),
        created_at=parse_time(str(snippet["publishedAt"])),
        author=Author(handle=str(snippet.get("channelId") or ""),
                      name=str(snippet.get("channelTitle") or "")),
        engagement=Engagement(likes=_count(stats, "likeCount"),
                              replies=_count(stats, "commentCount"),
                              score=_count(stats, "viewCount")),
        lang=_language(snippet.get("defaultAudioLanguage") or snippet.get("defaultLanguage")),
        raw=dict(video),
    )


def _search_mention(result: Mapping[str, Any]) -> Mention:
    """A video known only from search.list (videos.list was skipped): no statistics, and
    search.list HTML-escapes titles and descriptions (``&#39;``)."""
    snippet = _mapping(result.get("snippet"))
    video_id = str(result["id"]["videoId"])
    return Mention(
        source="youtube",
        source_id=video_id,
        url=_WATCH_URL + video_id,
        text=_join(html.unescape(str(snippet.get("title") or "")),
                   html.unescape(str(snippet.get("description") or ""))),
        created_at=parse_time(str(snippet["publishedAt"])),
        author=Author(handle=str(snippet.get("channelId") or ""),
                      name=html.unescape(str(snippet.get("channelTitle") or ""))),
        raw=dict(result),
    )


def _comment_mention(thread: Mapping[str, Any]) -> Mention:
    top = _top(thread)
    comment_id = str(_mapping(_mapping(thread.get("snippet")).get("topLevelComment")).get("id")
                     or thread["id"])
    video_id = str(top.get("videoId") or _mapping(thread.get("snippet")).get("videoId") or "")
    text = top.get("textOriginal")
    if not isinstance(text, str):
        text = html_to_text(str(top.get("textDisplay") or ""))
    name = str(top.get("authorDisplayName") or "")
    return Mention(
        source="youtube",
        source_id=comment_id,
        url=f"{_WATCH_URL}{video_id}&lc={comment_id}",
        text=text[:MAX_TEXT],
        created_at=parse_time(str(top["publishedAt"])),
        author=Author(handle=name, name=name.removeprefix("@")),
        engagement=Engagement(likes=_count(top, "likeCount"),
                              replies=_count(_mapping(thread.get("snippet")), "totalReplyCount")),
        parent_id=video_id or None,
        conversation_id=video_id or None,
        raw=dict(thread),
    )


def _threads(body: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for thread in body.get("items") or ():
        if isinstance(thread, dict) and thread.get("id"):
            top = _top(thread)
            if _valid_time(top.get("publishedAt")):
                yield thread


def _top(thread: Mapping[str, Any]) -> Mapping[str, Any]:
    """The snippet of a thread's top-level comment."""
    top = _mapping(_mapping(thread.get("snippet")).get("topLevelComment"))
    return _mapping(top.get("snippet"))


def _google_error(body: Any) -> tuple[set[str], str]:
    """The ``errors[].reason`` (and ``details[].reason``) names and the message of a Google API
    error body."""
    error = _mapping(body.get("error")) if isinstance(body, dict) else {}
    reasons = {str(e.get("reason")) for e in error.get("errors") or ()
               if isinstance(e, dict) and e.get("reason")}
    reasons |= {str(d.get("reason")) for d in error.get("details") or ()
                if isinstance(d, dict) and d.get("reason")}
    return reasons, html_to_text(str(error.get("message") or "no message"))


def _join(title: str, body: str) -> str:
    return "\n\n".join(p for p in (title.strip(), body.strip()) if p)[:MAX_TEXT]


def _language(value: object) -> str | None:
    if not isinstance(value, str) or not value or value in ("zxx", "und"):
        return None
    return value.split("-")[0].lower()


def _count(data: Mapping[str, Any], key: str) -> int:
    """YouTube sends statistics as decimal strings ("1234"); a hidden count is absent."""
    value = data.get(key)
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else 0


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _valid_time(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return format_time(parse_time(value))
    except ValueError:
        return None
