"""X/Twitter: recent search (API v2) for each brand query, through tweepy.

Per brand query one poll runs ``GET /2/tweets/search/recent`` through :class:`tweepy.Paginator`
(newest first, ``max_results=page_size``, ``next_token`` paging up to ``max_pages`` pages) with
the author expansion, so each :class:`Mention` carries the author's handle, name and follower
count, and the tweet's likes, reposts (retweets + quotes), replies, language, conversation and
the tweet it replies to. Retweets are kept: they are how a complaint spreads.

Query translation (Uproar's boolean queries -> X search syntax; deliberately simple):
phrases, words, ``@handles``, ``#hashtags``, ``OR`` and parentheses carry over; ``AND`` becomes a
space (X's implicit AND, which like Uproar binds tighter than ``OR``); ``NOT x`` becomes ``-x``,
and a negated group of OR-ed terms ``NOT (a OR b)`` becomes ``-a -b`` (X advises against
negating groups). Nothing is added (no ``-is:retweet``, no ``lang:``). The pipeline matches the
brand query exactly afterwards, so the API search only has to be complete, not precise.

Incremental polling: the cursor keeps per query the ``since_id`` to send next. It advances only
after the *last* page of a completed poll, so a poll interrupted by an error re-fetches the same
tweets next time instead of skipping them (the archive's unique key absorbs the repeats). When a
poll stops at ``max_pages`` while X still offers older pages, ``since_id`` stays where it was
(the unread middle is not skipped for good), the newest id seen is recorded as ``newest_seen``
and the cap is reported once; the next complete poll advances past both. A ``since_id`` older
than the recent-search window (the daemon was down for a week) is dropped once and reported.

Errors: a refused bearer token (401/403) raises :class:`AuthFailed`; 429 raises
:class:`RateLimited` with ``retry_after`` from ``x-rate-limit-reset``; 5xx, network errors and
non-JSON answers (an HTML page from a proxy) raise :class:`TransientError` naming the URL. Any of
these ends the whole poll without advancing any cursor. A query X rejects (400: bad syntax, too
long) is reported once as a problem and the other queries still run.

Cursor (JSON-serialisable; queries no longer configured are dropped)::

    {"queries": {"<query>": {"since_id": str | None, "newest_seen": str | None,
                             "capped": bool, "error": str | None}}}
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, ClassVar

import requests
import tweepy

from connectors.base import (
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

# tweepy 4 builds every v2 URL from this host; the session below rebases it onto ``api_url``.
_TWEEPY_HOST = "https://api.twitter.com/"
# Milliseconds between the Unix epoch and X's snowflake epoch (2010-11-04T01:42:54.657Z).
_SNOWFLAKE_EPOCH_MS = 1288834974657
# X's "undetermined", "media only" and "no linguistic content" codes are no language at all.
_NO_LANGUAGE = frozenset({"und", "qme", "qmt", "zxx", "qht", "qam", "qst"})

_EXPANSIONS = ["author_id"]
_USER_FIELDS = ["username", "name", "public_metrics"]
_TWEET_FIELDS = ["created_at", "public_metrics", "lang", "conversation_id", "referenced_tweets",
                 "author_id"]

_AUTH_HELP = "X/Twitter refused the bearer token: check TWITTER_BEARER_TOKEN"
# GET /2/tweets takes at most 100 ids per request.
_IDS_PER_LOOKUP = 100



# -- query translation -------------------------------------------------------------------------

_LEXEME = re.compile(r"""\s*(?:
    (?P<neg>-?)"(?P<phrase>(?:\\.|[^"\\])*)"?   # a quoted phrase, maybe negated
  | (?P<open>-?\()
  | (?P<close>\))
  | (?P<word>[^\s()"]+)
)""", re.VERBOSE)
_OPERATORS = frozenset({"AND", "OR", "NOT", "(", ")"})


def _lex(query: str) -> list[str]:
    """Split an Uproar query into phrases (re-quoted, escapes resolved), parens and words."""
    tokens: list[str] = []
    pos = 0
    while (match := _LEXEME.match(query, pos)) is not None and match.end() > pos:
        if match["phrase"] is not None:
            body = re.sub(r"\\(.)", r"\1", match["phrase"]).replace('"', " ")
            tokens.append(f'{match["neg"]}"{" ".join(body.split())}"')
        else:
            tokens.append(match["open"] or match["close"] or match["word"])
        pos = match.end()
    return tokens


def to_x_query(query: str) -> str:
    """Translate an Uproar brand query into X search syntax (see the module docstring)."""
    text = ""
    for token in _translate(_lex(query)):
        if text and not text.endswith("(") and token != ")":
            text += " "
        text += token
    return text


def _translate(tokens: list[str]) -> list[str]:
    out: list[str] = []
    negate = False
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token == "AND":
            continue
        if token == "NOT":
            negate = not negate
            continue
        if token in ("OR", ")"):  # a stray ")" is dropped
            out.extend(["OR"] if token == "OR" else [])
            negate = False
            continue
        if token.startswith("-") and len(token) > 1:
            negate, token = not negate, token[1:]
        if token == "(":
            depth, start = 1, i
            while i < len(tokens) and depth:
                depth += tokens[i] in ("(", "-(")
                depth -= tokens[i] == ")"
                i += 1
            inner = _translate(tokens[start:i - 1] if depth == 0 else tokens[start:i])
            out.extend(_negated_group(inner) if negate else ["(", *inner, ")"])
        else:
            out.append(_negated(token) if negate else token)
        negate = False
    return out


def _negated(term: str) -> str:
    return term[1:] if term.startswith("-") else "-" + term


def _negated_group(inner: list[str]) -> list[str]:
    """``NOT (a OR b)`` as ``-a -b``; any other group as ``-(...)``."""
    terms, separators = inner[::2], inner[1::2]
    if terms and all(s == "OR" for s in separators) and not _OPERATORS & set(terms) \
            and "-(" not in terms:
        return [_negated(t) for t in terms]
    return ["-(", *inner, ")"]


# -- HTTP plumbing -------------------------------------------------------------------------------


class _RebasedSession(requests.Session):
    """A requests session that sends tweepy's ``https://api.twitter.com/...`` requests to
    ``api_url`` with a timeout (tweepy sets neither) and remembers the last response, so a
    non-JSON answer can be reported with its URL and content type."""

    def __init__(self, api_url: str, timeout: float) -> None:
        super().__init__()
        self.api_url = api_url.rstrip("/") + "/"
        self.timeout = timeout
        self.last_response: requests.Response | None = None

    def request(self, method: str, url: str,  # type: ignore[override]
                *args: Any, **kwargs: Any) -> requests.Response:
        if url.startswith(_TWEEPY_HOST):
            url = self.api_url + url[len(_TWEEPY_HOST):]
        kwargs.setdefault("timeout", self.timeout)
        self.last_response = None
        response = super().request(method, url, *args, **kwargs)
        self.last_response = response
        return response


@dataclass(frozen=True, slots=True)
class _QueryState:
    since_id: str | None = None
    newest_seen: str | None = None
    capped: bool = False
    error: str | None = None

    @classmethod
    def from_json(cls, data: object) -> _QueryState:
        if not isinstance(data, Mapping):
            return cls()

        def tweet_id(key: str) -> str | None:
            value = data.get(key)
            return str(value) if isinstance(value, (str, int)) and str(value).isdigit() else None

        error = data.get("error")
        return cls(since_id=tweet_id("since_id"), newest_seen=tweet_id("newest_seen"),
                   capped=data.get("capped") is True,
                   error=error if isinstance(error, str) and error else None)


@dataclass(slots=True)
class _QueryResult:
    mentions: list[Mention]
    state: _QueryState
    problems: list[str]


class TwitterConnector(Connector):
    """Recent search on X/Twitter API v2 with an app-only bearer token."""

    name: ClassVar[str] = "twitter"
    can_refresh: ClassVar[bool] = True

    def __init__(
        self,
        bearer_token: str,
        *,
        api_url: str = "https://api.twitter.com/",
        max_pages: int = 10,
        page_size: int = 100,
        timeout: float = 20.0,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if not bearer_token:
            raise ValueError("a bearer token is required (TWITTER_BEARER_TOKEN)")
        if max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        if not 10 <= page_size <= 100:
            raise ValueError("page_size must be between 10 and 100 (X's max_results limits)")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.api_url = api_url
        self._max_pages = max_pages
        self._page_size = page_size
        self._clock = clock
        self._session = _RebasedSession(api_url, timeout)
        self._client = tweepy.Client(bearer_token=bearer_token, wait_on_rate_limit=False)
        self._client.session = self._session

    def close(self) -> None:
        self._session.close()

    # -- the poll ------------------------------------------------------------------------------

    def fetch(self, queries: Sequence[str], cursor: Mapping[str, Any] | None) -> FetchResult:
        """Search each query once; see the module docstring for cursor, problems and errors."""
        saved = cursor.get("queries") if isinstance(cursor, Mapping) else None
        saved = saved if isinstance(saved, Mapping) else {}
        states: dict[str, dict[str, Any]] = {}
        mentions: dict[str, Mention] = {}
        problems: list[str] = []
        for query in dict.fromkeys(q for q in queries if q.strip()):
            result = self._poll_query(query, _QueryState.from_json(saved.get(query)))
            states[query] = asdict(result.state)
            problems.extend(result.problems)
            for mention in result.mentions:
                mentions.setdefault(mention.source_id, mention)
        return FetchResult(mentions=list(mentions.values()), cursor={"queries": states},
                           problems=problems)

    def _poll_query(self, query: str, state: _QueryState) -> _QueryResult:
        x_query = to_x_query(query)
        problems: list[str] = []
        since_id = state.since_id
        try:
            try:
                mentions, newest, capped = self._search(x_query, since_id)
            except tweepy.BadRequest as exc:
                if since_id is None or "since_id" not in str(exc):
                    raise
                problems.append(f"X/Twitter query {query!r}: since_id {since_id} is older than "
                                f"recent search allows (X said: {_first_line(exc)}); read the "
                                "last 7 days instead")
                since_id = None
                mentions, newest, capped = self._search(x_query, None)
        except (tweepy.BadRequest, tweepy.NotFound) as exc:
            reason = f"X/Twitter rejected the query {x_query!r}: {_api_message(exc)}"
            if state.error != reason:
                problems.append(f"brand query {query!r}: {reason}")
            return _QueryResult([], replace(state, error=reason), problems)
        if state.error is not None:
            problems.append(f"X/Twitter query {query!r} works again")
        newest_seen = _max_id(newest, state.newest_seen)
        if capped:
            if not state.capped:
                problems.append(
                    f"X/Twitter query {query!r}: more than {self._max_pages} pages of "
                    f"{self._page_size} new tweets since the last poll; read the newest only "
                    "(raise max_pages, poll more often or narrow the query)")
            new_state = _QueryState(since_id=since_id, newest_seen=newest_seen, capped=True)
        else:
            new_state = _QueryState(since_id=_max_id(newest_seen, since_id))
        return _QueryResult(mentions, new_state, problems)

    def refresh(self, ids: Sequence[str]) -> list[Mention]:
        """Current public metrics and author followers of these tweets (``GET /2/tweets``,
        100 ids a request). Deleted or protected tweets are left out."""
        wanted = [i for i in dict.fromkeys(str(i) for i in ids) if i.isdigit()]
        mentions: list[Mention] = []
        for response in self._pages(self._lookups(wanted)):
            users = {str(u.id): u.data for u in (response.includes or {}).get("users", [])}
            mentions.extend(_to_mention(tweet.data, users) for tweet in response.data or [])
        return mentions

    def _lookups(self, ids: list[str]) -> Iterator[Any]:
        for start in range(0, len(ids), _IDS_PER_LOOKUP):
            try:
                yield self._client.get_tweets(
                    ids[start:start + _IDS_PER_LOOKUP], expansions=_EXPANSIONS,
                    user_fields=_USER_FIELDS, tweet_fields=_TWEET_FIELDS)
            except (tweepy.BadRequest, tweepy.NotFound) as exc:
                raise ConnectorError(self.name, f"X/Twitter refused a tweet lookup: "
                                                f"{_api_message(exc)}") from exc

    def _search(self, x_query: str,
                since_id: str | None) -> tuple[list[Mention], str | None, bool]:
        """All pages of one search: the mentions, the newest id seen, and whether more pages
        were left unread at ``max_pages``. Raises connector errors for whole-poll failures."""
        kwargs: dict[str, Any] = {
            "max_results": self._page_size,
            "expansions": _EXPANSIONS,
            "user_fields": _USER_FIELDS,
            "tweet_fields": _TWEET_FIELDS,
        }
        if since_id is not None:
            kwargs["since_id"] = since_id
        paginator = tweepy.Paginator(self._client.search_recent_tweets, x_query, **kwargs)
        mentions: list[Mention] = []
        newest: str | None = None
        pages = 0
        next_token = None
        for response in self._pages(iter(paginator)):
            pages += 1
            users = {str(u.id): u.data for u in (response.includes or {}).get("users", [])}
            for tweet in response.data or []:
                mentions.append(_to_mention(tweet.data, users))
                newest = _max_id(newest, str(tweet.id))
            newest = _max_id(newest, (response.meta or {}).get("newest_id"))
            next_token = (response.meta or {}).get("next_token")
            if pages >= self._max_pages:
                break
        return mentions, newest, pages >= self._max_pages and next_token is not None

    def _pages(self, pages: Iterator[Any]) -> Iterator[Any]:
        """Pages from tweepy, with its errors turned into connector errors."""
        while True:
            try:
                page = next(pages)
            except StopIteration:
                return
            except (tweepy.Unauthorized, tweepy.Forbidden) as exc:
                detail = "; ".join(exc.api_messages)
                status = f"HTTP {exc.response.status_code}" + (f": {detail}" if detail else "")
                raise AuthFailed(self.name, f"{_AUTH_HELP} ({status})") from exc
            except tweepy.TooManyRequests as exc:
                raise self._rate_limited(exc) from exc
            except tweepy.TwitterServerError as exc:
                raise TransientError(self.name, f"X/Twitter server error at "
                                                f"{_url(exc.response)}: {_first_line(exc)}"
                                     ) from exc
            except (tweepy.BadRequest, tweepy.NotFound):
                raise  # the query's own problem: handled per query
            except tweepy.HTTPException as exc:
                if exc.response is not None and exc.response.status_code == 410:
                    raise EndpointGone(self.name, f"X/Twitter says {_url(exc.response)} is gone "
                                                  "(HTTP 410): the API changed; check api_url "
                                                  "and update Uproar") from exc
                raise ConnectorError(self.name, f"unexpected answer from "
                                                f"{_url(exc.response)}: {_first_line(exc)}"
                                     ) from exc
            except requests.JSONDecodeError as exc:
                raise TransientError(self.name, self._not_json()) from exc
            except requests.Timeout as exc:
                raise TransientError(self.name, f"X/Twitter did not answer within "
                                                f"{self._session.timeout:g}s") from exc
            except requests.RequestException as exc:
                raise TransientError(self.name, f"cannot reach X/Twitter at {self.api_url} "
                                                f"({type(exc).__name__}: {exc})") from exc
            yield page

    def _rate_limited(self, exc: tweepy.TooManyRequests) -> RateLimited:
        reset = exc.response.headers.get("x-rate-limit-reset", "")
        retry_after = None
        message = "X/Twitter rate limit reached"
        if reset.isdigit():
            reset_at = datetime.fromtimestamp(int(reset), UTC)
            retry_after = max(0.0, (reset_at - self._clock()).total_seconds())
            message += f"; it resets at {format_time(reset_at)}"
        return RateLimited(self.name, message, retry_after=retry_after)

    def _not_json(self) -> str:
        response = self._session.last_response
        if response is None:
            return "X/Twitter answered with something that is not JSON"
        kind = response.headers.get("content-type", "no content type").split(";")[0]
        return (f"X/Twitter answered {_url(response)} with HTTP {response.status_code} "
                f"{kind} instead of JSON (a proxy, captive portal or maintenance page?)")


# -- mapping -------------------------------------------------------------------------------------


def _to_mention(tweet: Mapping[str, Any], users: Mapping[str, Mapping[str, Any]]) -> Mention:
    tweet_id = str(tweet["id"])
    user = users.get(str(tweet.get("author_id")), {})
    handle = str(user.get("username") or "")
    followers = (user.get("public_metrics") or {}).get("followers_count")
    metrics = tweet.get("public_metrics") or {}
    parent = next((str(ref.get("id")) for ref in tweet.get("referenced_tweets") or ()
                   if ref.get("type") == "replied_to"), None)
    lang = tweet.get("lang")
    created = tweet.get("created_at")
    return Mention(
        source="twitter",
        source_id=tweet_id,
        url=f"https://x.com/{handle or 'i/web'}/status/{tweet_id}",
        text=str(tweet.get("text") or ""),
        created_at=parse_time(created) if created else _snowflake_time(tweet_id),
        author=Author(handle=handle, name=str(user.get("name") or ""),
                      followers=int(followers) if followers is not None else None),
        engagement=Engagement(
            likes=int(metrics.get("like_count") or 0),
            reposts=int(metrics.get("retweet_count") or 0) + int(metrics.get("quote_count") or 0),
            replies=int(metrics.get("reply_count") or 0),
        ),
        lang=lang if isinstance(lang, str) and lang and lang not in _NO_LANGUAGE else None,
        parent_id=parent,
        conversation_id=_opt_str(tweet.get("conversation_id")),
        raw=dict(tweet),
    )


def _snowflake_time(tweet_id: str) -> datetime:
    """When a tweet was posted, from its id (used when ``created_at`` was not returned)."""
    millis = (int(tweet_id) >> 22) + _SNOWFLAKE_EPOCH_MS
    return datetime.fromtimestamp(millis / 1000, UTC)


def _max_id(a: str | None, b: str | None) -> str | None:
    """The larger of two tweet ids (ids are decimal strings; compare as numbers)."""
    candidates = [x for x in (a, b) if x is not None and str(x).isdigit()]
    return max(candidates, key=int) if candidates else None


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _api_message(exc: tweepy.HTTPException) -> str:
    return "; ".join(exc.api_messages) or _first_line(exc)


def _url(response: Any) -> str:
    """The URL of a response without its query string (which holds nothing secret, but is long).
    """
    return str(getattr(response, "url", "") or "").split("?")[0] or "the API"
