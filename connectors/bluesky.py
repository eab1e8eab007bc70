"""Bluesky: post search (``app.bsky.feed.searchPosts``) for each brand query, over plain HTTP.

Log-in: ``com.atproto.server.createSession`` with the account handle and an *app password*
(Settings → Privacy and security → App passwords) gives an access and a refresh token, kept in
memory only (never in the cursor, which the archive stores). An access token that expired (XRPC
``400 ExpiredToken``) is renewed with ``com.atproto.server.refreshSession``; when that fails too,
the connector logs in again. createSession is rate limited hard (30 per 5 minutes), so the
session lives as long as the connector.

Query translation: Bluesky's search has no ``OR``, so each brand query becomes one search per
OR-group of :func:`connectors.querytext.search_texts` (terms space-separated, phrases quoted,
``#tags`` kept, the ``@`` of handles dropped, negations dropped). Searches shared by several
brands run once. The pipeline matches the exact brand query afterwards.

Incremental polling: every search is read with ``sort=latest`` and ``cursor`` paging, newest
first. The cursor keeps per search the newest ``indexedAt`` seen and the post URIs indexed at
that instant; a poll stops at the first post at or before that point. A poll that reads
``max_pages`` pages of new posts without getting there skips the older new ones: that is
reported once (raise ``max_pages`` or poll more often). Posts are returned once per poll, keyed
by their ``at://`` URI (the ``source_id``).

Errors: a refused handle or app password raises :class:`AuthFailed` naming BLUESKY_HANDLE and
BLUESKY_APP_PASSWORD; 429 raises :class:`RateLimited` with ``retry_after`` from the
``ratelimit-reset`` header; 5xx, network errors and HTML pages where JSON was expected raise
:class:`TransientError` naming the URL. Any of these ends the poll and no cursor advances. A
search Bluesky rejects (400) is reported once as a problem and the other searches still run.

Cursor (JSON-serialisable; searches of queries no longer configured are dropped)::

    {"searches": {"<search text>": {"newest": str | None, "seen": [uri, ...],
                                     "capped": bool, "error": str | None}}}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx

from connectors.base import (
    MAX_TEXT,
    AuthFailed,
    Author,
    Connector,
    ConnectorError,
    EndpointGone,
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
from connectors.querytext import search_texts

# Links in mentions point at the public web app, whatever api_url a test or proxy uses.
_WEB_URL = "https://bsky.app"
_AUTH_HELP = ("Bluesky refused the log-in: check BLUESKY_HANDLE and BLUESKY_APP_PASSWORD "
              "(an app password from Settings → Privacy and security → App passwords)")
# XRPC error names that mean "this token is no good any more: refresh or log in again".
_STALE_TOKEN = frozenset({"ExpiredToken", "InvalidToken"})
# Posts indexed at the very same instant are rare; a bound in case of a flood.
_MAX_SEEN = 200
# XRPC error names of a method the server no longer (or never) implements.
_GONE = frozenset({"MethodNotImplemented", "XRPCNotSupported"})
# app.bsky.feed.getPosts takes at most 25 URIs per call.
_URIS_PER_CALL = 25



@dataclass(frozen=True, slots=True)
class _SearchState:
    newest: str | None = None
    seen: list[str] = field(default_factory=list)
    capped: bool = False
    error: str | None = None

    @classmethod
    def from_json(cls, data: object) -> _SearchState:
        if not isinstance(data, Mapping):
            return cls()
        newest = data.get("newest")
        try:
            newest = _stamp(parse_time(newest)) if isinstance(newest, str) else None
        except ValueError:
            newest = None
        seen = data.get("seen")
        error = data.get("error")
        return cls(newest=newest,
                   seen=[s for s in seen if isinstance(s, str)] if isinstance(seen, list) else [],
                   capped=data.get("capped") is True,
                   error=error if isinstance(error, str) and error else None)


class _Rejected(Exception):
    """Bluesky refused one search (400): a problem for that search, not for the poll."""


@dataclass(slots=True)
class _Session:
    access: str
    refresh: str


class BlueskyConnector(Connector):
    """Post search on Bluesky with an app password."""

    name: ClassVar[str] = "bluesky"
    can_refresh: ClassVar[bool] = True

    def __init__(
        self,
        handle: str,
        app_password: str,
        *,
        api_url: str = "https://bsky.social/xrpc/",
        limit: int = 100,
        max_pages: int = 5,
        timeout: float = 20.0,
        clock: Callable[[], datetime] = utc_now,
        client: httpx.Client | None = None,
    ) -> None:
        if not handle or not app_password:
            raise ValueError("a handle and an app password are required "
                             "(BLUESKY_HANDLE, BLUESKY_APP_PASSWORD)")
        if not 1 <= limit <= 100:
            raise ValueError("limit must be between 1 and 100 (searchPosts' limit)")
        if max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.api_url = api_url.rstrip("/") + "/"
        self._handle = handle.removeprefix("@")
        self._password = app_password
        self._limit = limit
        self._max_pages = max_pages
        self._timeout = timeout
        self._clock = clock
        self._owns_client = client is None  # a client passed in belongs to the caller
        self._client = client if client is not None else httpx.Client(timeout=timeout)
        self._session: _Session | None = None

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    # -- the poll ------------------------------------------------------------------------------

    def fetch(self, queries: Sequence[str], cursor: Mapping[str, Any] | None) -> FetchResult:
        """Run every search once; see the module docstring for cursor, problems and errors."""
        saved = cursor.get("searches") if isinstance(cursor, Mapping) else None
        saved = saved if isinstance(saved, Mapping) else {}
        searches = dict.fromkeys(t for q in queries for t in search_texts(q, keep_tags=True))
        states: dict[str, dict[str, Any]] = {}
        mentions: dict[str, Mention] = {}
        problems: list[str] = []
        for text in searches:
            state, found, said = self._poll_search(text, _SearchState.from_json(saved.get(text)))
            states[text] = asdict(state)
            problems.extend(said)
            for mention in found:
                mentions.setdefault(mention.source_id, mention)
        return FetchResult(mentions=list(mentions.values()), cursor={"searches": states},
                           problems=problems)

    def _poll_search(self, text: str,
                     state: _SearchState) -> tuple[_SearchState, list[Mention], list[str]]:
        problems: list[str] = []
        try:
            posts, capped = self._read_new(text, state)
        except _Rejected as exc:
            reason = f"Bluesky rejected the search {text!r}: {exc}"
            if state.error != reason:
                problems.append(reason)
            return replace(state, error=reason), [], problems
        if state.error is not None:
            problems.append(f"Bluesky search {text!r} works again")
        if capped and not state.capped and state.newest is not None:
            problems.append(
                f"Bluesky search {text!r}: more than {self._max_pages} pages of {self._limit} "
                "new posts since the last poll; read the newest only (raise max_pages, poll "
                "more often or narrow the query)")
        newest, seen = state.newest, list(state.seen)
        for post in posts:
            indexed = _indexed_at(post)
            if indexed is None:
                continue
            if newest is None or indexed > parse_time(newest):
                newest, seen = _stamp(indexed), []
            if _stamp(indexed) == newest and len(seen) < _MAX_SEEN:
                seen.append(str(post["uri"]))
        mentions = [_to_mention(post) for post in posts]
        return _SearchState(newest=newest, seen=seen, capped=capped), mentions, problems

    def refresh(self, ids: Sequence[str]) -> list[Mention]:
        """Current like, repost, quote and reply counts of these posts
        (``app.bsky.feed.getPosts``, 25 ``at://`` URIs a call). Deleted posts are left out."""
        wanted = [i for i in dict.fromkeys(ids) if i.startswith("at://")]
        mentions: list[Mention] = []
        for start in range(0, len(wanted), _URIS_PER_CALL):
            try:
                body = self._xrpc_get("app.bsky.feed.getPosts",
                                      {"uris": wanted[start:start + _URIS_PER_CALL]})
            except _Rejected as exc:
                raise ConnectorError(self.name, f"Bluesky refused getPosts: {exc}") from exc
            mentions.extend(_to_mention(post) for post in body.get("posts") or ()
                            if isinstance(post, dict) and post.get("uri"))
        return mentions

    def _read_new(self, text: str, state: _SearchState) -> tuple[list[dict[str, Any]], bool]:
        """The posts newer than the state's mark, newest first, and whether ``max_pages`` ran
        out before reaching it."""
        mark = parse_time(state.newest) if state.newest else None
        seen = set(state.seen)
        posts: list[dict[str, Any]] = []
        page_cursor: str | None = None
        for _page in range(self._max_pages):
            params: dict[str, Any] = {"q": text, "sort": "latest", "limit": self._limit}
            if page_cursor:
                params["cursor"] = page_cursor
            body = self._xrpc_get("app.bsky.feed.searchPosts", params)
            page = [p for p in body.get("posts") or () if isinstance(p, dict) and p.get("uri")]
            for post in page:
                indexed = _indexed_at(post)
                if mark is not None and indexed is not None:
                    if indexed < mark:
                        return posts, False
                    if indexed == mark and post["uri"] in seen:
                        continue  # read last poll; posts of the same instant may follow
                posts.append(post)
            page_cursor = body.get("cursor") if isinstance(body.get("cursor"), str) else None
            if not page or not page_cursor:
                return posts, False
        return posts, True

    # -- XRPC ----------------------------------------------------------------------------------

    def _xrpc_get(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """An authenticated query, renewing the session once if Bluesky says it is stale."""
        if self._session is None:
            self._login()
        assert self._session is not None
        response = self._send("GET", method, params=params, token=self._session.access)
        if _error_name(response) in _STALE_TOKEN or response.status_code == 401:
            self._renew()
            response = self._send("GET", method, params=params, token=self._session.access)
            if _error_name(response) in _STALE_TOKEN or response.status_code == 401:
                raise AuthFailed(self.name, f"{_AUTH_HELP} (a fresh session was refused: HTTP "
                                            f"{response.status_code} {_error_text(response)})")
        if response.status_code == 400:
            raise _Rejected(_error_text(response))
        return self._checked(response)

    def _login(self) -> None:
        self._session = None
        response = self._send("POST", "com.atproto.server.createSession",
                              json={"identifier": self._handle, "password": self._password})
        if response.status_code == 401 or _error_name(response) in (
                "AuthFactorTokenRequired", "AccountTakedown", "InvalidRequest"):
            raise AuthFailed(self.name, f"{_AUTH_HELP} (HTTP {response.status_code}: "
                                        f"{_error_text(response)})")
        self._session = self._tokens(self._checked(response))

    def _renew(self) -> None:
        """refreshSession, or a new log-in when the refresh token is no good either."""
        assert self._session is not None
        response = self._send("POST", "com.atproto.server.refreshSession",
                              token=self._session.refresh)
        if response.status_code in (400, 401):
            self._login()
            return
        self._session = self._tokens(self._checked(response))

    def _tokens(self, body: Mapping[str, Any]) -> _Session:
        access, refresh = body.get("accessJwt"), body.get("refreshJwt")
        if not isinstance(access, str) or not isinstance(refresh, str):
            raise ConnectorError(self.name, "Bluesky's session answer has no accessJwt/refreshJwt")
        return _Session(access, refresh)

    def _send(self, method: str, xrpc: str, *, params: Mapping[str, Any] | None = None,
              json: Any = None, token: str | None = None) -> httpx.Response:
        headers = {"Accept": "application/json", "User-Agent": "Uproar (brand monitoring)"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return send(self._client, method, self.api_url + xrpc, params=params, json=json,
                    headers=headers, source=self.name, service="Bluesky",
                    base_url=self.api_url, what=xrpc, timeout=self._timeout)

    def _checked(self, response: httpx.Response) -> dict[str, Any]:
        """The JSON body of a successful answer; connector errors for everything else."""
        code = response.status_code
        where = endpoint(response)
        if code == 429:
            raise self._rate_limited(response)
        if code >= 500:
            raise TransientError(self.name, f"Bluesky server error at {where}: HTTP {code} "
                                            f"{_error_text(response)}")
        if code in (404, 410) or _error_name(response) in _GONE:
            raise EndpointGone(self.name, f"Bluesky answered HTTP {code} at {where} "
                                          f"({_error_text(response)}): the XRPC method is gone "
                                          "or api_url is wrong; check api_url and update Uproar")
        if code != 200:
            raise ConnectorError(self.name, f"unexpected answer from {where}: HTTP {code} "
                                            f"{_error_text(response)}")
        try:
            body = response.json()
        except ValueError as exc:
            raise not_json(self.name, "Bluesky", response) from exc
        if not isinstance(body, dict):
            raise TransientError(self.name, f"Bluesky answered {where} with JSON that is not an "
                                            "object")
        return body

    def _rate_limited(self, response: httpx.Response) -> RateLimited:
        reset = response.headers.get("ratelimit-reset", "")
        message = "Bluesky rate limit reached"
        retry_after = None
        if reset.isdigit():
            reset_at = datetime.fromtimestamp(int(reset), UTC)
            retry_after = max(0.0, (reset_at - self._clock()).total_seconds())
            message += f"; it resets at {format_time(reset_at)}"
        return RateLimited(self.name, message, retry_after=retry_after)


# -- mapping -------------------------------------------------------------------------------------


def _to_mention(post: Mapping[str, Any]) -> Mention:
    uri = str(post["uri"])
    record = _mapping(post.get("record"))
    author = _mapping(post.get("author"))
    handle = str(author.get("handle") or "")
    did = uri.removeprefix("at://").split("/")[0]
    reply = _mapping(record.get("reply"))
    parent = _mapping(reply.get("parent")).get("uri")
    root = _mapping(reply.get("root")).get("uri")
    langs = record.get("langs")
    return Mention(
        source="bluesky",
        source_id=uri,
        url=f"{_WEB_URL}/profile/{handle or did}/post/{uri.rsplit('/', 1)[-1]}",
        text=str(record.get("text") or "")[:MAX_TEXT],
        created_at=_created_at(record, post),
        author=Author(handle=handle, name=str(author.get("displayName") or "")),
        engagement=Engagement(
            likes=_count(post, "likeCount"),
            reposts=_count(post, "repostCount") + _count(post, "quoteCount"),
            replies=_count(post, "replyCount"),
        ),
        lang=str(langs[0]) if isinstance(langs, list) and langs and langs[0] else None,
        parent_id=str(parent) if parent else None,
        conversation_id=str(root) if root else uri,
        raw=dict(post),
    )


def _created_at(record: Mapping[str, Any], post: Mapping[str, Any]) -> datetime:
    """The author's claimed time, else when Bluesky indexed the post (clients can send junk)."""
    for value in (record.get("createdAt"), post.get("indexedAt")):
        if isinstance(value, str):
            try:
                return parse_time(value)
            except ValueError:
                continue
    return datetime.fromtimestamp(0, UTC)


def _indexed_at(post: Mapping[str, Any]) -> datetime | None:
    try:
        return parse_time(str(post["indexedAt"])) if post.get("indexedAt") else None
    except ValueError:
        return None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _stamp(when: datetime) -> str:
    """A time for the cursor, to the microsecond (``indexedAt`` has milliseconds)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _count(post: Mapping[str, Any], key: str) -> int:
    value = post.get(key)
    return value if isinstance(value, int) else 0


def _error_name(response: httpx.Response) -> str | None:
    """The XRPC ``error`` name of an error answer (``ExpiredToken``…), if it has one."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(body, dict) and (body.get("error") or body.get("message")):
        return ": ".join(str(body[k]) for k in ("error", "message") if body.get(k))
    return response.reason_phrase
