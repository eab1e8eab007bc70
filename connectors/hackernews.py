"""Hacker News: stories and comments naming a brand, from the Algolia HN Search API.

Per OR-group of every brand query (:func:`connectors.querytext.search_texts`: Algolia matches
plain words and quoted phrases, all words required; the ``@``/``#`` of handles and hashtags and
every negation are dropped) one poll reads ``GET search_by_date?query=...&tags=(story,comment)
&numericFilters=created_at_i>T&hitsPerPage=N&page=P``, newest first, paging by ``page`` until
``nbPages`` or ``max_pages``. No key is needed.

Overlapping windows: Algolia indexes some items minutes late, under their original
``created_at_i``. So ``T`` is the newest ``created_at_i`` the last poll saw minus ``overlap``
seconds, and every poll re-reads that window; the ids already returned in it (kept in the
cursor) are skipped, so late items are caught and nothing is returned twice. The first poll of a
search reads the last :data:`_FIRST_LOOKBACK`. A window with more new hits than ``max_pages``
pages (or Algolia's 1,000-hit cap) misses the older ones: that is reported once.

Errors: 429 raises :class:`RateLimited` (Algolia allows 10,000 requests an hour per IP);
5xx, network errors and HTML pages where JSON was expected raise :class:`TransientError` naming
the URL; these end the poll and no cursor advances. A query Algolia rejects (400) is reported
once as a problem and the other searches still run.

Cursor (JSON-serialisable; searches of queries no longer configured are dropped)::

    {"searches": {"<search text>": {"newest": int | None, "recent": {objectID: created_at_i},
                                     "capped": bool, "error": str | None}}}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx

from connectors.base import (
    MAX_TEXT,
    Author,
    Connector,
    ConnectorError,
    EndpointGone,
    Engagement,
    FetchResult,
    Mention,
    RateLimited,
    TransientError,
    parse_time,
    utc_now,
)
from connectors.jsonhttp import endpoint, not_json, send
from connectors.querytext import search_texts
from connectors.rss import html_to_text

# Links in mentions point at the public site, whatever api_url a test or proxy uses.
_ITEM_URL = "https://news.ycombinator.com/item?id="
# How far back the first poll of a new search reads.
_FIRST_LOOKBACK = timedelta(days=1)
# A bound on the ids remembered per search, in case a flood fits in one overlap window.
_MAX_RECENT = 2000
_SERVICE = "Hacker News search"



@dataclass(frozen=True, slots=True)
class _SearchState:
    newest: int | None = None
    recent: dict[str, int] = field(default_factory=dict)
    capped: bool = False
    error: str | None = None

    @classmethod
    def from_json(cls, data: object) -> _SearchState:
        if not isinstance(data, Mapping):
            return cls()
        newest, recent, error = data.get("newest"), data.get("recent"), data.get("error")
        return cls(
            newest=newest if isinstance(newest, int) else None,
            recent={str(k): v for k, v in recent.items() if isinstance(v, int)}
            if isinstance(recent, Mapping) else {},
            capped=data.get("capped") is True,
            error=error if isinstance(error, str) and error else None)


class _Rejected(Exception):
    """Algolia refused one query (400): a problem for that search, not for the poll."""


class HackerNewsConnector(Connector):
    """Stories and comments from the Algolia Hacker News Search API."""

    name: ClassVar[str] = "hackernews"
    can_refresh: ClassVar[bool] = True

    def __init__(
        self,
        *,
        api_url: str = "https://hn.algolia.com/api/v1/",
        overlap: float = 600,
        hits_per_page: int = 100,
        max_pages: int = 10,
        timeout: float = 20.0,
        clock: Callable[[], datetime] = utc_now,
        client: httpx.Client | None = None,
    ) -> None:
        if overlap < 0:
            raise ValueError("overlap must not be negative")
        if not 1 <= hits_per_page <= 1000:
            raise ValueError("hits_per_page must be between 1 and 1000")
        if max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.api_url = api_url.rstrip("/") + "/"
        self._overlap = int(overlap)
        self._hits_per_page = hits_per_page
        self._max_pages = max_pages
        self._timeout = timeout
        self._clock = clock
        self._owns_client = client is None  # a client passed in belongs to the caller
        self._client = client if client is not None else httpx.Client(timeout=timeout)

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    # -- the poll ------------------------------------------------------------------------------

    def fetch(self, queries: Sequence[str], cursor: Mapping[str, Any] | None) -> FetchResult:
        """Run every search once; see the module docstring for cursor, problems and errors."""
        saved = cursor.get("searches") if isinstance(cursor, Mapping) else None
        saved = saved if isinstance(saved, Mapping) else {}
        texts = dict.fromkeys(t for q in queries for t in search_texts(q))
        states: dict[str, dict[str, Any]] = {}
        mentions: dict[str, Mention] = {}
        problems: list[str] = []
        for text in texts:
            state, hits, said = self._poll_search(text, _SearchState.from_json(saved.get(text)))
            states[text] = asdict(state)
            problems.extend(said)
            for hit in hits:
                mentions.setdefault(str(hit["objectID"]), _to_mention(hit))
        return FetchResult(mentions=list(mentions.values()), cursor={"searches": states},
                           problems=problems)

    def _poll_search(self, text: str, state: _SearchState
                     ) -> tuple[_SearchState, list[dict[str, Any]], list[str]]:
        problems: list[str] = []
        if state.newest is not None:
            since = state.newest - self._overlap
        else:
            since = int((self._clock() - _FIRST_LOOKBACK).timestamp())
        try:
            hits, capped = self._search(text, since)
        except _Rejected as exc:
            reason = f"Hacker News search rejected the query {text!r}: {exc}"
            if state.error != reason:
                problems.append(reason)
            return replace(state, error=reason), [], problems
        if state.error is not None:
            problems.append(f"Hacker News search {text!r} works again")
        if capped and not state.capped:
            problems.append(
                f"Hacker News search {text!r}: more new stories and comments than "
                f"{self._max_pages} pages of {self._hits_per_page} (or Algolia's 1,000 hits) "
                "since the last poll; read the newest only (poll more often or narrow the query)")
        new = [h for h in hits if str(h["objectID"]) not in state.recent]
        times = {str(h["objectID"]): _created_i(h) for h in hits}
        newest = max([state.newest or 0, *times.values()]) or None
        recent = {**state.recent, **times}
        if newest is not None:
            recent = {k: v for k, v in recent.items() if v > newest - self._overlap}
        recent = dict(sorted(recent.items(), key=lambda kv: kv[1])[-_MAX_RECENT:])
        return _SearchState(newest=newest, recent=recent, capped=capped), new, problems

    def _search(self, text: str, since: int) -> tuple[list[dict[str, Any]], bool]:
        hits: list[dict[str, Any]] = []
        for page in range(self._max_pages):
            body = self._get_found("search_by_date", {
                "query": text, "tags": "(story,comment)",
                "numericFilters": f"created_at_i>{since}",
                "hitsPerPage": self._hits_per_page, "page": page})
            found = [h for h in body.get("hits") or ()
                     if isinstance(h, dict) and h.get("objectID") is not None]
            hits.extend(found)
            pages = body.get("nbPages")
            if not found or not isinstance(pages, int) or page + 1 >= pages:
                nb_hits = body.get("nbHits")
                truncated = isinstance(nb_hits, int) and nb_hits > len(hits) and found
                return hits, bool(truncated)
        return hits, True

    def refresh(self, ids: Sequence[str]) -> list[Mention]:
        """Current points and comment counts of these stories and comments (``GET items/:id``,
        one request each; the comment count is the item's descendants). Deleted items (404)
        are left out."""
        mentions: list[Mention] = []
        for object_id in dict.fromkeys(i for i in ids if i.isdigit()):
            item = self._get(f"items/{object_id}", {}, missing_ok=True)
            if item is not None and item.get("id") is not None:
                mentions.append(_to_mention(_item_hit(item)))
        return mentions

    # -- HTTP ----------------------------------------------------------------------------------

    def _get_found(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        body = self._get(path, params)
        assert body is not None  # only missing_ok=True answers None
        return body

    def _get(self, path: str, params: Mapping[str, Any],
             missing_ok: bool = False) -> dict[str, Any] | None:
        response = send(self._client, "GET", self.api_url + path, params=params,
                        headers={"Accept": "application/json",
                                 "User-Agent": "Uproar (brand monitoring)"},
                        source=self.name, service=_SERVICE, base_url=self.api_url,
                        what=self.api_url, timeout=self._timeout)
        code = response.status_code
        where = endpoint(response)
        if code == 429:
            retry = response.headers.get("retry-after", "")
            raise RateLimited(self.name, "Hacker News search (Algolia) rate limit reached",
                              retry_after=float(retry) if retry.isdigit() else None)
        if code >= 500:
            raise TransientError(self.name, f"Hacker News search server error at {where}: "
                                            f"HTTP {code} {_error_text(response)}")
        if code == 400:
            raise _Rejected(_error_text(response))
        if code == 404 and missing_ok:
            return None
        if code in (404, 410):
            raise EndpointGone(self.name, f"Hacker News search answered HTTP {code} at {where}: "
                                          "the Algolia API moved or changed; check api_url and "
                                          "update Uproar")
        if code != 200:
            raise ConnectorError(self.name, f"unexpected answer from {where}: HTTP {code} "
                                            f"{_error_text(response)}")
        try:
            body = response.json()
        except ValueError as exc:
            raise not_json(self.name, _SERVICE, response) from exc
        if not isinstance(body, dict):
            raise TransientError(self.name, f"Hacker News search answered {where} with JSON "
                                            "that is not an object")
        return body


# -- mapping -------------------------------------------------------------------------------------


def _to_mention(hit: Mapping[str, Any]) -> Mention:
    object_id = str(hit["objectID"])
    title = str(hit.get("title") or "").strip()
    body = html_to_text(str(hit.get("story_text") or hit.get("comment_text") or ""))
    text = "\n\n".join(part for part in (title, body) if part)
    is_comment = "comment" in (hit.get("_tags") or ()) or hit.get("comment_text") is not None
    parent = hit.get("parent_id") if is_comment else None
    story = hit.get("story_id")
    return Mention(
        source="hackernews",
        source_id=object_id,
        url=_ITEM_URL + object_id,
        text=text[:MAX_TEXT],
        created_at=datetime.fromtimestamp(_created_i(hit), UTC),
        author=Author(handle=str(hit.get("author") or ""), name=str(hit.get("author") or "")),
        engagement=Engagement(score=_count(hit, "points"), replies=_count(hit, "num_comments")),
        lang=None,
        parent_id=str(parent) if parent is not None else None,
        conversation_id=str(story) if story is not None else object_id,
        raw=dict(hit),
    )


def _item_hit(item: Mapping[str, Any]) -> dict[str, Any]:
    """An ``items/:id`` answer (a tree with ``children``) in the shape of a search hit."""
    kind = str(item.get("type") or "story")
    text_key = "comment_text" if kind == "comment" else "story_text"
    hit = {k: v for k, v in item.items() if k not in ("children", "id", "type", "text")}
    hit.update({"objectID": str(item["id"]), "_tags": [kind], text_key: item.get("text"),
                "num_comments": _descendants(item)})
    return hit


def _descendants(item: Mapping[str, Any]) -> int:
    stack, count = list(item.get("children") or ()), 0
    while stack:
        child = stack.pop()
        if isinstance(child, Mapping):
            count += 1
            stack.extend(child.get("children") or ())
    return count


def _created_i(hit: Mapping[str, Any]) -> int:
    value = hit.get("created_at_i")
    if isinstance(value, int):
        return value
    try:
        return int(parse_time(str(hit.get("created_at"))).timestamp())
    except ValueError:
        return 0


def _count(hit: Mapping[str, Any], key: str) -> int:
    value = hit.get(key)
    return value if isinstance(value, int) else 0


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return response.reason_phrase
