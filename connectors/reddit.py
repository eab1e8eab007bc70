"""Reddit: site-wide search for each brand query, plus new posts and comments of chosen
subreddits, through praw with an app-only (read-only, client-credentials) OAuth token.

Listings read per poll, each newest first and at most ``limit`` items:

* ``search:<query>`` — ``r/all/search?q=...&sort=new&t=day`` for every brand query;
* ``new:r/<name>`` and ``comments:r/<name>`` — every configured subreddit's new submissions and
  new comments (the pipeline matches brands in their text).

Query translation (Uproar's boolean queries -> Reddit's search syntax): phrases, words, ``AND``,
``OR``, ``NOT`` and parentheses carry over; ``-x`` becomes ``NOT x``; the ``@``/``#`` of handles
and hashtags is dropped (Reddit has neither). Reddit's search is only the recall step: the
pipeline matches the brand query exactly afterwards.

Incremental polling: the cursor keeps per listing the newest item seen (fullname and
``created_utc``) and the fullnames seen in the last :data:`_OVERLAP` seconds before it. A poll
stops reading a listing at the first item older than that overlap (so it does not page on
through what the last poll read), skips items it already returned, and returns each fullname
(``t3_…`` submission, ``t1_…`` comment, the ``source_id``) once even when several listings hold
it. The overlap catches items that show up late (search indexing lags by seconds). When a
listing yields ``limit`` new items without reaching old ones, older new items were skipped: that
is reported once (raise ``limit`` or poll more often).

Errors: refused app credentials or token (401, 403 on the token endpoint, OAuth errors) raise
:class:`AuthFailed`; 429, or a rate-limit window already used up, raises :class:`RateLimited`;
5xx, network errors and HTML pages where JSON was expected raise :class:`TransientError` naming
the URL. These end the whole poll and no listing's cursor advances. A subreddit that is private,
banned or missing, or a query Reddit rejects, is reported once as a problem and the other
listings still run. prawcore's own retries are cut to one immediate retry (no sleeping inside a
poll): the scheduler owns backoff.

Cursor (JSON-serialisable; listings no longer configured are dropped)::

    {"listings": {"<listing key>": {"newest": str | None, "newest_utc": float | None,
                                    "recent": {fullname: created_utc}, "capped": bool,
                                    "error": str | None}}}
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, ClassVar

import praw
import praw.exceptions
import prawcore
import requests
from prawcore.sessions import RetryStrategy

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
)

# Links in mentions always point at the public site, whatever api_url a test or proxy uses.
_WEB_URL = "https://www.reddit.com"
# Reddit's listings and search index lag behind by seconds; re-reading one minute before the
# newest item seen catches late arrivals ("recent" keeps them from being returned twice).
_OVERLAP = 60.0
# A bound on the "recent" fullnames kept per listing, in case a flood fits in one overlap.
_MAX_RECENT = 1000
_TOKEN_PATH = "/api/v1/access_token"

_AUTH_HELP = ("check REDDIT_CLIENT_ID and REDDIT_CLIENT_SECRET (a 'script' or 'web' app from "
              "https://www.reddit.com/prefs/apps) and that user_agent is descriptive")


# -- query translation -------------------------------------------------------------------------

_LEXEME = re.compile(r'\s*(?:(-?)("(?:\\.|[^"\\])*"?)|(-?\()|(\))|([^\s()"]+))')


def to_reddit_query(query: str) -> str:
    """Translate an Uproar brand query into Reddit search syntax (see the module docstring)."""
    out: list[str] = []
    pos = 0
    while (match := _LEXEME.match(query, pos)) is not None and match.end() > pos:
        neg, phrase, open_paren, close_paren, word = match.groups()
        pos = match.end()
        if phrase is not None:
            body = re.sub(r"\\(.)", r"\1", phrase.strip('"')).replace('"', " ")
            out.extend(["NOT"] * bool(neg) + [f'"{" ".join(body.split())}"'])
        elif open_paren is not None:
            out.extend(["NOT"] * (open_paren == "-(") + ["("])
        elif close_paren is not None:
            out.append(")")
        else:
            negated = word.startswith("-") and len(word) > 1
            word = word[1:] if negated else word
            if word[0] in "@#" and len(word) > 1:
                word = word[1:]
            out.extend(["NOT"] * negated + [word])
    text = ""
    for token in out:
        text += " " if text and not text.endswith("(") and token != ")" else ""
        text += token
    return text


# -- praw plumbing -------------------------------------------------------------------------------


class _QuickRetry(RetryStrategy):
    """One immediate retry (a fresh token after a 401, a dropped connection), never a sleep:
    prawcore's default sleeps 2-4 s between up to three attempts inside a poll."""

    def __init__(self, retries: int = 1) -> None:
        self.retries = retries

    def _sleep_seconds(self) -> float | None:
        return None

    def consume_available_retry(self) -> _QuickRetry:
        return _QuickRetry(self.retries - 1)

    def should_retry_on_failure(self) -> bool:
        return self.retries > 0


class _Requestor(prawcore.Requestor):
    """Applies our timeout to every request (prawcore passes its own constant) and remembers
    the last rate-limit headers, so a poll can stop before prawcore would sleep out a window."""

    def __init__(self, *args: Any, uproar_timeout: float, uproar_made: list[_Requestor],
                 **kwargs: Any) -> None:
        super().__init__(*args, timeout=uproar_timeout, **kwargs)
        self.remaining: float | None = None
        self.reset_at: float | None = None  # time.monotonic() when the window resets
        uproar_made.append(self)  # how the connector gets hold of the instance praw makes

    def request(self, *args: Any, timeout: float | None = None,
                **kwargs: Any) -> requests.Response:
        response = super().request(*args, timeout=self.timeout, **kwargs)
        remaining = response.headers.get("x-ratelimit-remaining")
        reset = response.headers.get("x-ratelimit-reset")
        try:
            if remaining is not None and reset is not None:
                self.remaining = float(remaining)
                self.reset_at = time.monotonic() + float(reset)
        except ValueError:
            pass
        return response


@dataclass(frozen=True, slots=True)
class _ListingState:
    newest: str | None = None
    newest_utc: float | None = None
    recent: dict[str, float] = field(default_factory=dict)
    capped: bool = False
    error: str | None = None

    @classmethod
    def from_json(cls, data: object) -> _ListingState:
        if not isinstance(data, Mapping):
            return cls()
        newest = data.get("newest")
        newest_utc = data.get("newest_utc")
        recent = data.get("recent")
        error = data.get("error")
        return cls(
            newest=newest if isinstance(newest, str) and newest else None,
            newest_utc=float(newest_utc) if isinstance(newest_utc, (int, float))
            and math.isfinite(newest_utc) else None,
            recent={k: float(v) for k, v in recent.items()
                    if isinstance(k, str) and isinstance(v, (int, float))}
            if isinstance(recent, Mapping) else {},
            capped=data.get("capped") is True,
            error=error if isinstance(error, str) and error else None,
        )


@dataclass(frozen=True, slots=True)
class _Listing:
    key: str  # the cursor key and the name used in problem lines
    kind: str  # "search", "new" or "comments"
    subreddit: str
    query: str | None = None


class _ListingFailure(Exception):
    """One listing could not be read; the others still run (internal: becomes a problem)."""


class RedditConnector(Connector):
    """Reddit search and subreddit listings over the OAuth API, app-only and read-only."""

    name: ClassVar[str] = "reddit"
    can_refresh: ClassVar[bool] = True

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        user_agent: str,
        api_url: str = "https://oauth.reddit.com/",
        auth_url: str = "https://www.reddit.com/",
        subreddits: Sequence[str] = (),
        limit: int = 100,
        timeout: float = 20.0,
    ) -> None:
        if not client_id or not client_secret:
            raise ValueError("client_id and client_secret are required (REDDIT_CLIENT_ID, "
                             "REDDIT_CLIENT_SECRET)")
        if len(user_agent.strip()) < 7:
            raise ValueError("user_agent must describe the app, e.g. "
                             "'uproar:com.example.brandwatch:v1.0 (by /u/yourname)'")
        if not 1 <= limit <= 1000:
            raise ValueError("limit must be between 1 and 1000 (Reddit lists at most 1000)")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.api_url = api_url.rstrip("/") + "/"
        self.auth_url = auth_url.rstrip("/")
        self.subreddits: tuple[str, ...] = tuple(dict.fromkeys(
            s.strip().removeprefix("/").removeprefix("r/").strip("/")
            for s in subreddits if s.strip()))
        self._limit = limit
        made: list[_Requestor] = []
        self._reddit = praw.Reddit(
            client_id=client_id,
            client_secret=client_secret,
            user_agent=user_agent,
            oauth_url=self.api_url,
            reddit_url=self.auth_url,
            check_for_updates=False,
            check_for_async=False,
            requestor_class=_Requestor,
            requestor_kwargs={"uproar_timeout": timeout, "uproar_made": made},
        )
        (self._requestor,) = made
        self._reddit.read_only = True
        for core_name in ("_read_only_core", "_authorized_core", "_core"):
            core = getattr(self._reddit, core_name, None)
            if core is not None and hasattr(core, "_retry_strategy_class"):
                core._retry_strategy_class = _QuickRetry

    def close(self) -> None:
        self._requestor.close()

    # -- the poll ------------------------------------------------------------------------------

    def listings(self, queries: Sequence[str]) -> list[_Listing]:
        """What one poll reads, in order."""
        out = [_Listing(f"search:{q}", "search", "all", q)
               for q in dict.fromkeys(q for q in queries if q.strip())]
        for name in self.subreddits:
            out.append(_Listing(f"new:r/{name}", "new", name))
            out.append(_Listing(f"comments:r/{name}", "comments", name))
        return out

    def fetch(self, queries: Sequence[str], cursor: Mapping[str, Any] | None) -> FetchResult:
        """Read every listing once; see the module docstring for cursor, problems and errors."""
        saved = cursor.get("listings") if isinstance(cursor, Mapping) else None
        saved = saved if isinstance(saved, Mapping) else {}
        states: dict[str, dict[str, Any]] = {}
        mentions: dict[str, Mention] = {}
        problems: list[str] = []
        for listing in self.listings(queries):
            self._check_window()
            state = _ListingState.from_json(saved.get(listing.key))
            try:
                found, state, note = self._read(listing, state)
            except _ListingFailure as failure:
                reason = str(failure)
                if state.error != reason:
                    problems.append(f"reddit {listing.key}: {reason}")
                states[listing.key] = asdict(replace(state, error=reason))
                continue
            if note:
                problems.append(f"reddit {listing.key}: {note}")
            states[listing.key] = asdict(state)
            for mention in found:
                mentions.setdefault(mention.source_id, mention)
        return FetchResult(mentions=list(mentions.values()), cursor={"listings": states},
                           problems=problems)

    def refresh(self, ids: Sequence[str]) -> list[Mention]:
        """Current score and comment counts of these submissions and comments
        (``GET /api/info?id=t3_…,t1_…``, 100 fullnames a request; praw batches them). Deleted
        items are left out."""
        wanted = [i for i in dict.fromkeys(ids) if i.startswith(("t1_", "t3_"))]
        if not wanted:
            return []
        self._check_window()
        info = _Listing("info", "info", "all")
        try:
            items = list(self._reddit.info(fullnames=wanted))
        except (prawcore.PrawcoreException, praw.exceptions.PRAWException) as exc:
            error = self._error(info, exc)
            if isinstance(error, _ListingFailure):
                error = ConnectorError(self.name, f"Reddit refused a look-up by id: {error}")
            raise error from exc
        return [_to_mention(item, "info") for item in items]

    def _check_window(self) -> None:
        """Stop before prawcore would sleep out a used-up rate-limit window."""
        requestor = self._requestor
        if requestor.remaining is None or requestor.reset_at is None:
            return
        wait = requestor.reset_at - time.monotonic()
        if requestor.remaining < 1 and wait > 0:
            raise RateLimited(self.name, "Reddit rate limit window used up", retry_after=wait)

    def _generator(self, listing: _Listing) -> Iterator[Any]:
        subreddit = self._reddit.subreddit(listing.subreddit)
        if listing.kind == "search":
            assert listing.query is not None
            return subreddit.search(to_reddit_query(listing.query), sort="new",
                                    time_filter="day", limit=self._limit)
        if listing.kind == "new":
            return subreddit.new(limit=self._limit)
        return subreddit.comments(limit=self._limit)

    def _read(self, listing: _Listing,
              state: _ListingState) -> tuple[list[Mention], _ListingState, str | None]:
        """New items of one listing, its next state, and a problem line (or ``None``)."""
        stop_before = None if state.newest_utc is None else state.newest_utc - _OVERLAP
        found: list[Mention] = []
        read = 0
        reached_known = False  # an item the last poll read, or an older one
        try:
            for item in self._generator(listing):
                read += 1
                mention = _to_mention(item, listing.key)
                created = mention.created_at.timestamp()
                if stop_before is not None and created < stop_before:
                    reached_known = True
                    break
                if mention.source_id in state.recent or mention.source_id == state.newest:
                    reached_known = True
                    continue
                found.append(mention)
        except (prawcore.PrawcoreException, praw.exceptions.PRAWException) as exc:
            raise self._error(listing, exc) from exc
        capped = state.newest_utc is not None and not reached_known and read >= self._limit
        notes = []
        if state.error is not None:
            notes.append("works again")
        if capped and not state.capped:
            notes.append(f"more than {self._limit} new items since the last poll; older ones "
                         "were skipped (raise limit or poll more often)")
        return found, _next_state(state, found, capped), "; ".join(notes) or None

    # -- errors --------------------------------------------------------------------------------

    def _error(self, listing: _Listing, exc: Exception) -> Exception:
        """The connector error (or per-listing failure) for a praw/prawcore exception."""
        response = _response_of(exc)
        url = _url(response) if response is not None else f"{self.api_url}r/{listing.subreddit}"
        status = getattr(response, "status_code", None)
        html = response is not None and _is_html(response)
        if isinstance(exc, prawcore.OAuthException):
            return AuthFailed(self.name, f"Reddit refused the app's credentials "
                                         f"({exc.error}): {_AUTH_HELP}")
        if isinstance(exc, prawcore.TooManyRequests) or status == 429:
            return RateLimited(self.name, f"Reddit rate limit reached at {url}",
                               retry_after=_retry_after(response))
        if isinstance(exc, prawcore.RequestException):
            original = exc.original_exception
            return TransientError(self.name, f"cannot reach Reddit at {url} "
                                             f"({type(original).__name__}: {original})")
        if status is not None and status >= 500:
            kind = " (an HTML error page)" if html else ""
            return TransientError(self.name, f"Reddit server error HTTP {status} at {url}{kind}")
        if _TOKEN_PATH in url:
            return AuthFailed(self.name, f"Reddit refused the app's credentials "
                                         f"(HTTP {status} from {url}): {_AUTH_HELP}")
        if status == 401:
            return AuthFailed(self.name, f"Reddit refused the access token (HTTP 401 at {url}) "
                                         f"even after renewing it: {_AUTH_HELP}")
        if status == 403 and (html or listing.kind == "search"):
            return AuthFailed(self.name, f"Reddit refused the request (HTTP 403 at {url}"
                                         f"{', an HTML page' if html else ''}): the app or this "
                                         f"network may be blocked; {_AUTH_HELP}")
        if html or isinstance(exc, prawcore.BadJSON):
            kind = "?" if response is None else \
                response.headers.get("content-type", "?").split(";")[0]
            return TransientError(self.name, f"Reddit answered {url} with HTTP {status} {kind} "
                                             "instead of JSON (a proxy, captive portal or "
                                             "maintenance page?)")
        if isinstance(exc, prawcore.Forbidden):
            return _ListingFailure(f"r/{listing.subreddit} is private or quarantined (HTTP 403)")
        if isinstance(exc, prawcore.NotFound):
            return _ListingFailure(f"r/{listing.subreddit} is banned or missing (HTTP 404)")
        if isinstance(exc, prawcore.Redirect):
            return _ListingFailure(f"r/{listing.subreddit} does not exist (Reddit redirected "
                                   f"to {exc.path})")
        if isinstance(exc, (prawcore.BadRequest, praw.exceptions.RedditAPIException)):
            return _ListingFailure(f"Reddit rejected the request ({exc})")
        return ConnectorError(self.name, f"unexpected answer from Reddit at {url}: "
                                         f"{type(exc).__name__}: {exc}")


def _next_state(state: _ListingState, found: Sequence[Mention], capped: bool) -> _ListingState:
    newest, newest_utc = state.newest, state.newest_utc
    for mention in found:
        created = mention.created_at.timestamp()
        if newest_utc is None or created > newest_utc:
            newest, newest_utc = mention.source_id, created
    recent = dict(state.recent)
    recent.update((m.source_id, m.created_at.timestamp()) for m in found)
    if newest_utc is not None:
        recent = {k: v for k, v in recent.items() if v >= newest_utc - _OVERLAP}
    if len(recent) > _MAX_RECENT:
        recent = dict(sorted(recent.items(), key=lambda kv: kv[1])[-_MAX_RECENT:])
    return _ListingState(newest=newest, newest_utc=newest_utc, recent=recent, capped=capped)


# -- mapping -------------------------------------------------------------------------------------


def _to_mention(item: Any, listing_key: str) -> Mention:
    # vars(), not attribute access: a missing attribute on a lazy praw object fetches it.
    data = vars(item)
    fullname = str(item.fullname)
    is_comment = fullname.startswith("t1_")
    subreddit = str(data.get("subreddit") or "")
    author = data.get("author")
    handle = str(author) if author is not None else "[deleted]"
    if is_comment:
        text = str(data.get("body") or "")
        link_id = data.get("link_id")
        permalink = data.get("permalink") or _comment_permalink(data, subreddit)
    else:
        title = str(data.get("title") or "")
        selftext = str(data.get("selftext") or "")
        text = f"{title}\n\n{selftext}" if selftext else title
        link_id = fullname
        permalink = data.get("permalink") or f"/comments/{data.get('id', '')}/"
    raw = {key: data[key] for key in ("subreddit_id", "title", "link_id", "parent_id",
                                      "link_title", "domain", "url", "over_18", "is_self")
           if key in data and data[key] is not None}
    return Mention(
        source="reddit",
        source_id=fullname,
        url=_WEB_URL + str(permalink).split("?")[0],  # search adds ?ref=search_posts
        text=text[:MAX_TEXT],
        created_at=datetime.fromtimestamp(float(data.get("created_utc") or 0), UTC),
        author=Author(handle=handle, name=handle),
        engagement=Engagement(score=int(data.get("score") or 0),
                              replies=int(data.get("num_comments") or 0)),
        parent_id=str(data["parent_id"]) if is_comment and data.get("parent_id") else None,
        conversation_id=str(link_id) if link_id else None,
        raw={"kind": fullname[:2], "subreddit": subreddit, "listing": listing_key, **raw},
    )


def _comment_permalink(data: Mapping[str, Any], subreddit: str) -> str:
    link = str(data.get("link_permalink") or "")
    if link.startswith(_WEB_URL):
        return link[len(_WEB_URL):].rstrip("/") + f"/{data.get('id', '')}/"
    post = str(data.get("link_id") or "").removeprefix("t3_")
    return f"/r/{subreddit}/comments/{post}/_/{data.get('id', '')}/"


def _response_of(exc: BaseException) -> requests.Response | None:
    """The HTTP response behind a praw/prawcore error (praw chains its API errors)."""
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, requests.Response):
            return response
        seen = seen.__cause__ or seen.__context__
    return None


def _is_html(response: requests.Response) -> bool:
    kind = response.headers.get("content-type", "").lower()
    return "html" in kind or response.text.lstrip()[:15].lower().startswith(("<!doctype", "<html"))


def _retry_after(response: requests.Response | None) -> float | None:
    if response is None:
        return None
    for header in ("retry-after", "x-ratelimit-reset"):
        try:
            return max(0.0, float(response.headers[header]))
        except (KeyError, ValueError):
            continue
    return None


def _url(response: requests.Response) -> str:
    return str(response.url or "").split("?")[0]
