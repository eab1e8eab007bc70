"""A fake X/Twitter API v2 (recent search) on 127.0.0.1, for the real tweepy client.

Usage::

    from tests.fakes.twitter import fake_twitter  # noqa: F401  (the pytest fixture)

    def test_something(fake_twitter):
        fake_twitter.load_recorded("search_recent_tweepy.json", author=fake_twitter.add_user(
            "1072250532645998596", "TweepyDev", "Tweepy Dev", followers=120))
        connector = TwitterConnector(fake_twitter.bearer_token, api_url=fake_twitter.api_url)
        ...
        assert fake_twitter.searches()[0]["since_id"] == "1578511538419212288"

The server keeps a store of tweets and users (full v2 objects) and answers
``GET /2/tweets/search/recent`` the way X does: Bearer token required (401 otherwise), tweets
newest first, ``since_id`` / ``until_id`` filtering, ``max_results`` (10-100) per page with an
opaque ``next_token`` that stays valid when newer tweets arrive, only the requested
``tweet.fields`` / ``user.fields``, the ``author_id`` expansion in ``includes.users``, ``meta``
with ``newest_id`` / ``oldest_id`` / ``result_count``, and X's headers (``x-rate-limit-*``,
``api-version``, ...). Which tweets match a query is up to ``matcher`` (default: all).

Error injection: :meth:`inject` makes the n-th next search answer a canned response;
:func:`unauthorized`, :func:`client_forbidden`, :func:`rate_limited`, :func:`unavailable` and
:func:`html_page` build X's real error answers.

The tweets in ``tests/data/recorded/tweepy/`` are bodies recorded by tweepy's test suite (ids and
texts only: those requests asked for no fields); :meth:`load_recorded` adds ``created_at``
derived from each id (X ids are timestamps), an author and public metrics, so the store holds
what X returns when the fields are asked for.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.fakes.feedserver import FeedServer, RecordedRequest, Response
from tests.paths import DATA

RECORDED_DIR = DATA / "recorded" / "tweepy"
JSON = "application/json; charset=utf-8"
SEARCH_PATH = "/2/tweets/search/recent"
LOOKUP_PATH = "/2/tweets"
SNOWFLAKE_EPOCH_MS = 1288834974657
# x-rate-limit-reset of the recorded search (2022-10-07T22:53:49Z); tests pin "now" near it.
RECORDED_RESET = 1665183229

# Fields every tweet or user object has, whatever was asked for.
_DEFAULT_TWEET_FIELDS = ("id", "text", "edit_history_tweet_ids")
_DEFAULT_USER_FIELDS = ("id", "name", "username")


def recorded(name: str) -> dict[str, Any]:
    """A recorded response body from ``tests/data/recorded/tweepy/``."""
    return json.loads((RECORDED_DIR / name).read_text(encoding="utf-8"))


def snowflake_time(tweet_id: str) -> str:
    millis = (int(tweet_id) >> 22) + SNOWFLAKE_EPOCH_MS
    when = datetime.fromtimestamp(millis / 1000, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _problem(status: int, title: str, detail: str | None = None, **extra: Any) -> bytes:
    body = {"title": title, "detail": detail or title, "type": "about:blank", "status": status,
            **extra}
    return json.dumps(body).encode()


def unauthorized() -> Response:
    """What X answers a missing or revoked bearer token."""
    return Response(_problem(401, "Unauthorized"), status=401, content_type=JSON)


def client_forbidden() -> Response:
    """What X answers an app that is not attached to a project (or lost its access level)."""
    body = {
        "client_id": "12345678",
        "detail": "When authenticating requests to the Twitter API v2 endpoints, you must use "
                  "keys and tokens from a Twitter developer App that is attached to a Project.",
        "registration_url": "https://developer.twitter.com/en/docs/projects/overview",
        "title": "Client Forbidden",
        "required_enrollment": "Appropriate Level of API Access",
        "reason": "client-not-enrolled",
        "type": "https://api.twitter.com/2/problems/client-forbidden",
    }
    return Response(json.dumps(body), status=403, content_type=JSON)


def rate_limited(reset: int = RECORDED_RESET) -> Response:
    return Response(_problem(429, "Too Many Requests"), status=429, content_type=JSON,
                    headers={"x-rate-limit-limit": "450", "x-rate-limit-remaining": "0",
                             "x-rate-limit-reset": str(reset)})


def unavailable() -> Response:
    return Response(_problem(503, "Service Unavailable"), status=503, content_type=JSON)


def html_page(status: int = 200) -> Response:
    """A captive portal or proxy page where JSON was expected."""
    return Response("<!DOCTYPE html><html><head><title>Sign in to Wi-Fi</title></head>"
                    "<body><h1>Please sign in</h1></body></html>", status=status,
                    content_type="text/html; charset=utf-8")


def bad_request(message: str, parameter: str = "query") -> Response:
    body = {"errors": [{"parameters": {parameter: ["..."]}, "message": message}],
            "title": "Invalid Request", "detail": "One or more parameters to your request was "
            "invalid.", "type": "https://api.twitter.com/2/problems/invalid-request"}
    return Response(json.dumps(body), status=400, content_type=JSON)


@dataclass(slots=True)
class _Injected:
    countdown: int
    response: Response


class FakeTwitter:
    """The fake API; use as a context manager or through the :func:`fake_twitter` fixture."""

    bearer_token = "AAAA-fake-bearer-token"

    def __init__(self) -> None:
        self.http = FeedServer()
        self.tweets: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.matcher: Callable[[str, Mapping[str, Any]], bool] = lambda _query, _tweet: True
        self.rate_limit_reset = RECORDED_RESET
        self.rate_limit_remaining = 450
        self._injected: list[_Injected] = []
        self.http.add_handler(SEARCH_PATH, self._search)
        self.http.add_handler(LOOKUP_PATH, self._lookup)
        # Called before each search page is answered (tests add tweets "while paging").
        self.before_search: Callable[[dict[str, str]], None] | None = None

    def __enter__(self) -> FakeTwitter:
        self.http.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.stop()

    @property
    def api_url(self) -> str:
        return self.http.base_url + "/"

    # -- the store -----------------------------------------------------------------------------

    def add_user(self, user_id: str, username: str, name: str, *,
                 followers: int = 0) -> dict[str, Any]:
        user = {"id": user_id, "username": username, "name": name,
                "public_metrics": {"followers_count": followers, "following_count": 10,
                                   "tweet_count": 1000, "listed_count": 1}}
        self.users[user_id] = user
        return user

    def add_tweet(self, tweet_id: str, text: str, *, author: Mapping[str, Any],
                  likes: int = 0, retweets: int = 0, quotes: int = 0, replies: int = 0,
                  lang: str = "en", conversation_id: str | None = None,
                  replied_to: str | None = None, retweeted: str | None = None,
                  created_at: str | None = None) -> dict[str, Any]:
        tweet: dict[str, Any] = {
            "id": tweet_id, "text": text, "edit_history_tweet_ids": [tweet_id],
            "author_id": author["id"], "created_at": created_at or snowflake_time(tweet_id),
            "lang": lang, "conversation_id": conversation_id or tweet_id,
            "public_metrics": {"retweet_count": retweets, "reply_count": replies,
                               "like_count": likes, "quote_count": quotes,
                               "bookmark_count": 0, "impression_count": 10 * (likes + 1)},
        }
        refs = [{"type": kind, "id": ref} for kind, ref in
                (("replied_to", replied_to), ("retweeted", retweeted)) if ref]
        if refs:
            tweet["referenced_tweets"] = refs
        self.tweets[tweet_id] = tweet
        return tweet

    def load_recorded(self, name: str, *, author: Mapping[str, Any]) -> list[str]:
        """Add the tweets of a recorded search body; returns their ids, newest first.

        Metrics are made up but fixed: the n-th tweet (from the oldest) has n likes, n // 2
        retweets, 1 quote when n is odd and n // 3 replies.
        """
        ids = [str(t["id"]) for t in recorded(name)["data"]]
        texts = {str(t["id"]): t["text"] for t in recorded(name)["data"]}
        for n, tweet_id in enumerate(sorted(ids, key=int), start=1):
            self.add_tweet(tweet_id, texts[tweet_id], author=author, likes=n,
                           retweets=n // 2, quotes=n % 2, replies=n // 3)
        return sorted(ids, key=int, reverse=True)

    # -- errors and inspection -----------------------------------------------------------------

    def inject(self, response: Response, *, at: int = 1) -> None:
        """Answer the ``at``-th search request from now (1 = the next) with ``response``."""
        self._injected.append(_Injected(at, response))

    def lookups(self) -> list[dict[str, str]]:
        """The query parameters of every ``GET /2/tweets`` (lookup by ids), in order."""
        return [{k: v[-1] for k, v in parse_qs(r.query).items()}
                for r in self.http.requests_for(LOOKUP_PATH)]

    def searches(self) -> list[dict[str, str]]:
        """The query parameters of every search request, in order."""
        return [{k: v[-1] for k, v in parse_qs(r.query).items()}
                for r in self.http.requests_for(SEARCH_PATH)]

    # -- serving -------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        self.rate_limit_remaining = max(0, self.rate_limit_remaining - 1)
        return {"api-version": "2.52", "x-access-level": "read", "x-response-time": "78",
                "cache-control": "no-cache, no-store, max-age=0",
                "x-rate-limit-limit": "450",
                "x-rate-limit-remaining": str(self.rate_limit_remaining),
                "x-rate-limit-reset": str(self.rate_limit_reset)}

    def _next_injected(self) -> Response | None:
        chosen = None
        for item in list(self._injected):
            item.countdown -= 1
            if item.countdown == 0:
                self._injected.remove(item)
                chosen = chosen or item.response
        return chosen

    def _search(self, request: RecordedRequest) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.bearer_token}":
            return unauthorized()
        injected = self._next_injected()
        if injected is not None:
            return injected
        params = {k: v[-1] for k, v in parse_qs(request.query).items()}
        if self.before_search is not None:
            self.before_search(params)
        query = params.get("query", "")
        if not query:
            return bad_request("The `query` query parameter can not be empty")
        max_results = int(params.get("max_results", "10"))
        if not 10 <= max_results <= 100:
            return bad_request(f"The `max_results` query parameter value [{max_results}] is "
                               "not between 10 and 100", "max_results")
        matches = sorted((t for t in self.tweets.values() if self.matcher(query, t)),
                         key=lambda t: int(t["id"]), reverse=True)
        if "since_id" in params:
            matches = [t for t in matches if int(t["id"]) > int(params["since_id"])]
        if "until_id" in params:
            matches = [t for t in matches if int(t["id"]) < int(params["until_id"])]
        if "next_token" in params:
            below = _decode_token(params["next_token"])
            if below is None:
                return bad_request(f"Invalid next_token: {params['next_token']}", "next_token")
            matches = [t for t in matches if int(t["id"]) < below]
        page, rest = matches[:max_results], matches[max_results:]
        if not page:
            return Response(json.dumps({"meta": {"result_count": 0}}), content_type=JSON,
                            headers=self._headers())
        tweet_fields = set(_DEFAULT_TWEET_FIELDS) | _csv(params.get("tweet.fields"))
        user_fields = set(_DEFAULT_USER_FIELDS) | _csv(params.get("user.fields"))
        body: dict[str, Any] = {"data": [{k: v for k, v in t.items() if k in tweet_fields}
                                         for t in page]}
        if "author_id" in _csv(params.get("expansions")):
            authors = dict.fromkeys(t["author_id"] for t in page)
            body["includes"] = {"users": [{k: v for k, v in self.users[a].items()
                                           if k in user_fields}
                                          for a in authors if a in self.users]}
        meta: dict[str, Any] = {"newest_id": page[0]["id"], "oldest_id": page[-1]["id"],
                                "result_count": len(page)}
        if rest:
            meta["next_token"] = _encode_token(int(page[-1]["id"]))
        body["meta"] = meta
        return Response(json.dumps(body, ensure_ascii=False), content_type=JSON,
                        headers=self._headers())


    def _lookup(self, request: RecordedRequest) -> Response:
        """``GET /2/tweets?ids=...``: the tweets found, and X's "Not Found Error" for the rest."""
        if request.headers.get("authorization") != f"Bearer {self.bearer_token}":
            return unauthorized()
        injected = self._next_injected()
        if injected is not None:
            return injected
        params = {k: v[-1] for k, v in parse_qs(request.query).items()}
        ids = [i for i in params.get("ids", "").split(",") if i]
        if not 1 <= len(ids) <= 100:
            return bad_request(f"The number of values in the `ids` query parameter list "
                               f"[{len(ids)}] is not between 1 and 100", "ids")
        found = [self.tweets[i] for i in ids if i in self.tweets]
        body: dict[str, Any] = {}
        if found:
            body.update(self._objects(found, params))
        missing = [i for i in ids if i not in self.tweets]
        if missing:
            body["errors"] = [{
                "value": i, "detail": f"Could not find tweet with ids: [{i}].",
                "title": "Not Found Error", "resource_type": "tweet", "parameter": "ids",
                "resource_id": i, "type": "https://api.twitter.com/2/problems/resource-not-found",
            } for i in missing]
        return Response(json.dumps(body, ensure_ascii=False), content_type=JSON,
                        headers=self._headers())

    def _objects(self, tweets: list[dict[str, Any]], params: Mapping[str, str]) -> dict[str, Any]:
        """``data`` (and ``includes.users``) with only the requested fields."""
        tweet_fields = set(_DEFAULT_TWEET_FIELDS) | _csv(params.get("tweet.fields"))
        user_fields = set(_DEFAULT_USER_FIELDS) | _csv(params.get("user.fields"))
        body: dict[str, Any] = {"data": [{k: v for k, v in t.items() if k in tweet_fields}
                                         for t in tweets]}
        if "author_id" in _csv(params.get("expansions")):
            authors = dict.fromkeys(t["author_id"] for t in tweets)
            body["includes"] = {"users": [{k: v for k, v in self.users[a].items()
                                           if k in user_fields}
                                          for a in authors if a in self.users]}
        return body


def _csv(value: str | None) -> set[str]:
    return {part for part in (value or "").split(",") if part}


def _encode_token(below_id: int) -> str:
    return base64.b32encode(f"b{below_id}".encode()).decode().rstrip("=").lower()


def _decode_token(token: str) -> int | None:
    try:
        text = base64.b32decode(token.upper() + "=" * (-len(token) % 8)).decode()
        return int(text[1:]) if text.startswith("b") else None
    except (ValueError, UnicodeDecodeError):
        return None


@pytest.fixture
def fake_twitter() -> Iterator[FakeTwitter]:
    """A running :class:`FakeTwitter` with an empty store; stopped after the test."""
    with FakeTwitter() as server:
        yield server
