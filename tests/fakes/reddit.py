"""A fake Reddit (OAuth token endpoint and listing API) on 127.0.0.1, for the real praw client.

Usage::

    from tests.fakes.reddit import fake_reddit  # noqa: F401  (the pytest fixture)

    def test_something(fake_reddit):
        fake_reddit.load_listing("/r/askreddit/new", "askreddit_new.json")
        connector = RedditConnector(fake_reddit.client_id, fake_reddit.client_secret,
                                    user_agent="uproar-tests/1.0", api_url=fake_reddit.api_url,
                                    auth_url=fake_reddit.auth_url, subreddits=["askreddit"])
        ...
        assert fake_reddit.listing_requests("/r/askreddit/new")[0]["limit"] == "100"

Like Reddit, the server

* issues app-only tokens at ``POST /api/v1/access_token`` (HTTP Basic client id and secret,
  ``grant_type=client_credentials``; 401 for wrong credentials) and accepts only the latest
  token it issued (:meth:`expire_tokens` makes praw get a 401 and fetch a new one);
* serves listings newest first (``created_utc``, then id) in pages of at most ``page_cap``
  items with ``after`` / ``limit`` paging, and ``x-ratelimit-*`` headers;
* serves ``/r/<name>/search`` per query (:meth:`set_search`), ignoring ``t`` and ``sort``
  beyond the newest-first order, and records every request.

Error injection: :meth:`inject` makes the n-th next API request (optionally only those to one
listing) answer a canned response; the helpers below build Reddit's real error answers. The
listing bodies in ``tests/data/recorded/praw/`` come from praw's recorded test cassettes, cut to
a dozen items and the fields a client reads (see the README there).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.fakes.feedserver import FeedServer, RecordedRequest, Response
from tests.paths import DATA

RECORDED_DIR = DATA / "recorded" / "praw"
JSON = "application/json; charset=UTF-8"
TOKEN_PATH = "/api/v1/access_token"
INFO_PATH = "/api/info"


def recorded_listing(name: str) -> list[dict[str, Any]]:
    """The children (``{"kind": "t3", "data": {...}}``) of a recorded listing body."""
    body = json.loads((RECORDED_DIR / name).read_text(encoding="utf-8"))
    return body["data"]["children"]


def submission(post_id: str, title: str, *, created_utc: float, subreddit: str = "unitedairlines",
               author: str = "someone", selftext: str = "", score: int = 1,
               num_comments: int = 0) -> dict[str, Any]:
    slug = "_".join(title.lower().split())[:40]
    return {"kind": "t3", "data": {
        "name": f"t3_{post_id}", "id": post_id, "author": author, "created_utc": created_utc,
        "title": title, "selftext": selftext, "score": score, "ups": score,
        "num_comments": num_comments, "subreddit": subreddit, "is_self": bool(selftext),
        "permalink": f"/r/{subreddit}/comments/{post_id}/{slug}/",
        "url": f"https://www.reddit.com/r/{subreddit}/comments/{post_id}/{slug}/"}}


def _json_error(status: int, message: str, **extra: Any) -> bytes:
    return json.dumps({"message": message, "error": status, **extra}).encode()


def unauthorized() -> Response:
    return Response(_json_error(401, "Unauthorized"), status=401, content_type=JSON,
                    headers={"www-authenticate": 'Bearer realm="reddit", error="invalid_token"'})


def private_subreddit() -> Response:
    return Response(_json_error(403, "Forbidden", reason="private"), status=403,
                    content_type=JSON)


def banned_subreddit() -> Response:
    return Response(_json_error(404, "Not Found", reason="banned"), status=404,
                    content_type=JSON)


def too_many_requests(reset: int = 120) -> Response:
    return Response(_json_error(429, "Too Many Requests"), status=429, content_type=JSON,
                    headers={"x-ratelimit-remaining": "0", "x-ratelimit-used": "600",
                             "x-ratelimit-reset": str(reset)})


def unavailable() -> Response:
    """Reddit's CDN page when the servers behind it are down."""
    return Response("<!doctype html><html><head><title>reddit.com: over capacity</title></head>"
                    "<body><h1>all of our servers are busy right now</h1></body></html>",
                    status=503, content_type="text/html; charset=UTF-8")


def bad_request_html() -> Response:
    """The HTML 400 page praw's test suite recorded from Reddit."""
    return Response((RECORDED_DIR / "bad_request.html").read_bytes(), status=400,
                    content_type="text/html")


def blocked_html() -> Response:
    return Response("<!doctype html><html><title>Blocked</title><body><h1>whoa there, pardner!"
                    "</h1><p>Your request has been blocked due to a network policy.</p></body>"
                    "</html>", status=403, content_type="text/html; charset=utf-8")


def maintenance_page() -> Response:
    return Response("<html><body><h1>reddit is down for maintenance</h1></body></html>",
                    status=200, content_type="text/html; charset=utf-8")


@dataclass(slots=True)
class _Injected:
    countdown: int
    response: Response
    path: str | None


class FakeReddit:
    """The fake API; use as a context manager or through the :func:`fake_reddit` fixture."""

    client_id = "fake-client-id"
    client_secret = "fake-client-secret"

    def __init__(self) -> None:
        self.http = FeedServer()
        self.page_cap = 100  # Reddit answers at most 100 items per request
        self.ratelimit_remaining = 600.0
        self.ratelimit_reset = 300
        self._listings: dict[str, list[dict[str, Any]]] = {}
        self._searches: dict[str, dict[str | None, list[dict[str, Any]]]] = {}
        self._tokens_issued = 0
        self._valid_token: str | None = None
        self._injected: list[_Injected] = []
        self.http.add_handler(TOKEN_PATH, self._token)
        self._route(INFO_PATH)

    def __enter__(self) -> FakeReddit:
        self.http.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.stop()

    @property
    def api_url(self) -> str:
        return self.http.base_url + "/"

    @property
    def auth_url(self) -> str:
        return self.http.base_url + "/"

    # -- content -------------------------------------------------------------------------------

    def add_listing(self, path: str, children: Sequence[dict[str, Any]]) -> None:
        """Serve ``children`` (added to what ``path`` already holds) at ``path``."""
        path = _norm(path)
        items = {c["data"]["name"]: c for c in self._listings.get(path, [])}
        items.update((c["data"]["name"], c) for c in children)
        self._listings[path] = _newest_first(items.values())
        self._route(path)

    def load_listing(self, path: str, name: str) -> list[str]:
        """Serve a recorded listing at ``path``; returns its fullnames, newest first."""
        children = recorded_listing(name)
        self.add_listing(path, children)
        return [c["data"]["name"] for c in _newest_first(children)]

    def remove(self, path: str, fullname: str) -> None:
        path = _norm(path)
        self._listings[path] = [c for c in self._listings[path] if c["data"]["name"] != fullname]

    def set_search(self, children: Sequence[dict[str, Any]], *, subreddit: str = "all",
                   q: str | None = None) -> None:
        """Results of ``/r/<subreddit>/search`` for query ``q`` (``None``: any query)."""
        path = _norm(f"/r/{subreddit}/search")
        self._searches.setdefault(path, {})[q] = _newest_first(children)
        self._route(path)

    def things(self) -> dict[str, dict[str, Any]]:
        """Every item served anywhere, by fullname (what ``/api/info`` can find)."""
        found: dict[str, dict[str, Any]] = {}
        for children in self._listings.values():
            found.update((c["data"]["name"], c) for c in children)
        for by_query in self._searches.values():
            for children in by_query.values():
                found.update((c["data"]["name"], c) for c in children)
        return found

    def expire_tokens(self) -> None:
        self._valid_token = None

    def inject(self, response: Response, *, at: int = 1, path: str | None = None) -> None:
        """Answer the ``at``-th API request from now (1 = the next; counting only requests to
        ``path`` when given) with ``response``."""
        if path is not None:
            self._route(_norm(path))
        self._injected.append(_Injected(at, response, _norm(path) if path else None))

    # -- inspection ----------------------------------------------------------------------------

    def listing_requests(self, path: str | None = None) -> list[dict[str, str]]:
        """Query parameters of the API requests (to ``path``, or all but the token's)."""
        wanted = _norm(path) if path else None
        return [{k: v[-1] for k, v in parse_qs(r.query).items()} | {"_path": _norm(r.path)}
                for r in self.http.requests
                if r.path != TOKEN_PATH and (wanted is None or _norm(r.path) == wanted)]

    def token_requests(self) -> list[RecordedRequest]:
        return self.http.requests_for(TOKEN_PATH)

    # -- serving -------------------------------------------------------------------------------

    def _route(self, path: str) -> None:
        self.http.add_handler(path, self._listing)
        self.http.add_handler(path + "/", self._listing)

    def _headers(self) -> dict[str, str]:
        self.ratelimit_remaining = max(0.0, self.ratelimit_remaining - 1)
        return {"x-moose": "majestic", "x-ratelimit-remaining": f"{self.ratelimit_remaining:.1f}",
                "x-ratelimit-used": str(int(600 - self.ratelimit_remaining)),
                "x-ratelimit-reset": str(self.ratelimit_reset)}

    def _token(self, request: RecordedRequest) -> Response:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return Response(_json_error(401, "Unauthorized"), status=401, content_type=JSON)
        form = parse_qs(request.body.decode())
        if form.get("grant_type") != ["client_credentials"]:
            return Response(json.dumps({"error": "unsupported_grant_type"}), content_type=JSON)
        self._tokens_issued += 1
        self._valid_token = f"fake-access-token-{self._tokens_issued}"
        return Response(json.dumps({"access_token": self._valid_token, "token_type": "bearer",
                                    "expires_in": 86400, "scope": "*"}), content_type=JSON)

    def _next_injected(self, path: str) -> Response | None:
        chosen = None
        for item in list(self._injected):
            if item.path is not None and item.path != path:
                continue
            item.countdown -= 1
            if item.countdown == 0:
                self._injected.remove(item)
                chosen = chosen or item.response
        return chosen

    def _listing(self, request: RecordedRequest) -> Response:
        path = _norm(request.path)
        if self._valid_token is None or \
                request.headers.get("authorization") != f"bearer {self._valid_token}":
            return unauthorized()
        injected = self._next_injected(path)
        if injected is not None:
            return injected
        params = {k: v[-1] for k, v in parse_qs(request.query).items()}
        if path == INFO_PATH:  # GET /api/info?id=t3_a,t1_b: the things found, in that order
            things = self.things()
            names = [n for n in params.get("id", "").split(",") if n][:100]
            found = [things[n] for n in names if n in things]
            body = {"kind": "Listing", "data": {"modhash": "", "dist": len(found),
                                                "children": found, "after": None,
                                                "before": None}}
            return Response(json.dumps(body, ensure_ascii=False), content_type=JSON,
                            headers=self._headers())
        if path in self._searches:
            by_query = self._searches[path]
            children = by_query.get(params.get("q"), by_query.get(None, []))
        else:
            children = self._listings.get(path, [])
        start = 0
        if "after" in params:
            names = [c["data"]["name"] for c in children]
            start = names.index(params["after"]) + 1 if params["after"] in names else len(names)
        size = min(int(params.get("limit", "25")), self.page_cap, 100)
        page = children[start:start + size]
        more = start + size < len(children)
        body = {"kind": "Listing", "data": {
            "modhash": "", "dist": len(page), "children": page,
            "after": page[-1]["data"]["name"] if page and more else None, "before": None}}
        return Response(json.dumps(body, ensure_ascii=False), content_type=JSON,
                        headers=self._headers())


def _norm(path: str) -> str:
    return "/" + path.strip("/").lower()


def _newest_first(children: Any) -> list[dict[str, Any]]:
    return sorted(children, key=lambda c: (c["data"]["created_utc"], int(c["data"]["id"], 36)),
                  reverse=True)


def fullnames(children: Sequence[Mapping[str, Any]]) -> list[str]:
    return [c["data"]["name"] for c in children]


@pytest.fixture
def fake_reddit() -> Iterator[FakeReddit]:
    """A running :class:`FakeReddit` with no listings; stopped after the test."""
    with FakeReddit() as server:
        yield server
