"""Mastodon: status search and hashtag timelines of one instance, over plain HTTP.

Streams read per poll, each newest first:

* ``search:<text>`` — ``GET /api/v2/search?q=...&type=statuses&resolve=false`` for every
  OR-group of every brand query (:func:`connectors.querytext.search_texts`: terms
  space-separated, phrases quoted, the ``@``/``#`` of handles and hashtags dropped, negations
  dropped), paged with ``offset``. Full-text status search needs an access token on most
  instances (and finds only posts whose authors opted in to search), so without
  ``access_token`` no search runs and that is reported once;
* ``tag:<tag>`` — ``GET /api/v1/timelines/tag/<tag>`` for every ``#hashtag`` in the brand
  queries and every configured ``hashtags`` entry, with or without a token.

Incremental polling: the cursor keeps per stream the newest status id seen and sends it as
``min_id``. A hashtag timeline then answers the statuses right after it, and the connector
follows the ``Link: <…>; rel="prev"`` header (towards newer statuses) for up to ``max_pages``
pages, so a busy hashtag is caught up over several polls without a gap. A search is paged with
``offset`` (newest first) down to ``min_id``; a search with more than ``max_pages`` pages of new
statuses skips the older ones, which is reported once. The first poll of a stream reads its
newest page only. Statuses are returned once per poll, keyed by their ``uri`` (the
``source_id``, the same on every instance; ``id`` is local to the instance).

Errors: a refused token (401, or 403 for a token without the ``read`` scope) raises
:class:`AuthFailed` naming MASTODON_ACCESS_TOKEN; 429 raises :class:`RateLimited` with
``retry_after`` from ``X-RateLimit-Reset`` (an ISO time); 5xx, network errors and HTML pages
where JSON was expected raise :class:`TransientError` naming the URL. These end the poll and no
cursor advances. A stream the instance rejects (404, 422) is reported once as a problem and the
others still run.

Cursor (JSON-serialisable; streams no longer configured are dropped)::

    {"streams": {"search:<text>" | "tag:<tag>": {"min_id": str | None, "capped": bool,
                                                 "error": str | None}},
     "search_off_reported": bool}
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

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
from connectors.querytext import hashtags as query_hashtags
from connectors.querytext import search_texts
from connectors.rss import html_to_text

_AUTH_HELP = "Mastodon refused the access token: check MASTODON_ACCESS_TOKEN"
# Status URIs whose instance-local id this process remembers, for refresh (a bound).
_MAX_LOCAL_IDS = 20_000
# A status URI of the instance itself: https://host/users/<name>/statuses/<id>.
_LOCAL_URI = re.compile(r"^/users/[^/]+/statuses/(\d+)$")



@dataclass(frozen=True, slots=True)
class _StreamState:
    min_id: str | None = None
    capped: bool = False
    error: str | None = None

    @classmethod
    def from_json(cls, data: object) -> _StreamState:
        if not isinstance(data, Mapping):
            return cls()
        min_id, error = data.get("min_id"), data.get("error")
        return cls(min_id=str(min_id) if isinstance(min_id, (str, int)) and str(min_id) else None,
                   capped=data.get("capped") is True,
                   error=error if isinstance(error, str) and error else None)


class _Rejected(Exception):
    """The instance refused one stream (404, 422): a problem for it, not for the poll."""


class MastodonConnector(Connector):
    """Status search and hashtag timelines on one Mastodon instance."""

    name: ClassVar[str] = "mastodon"
    can_refresh: ClassVar[bool] = True

    def __init__(
        self,
        *,
        api_url: str = "https://mastodon.social/",
        access_token: str = "",
        hashtags: Sequence[str] = (),
        limit: int = 40,
        max_pages: int = 5,
        timeout: float = 20.0,
        clock: Callable[[], datetime] = utc_now,
        client: httpx.Client | None = None,
    ) -> None:
        if not 1 <= limit <= 40:
            raise ValueError("limit must be between 1 and 40 (Mastodon's page size limit)")
        if max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.api_url = api_url.rstrip("/") + "/"
        self._token = access_token
        self._hashtags = [t.strip().lstrip("#") for t in hashtags if t.strip().lstrip("#")]
        self._limit = limit
        self._max_pages = max_pages
        self._timeout = timeout
        self._clock = clock
        self._owns_client = client is None  # a client passed in belongs to the caller
        self._client = client if client is not None else httpx.Client(timeout=timeout)
        self._local_ids: dict[str, str] = {}  # status URI -> id on this instance

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    # -- the poll ------------------------------------------------------------------------------

    def fetch(self, queries: Sequence[str], cursor: Mapping[str, Any] | None) -> FetchResult:
        """Read every stream once; see the module docstring for cursor, problems and errors."""
        cursor = cursor if isinstance(cursor, Mapping) else {}
        saved = _mapping(cursor.get("streams"))
        problems: list[str] = []
        tags = dict.fromkeys(t.casefold() for q in queries for t in query_hashtags(q))
        tags.update(dict.fromkeys(t.casefold() for t in self._hashtags))
        streams = [f"tag:{t}" for t in tags]
        search_off_reported = False
        if self._token:
            texts = (t for q in queries for t in search_texts(q))
            streams = [f"search:{t}" for t in dict.fromkeys(texts)] + streams
        elif queries:
            search_off_reported = True
            if cursor.get("search_off_reported") is not True:
                listed = ", ".join(f"#{t}" for t in tags) or "none"
                problems.append("Mastodon: no access token (MASTODON_ACCESS_TOKEN), so "
                                "full-text search is off; reading only hashtag timelines "
                                f"({listed})")
        states: dict[str, dict[str, Any]] = {}
        mentions: dict[str, Mention] = {}
        for key in streams:
            state, statuses, said = self._poll_stream(key, _StreamState.from_json(saved.get(key)))
            states[key] = asdict(state)
            problems.extend(said)
            for status in statuses:
                mention = _to_mention(status)
                self._remember(mention.source_id, status)
                mentions.setdefault(mention.source_id, mention)
        return FetchResult(mentions=list(mentions.values()),
                           cursor={"streams": states, "search_off_reported": search_off_reported},
                           problems=problems)

    def refresh(self, ids: Sequence[str]) -> list[Mention]:
        """Current favourites, boosts, replies and author followers of these statuses
        (``GET /api/v1/statuses/:id``, one request each). The ``source_id`` is the status URI;
        its id on this instance comes from the statuses this process has read, from the URI
        itself for the instance's own statuses, else (with a token) from a resolving search.
        Deleted statuses and ones the instance cannot find are left out."""
        mentions: list[Mention] = []
        for uri in dict.fromkeys(ids):
            local = self._local_id(uri)
            if local is None:
                continue
            try:
                status, _ = self._get(f"api/v1/statuses/{quote(local, safe='')}", None)
            except _Rejected:
                continue  # deleted (404) or gone (410)
            if _usable(status):
                mention = _to_mention(status)
                self._remember(uri, status)
                mentions.append(mention)
        return mentions

    def _remember(self, uri: str, status: Mapping[str, Any]) -> None:
        if status.get("id"):
            self._local_ids.pop(uri, None)
            self._local_ids[uri] = str(status["id"])
            while len(self._local_ids) > _MAX_LOCAL_IDS:
                self._local_ids.pop(next(iter(self._local_ids)))

    def _local_id(self, uri: str) -> str | None:
        if uri in self._local_ids:
            return self._local_ids[uri]
        parts = urlsplit(uri)
        if parts.netloc == urlsplit(self.api_url).netloc and (m := _LOCAL_URI.match(parts.path)):
            return m.group(1)
        if not self._token or not uri.startswith(("http://", "https://")):
            return None
        try:
            body, _ = self._get("api/v2/search", {"q": uri, "type": "statuses",
                                                  "resolve": "true", "limit": 1})
        except _Rejected:
            return None
        found = body.get("statuses") if isinstance(body, dict) else None
        if found and isinstance(found[0], dict) and found[0].get("id"):
            return str(found[0]["id"])
        return None

    def _poll_stream(self, key: str, state: _StreamState
                     ) -> tuple[_StreamState, list[dict[str, Any]], list[str]]:
        kind, _, what = key.partition(":")
        label = f"Mastodon search {what!r}" if kind == "search" else f"Mastodon hashtag #{what}"
        problems: list[str] = []
        try:
            if kind == "search":
                statuses, capped = self._read_search(what, state.min_id)
            else:
                statuses, capped = self._read_tag(what, state.min_id), False
        except _Rejected as exc:
            reason = f"{label}: the instance refused it ({exc})"
            if state.error != reason:
                problems.append(reason)
            return replace(state, error=reason), [], problems
        if state.error is not None:
            problems.append(f"{label} works again")
        if capped and not state.capped:
            problems.append(f"{label}: more than {self._max_pages} pages of {self._limit} new "
                            "statuses since the last poll; read the newest only (raise "
                            "max_pages, poll more often or narrow the query)")
        newest = state.min_id
        for status in statuses:
            newest = _max_id(newest, str(status.get("id") or ""))
        return _StreamState(min_id=newest, capped=capped), statuses, problems

    def _read_search(self, text: str, min_id: str | None) -> tuple[list[dict[str, Any]], bool]:
        statuses: list[dict[str, Any]] = []
        for page in range(self._max_pages):
            params: dict[str, Any] = {"q": text, "type": "statuses", "resolve": "false",
                                      "limit": self._limit}
            if min_id:
                params["min_id"] = min_id
            if page:
                params["offset"] = page * self._limit
            body, _ = self._get("api/v2/search", params)
            found = body.get("statuses") if isinstance(body, dict) else None
            found = [s for s in found or () if _usable(s)]
            statuses.extend(found)
            if len(found) < self._limit or min_id is None:
                return statuses, False
        return statuses, True

    def _read_tag(self, tag: str, min_id: str | None) -> list[dict[str, Any]]:
        path: str | None = f"api/v1/timelines/tag/{quote(tag, safe='')}"
        params: dict[str, Any] | None = {"limit": self._limit}
        if min_id:
            params = {"limit": self._limit, "min_id": min_id}
        statuses: list[dict[str, Any]] = []
        for _page in range(self._max_pages):
            assert path is not None
            body, response = self._get(path, params)
            found = [s for s in body or () if _usable(s)] \
                if isinstance(body, list) else []
            statuses.extend(found)
            prev = response.links.get("prev", {}).get("url")
            if min_id is None or len(found) < self._limit or not prev:
                break
            path, params = self._rebased(prev), None  # the link's query has min_id and limit
        return statuses

    # -- HTTP ----------------------------------------------------------------------------------

    def _rebased(self, link: str) -> str:
        """A Link header URL (built from the instance's public host) relative to ``api_url``,
        so paging keeps going through the configured proxy or test server."""
        parts = urlsplit(link)
        base_path = urlsplit(self.api_url).path
        path = parts.path[len(base_path):] if parts.path.startswith(base_path) else \
            parts.path.lstrip("/")
        return path + (f"?{parts.query}" if parts.query else "")

    def _get(self, path: str, params: Mapping[str, Any] | None) -> tuple[Any, httpx.Response]:
        headers = {"Accept": "application/json", "User-Agent": "Uproar (brand monitoring)"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        response = send(self._client, "GET", self.api_url + path, params=params,
                        headers=headers, source=self.name, service="Mastodon",
                        base_url=self.api_url, what=self.api_url, timeout=self._timeout)
        return self._checked(response), response

    def _checked(self, response: httpx.Response) -> Any:
        code = response.status_code
        where = endpoint(response)
        if code in (401, 403):
            hint = "" if self._token else " (this instance wants one even for hashtag timelines)"
            raise AuthFailed(self.name, f"{_AUTH_HELP}{hint} (HTTP {code}: "
                                        f"{_error_text(response)})")
        if code == 429:
            raise self._rate_limited(response)
        if code >= 500:
            raise TransientError(self.name, f"Mastodon server error at {where}: HTTP {code} "
                                            f"{_error_text(response)}")
        if code in (400, 404, 410, 422):
            raise _Rejected(f"HTTP {code}: {_error_text(response)}")
        if code != 200:
            raise ConnectorError(self.name, f"unexpected answer from {where}: HTTP {code} "
                                            f"{_error_text(response)}")
        try:
            return response.json()
        except ValueError as exc:
            raise not_json(self.name, "Mastodon", response) from exc

    def _rate_limited(self, response: httpx.Response) -> RateLimited:
        reset = response.headers.get("x-ratelimit-reset", "")
        message = "Mastodon rate limit reached"
        retry_after = None
        try:
            reset_at = parse_time(reset) if reset else None
        except ValueError:
            reset_at = None
        if reset_at is not None:
            retry_after = max(0.0, (reset_at - self._clock()).total_seconds())
            message += f"; it resets at {format_time(reset_at)}"
        return RateLimited(self.name, message, retry_after=retry_after)


# -- mapping -------------------------------------------------------------------------------------


def _to_mention(status: Mapping[str, Any]) -> Mention:
    account = _mapping(status.get("account"))
    uri = str(status.get("uri") or status.get("url") or status["id"])
    text = html_to_text(str(status.get("content") or ""))
    warning = str(status.get("spoiler_text") or "").strip()
    if warning:
        text = f"{warning}\n\n{text}"
    followers = account.get("followers_count")
    lang = status.get("language")
    parent = status.get("in_reply_to_id")
    return Mention(
        source="mastodon",
        source_id=uri,
        url=str(status.get("url") or uri),
        text=text[:MAX_TEXT],
        created_at=parse_time(str(status["created_at"])),
        author=Author(handle=str(account.get("acct") or ""),
                      name=str(account.get("display_name") or ""),
                      followers=followers if isinstance(followers, int) else None),
        engagement=Engagement(
            likes=_count(status, "favourites_count"),
            reposts=_count(status, "reblogs_count"),
            replies=_count(status, "replies_count"),
        ),
        lang=lang if isinstance(lang, str) and lang else None,
        parent_id=str(parent) if parent else None,
        raw=dict(status),
    )


def _usable(status: object) -> bool:
    """A status the mapping can read (a malformed one is skipped, not a crashed poll)."""
    if not isinstance(status, dict) or not status.get("id"):
        return False
    try:
        parse_time(str(status.get("created_at")))
    except ValueError:
        return False
    return True


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _count(status: Mapping[str, Any], key: str) -> int:
    value = status.get(key)
    return value if isinstance(value, int) else 0


def _max_id(a: str | None, b: str | None) -> str | None:
    """The newer of two status ids (decimal strings on Mastodon; compared as numbers)."""
    ids = [x for x in (a, b) if x]
    if not ids:
        return None
    return max(ids, key=lambda x: (int(x) if x.isdigit() else -1, x))


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(body, dict) and body.get("error"):
        detail = body.get("error_description")
        return str(body["error"]) + (f" ({detail})" if detail else "")
    return response.reason_phrase
