"""A fake Bluesky PDS (XRPC) on 127.0.0.1: sessions and post search.

Usage::

    from tests.fakes.bluesky import fake_bluesky  # noqa: F401  (the pytest fixture)

    def test_something(fake_bluesky):
        fake_bluesky.load_sample()
        connector = BlueskyConnector(fake_bluesky.handle, fake_bluesky.password,
                                     api_url=fake_bluesky.api_url)
        ...
        assert fake_bluesky.searches()[0]["q"] == "united"

It answers like bsky.social does:

* ``POST com.atproto.server.createSession`` — ``{"identifier", "password"}``; the session body of
  ``tests/data/api/bluesky/createSession.json`` with fresh tokens, or ``401
  AuthenticationRequired: Invalid identifier or password``;
* ``POST com.atproto.server.refreshSession`` — ``Authorization: Bearer <refreshJwt>``; new
  tokens (the old refresh token is revoked), or ``400 ExpiredToken`` / ``InvalidToken``;
* ``GET app.bsky.feed.searchPosts`` — ``Bearer <accessJwt>`` (``401 AuthMissing`` without,
  ``400 ExpiredToken`` once :meth:`expire_access_tokens` ran); ``q``, ``sort``, ``limit``
  (1-100), ``cursor`` (an offset, as the AppView's is); posts newest ``indexedAt`` first;
  which posts match ``q`` is up to ``matcher`` (default: all).

Error injection: :meth:`inject` makes the n-th next search answer a canned response;
:func:`rate_limited`, :func:`xrpc_error` and :func:`html_page` build the answers.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.fakes.feedserver import FeedServer, RecordedRequest, Response
from tests.paths import DATA

DATA_DIR = DATA / "api" / "bluesky"
JSON = "application/json; charset=utf-8"
XRPC = "/xrpc/"
SEARCH = XRPC + "app.bsky.feed.searchPosts"
CREATE_SESSION = XRPC + "com.atproto.server.createSession"
REFRESH_SESSION = XRPC + "com.atproto.server.refreshSession"
GET_POSTS = XRPC + "app.bsky.feed.getPosts"


def sample(name: str) -> dict[str, Any]:
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


def xrpc_error(status: int, error: str, message: str, **headers: str) -> Response:
    return Response(json.dumps({"error": error, "message": message}), status=status,
                    content_type=JSON, headers=headers)


def rate_limited(reset: int) -> Response:
    return xrpc_error(429, "RateLimitExceeded", "Rate Limit Exceeded", **{
        "ratelimit-limit": "3000", "ratelimit-remaining": "0", "ratelimit-reset": str(reset),
        "ratelimit-policy": "3000;w=300"})


def html_page(status: int = 200) -> Response:
    return Response("<html><head><title>502 Bad Gateway</title></head><body><center>"
                    "<h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
                    status=status, content_type="text/html")


@dataclass(slots=True)
class _Injected:
    countdown: int
    response: Response


class FakeBluesky:
    """The fake PDS; use as a context manager or through the :func:`fake_bluesky` fixture."""

    handle = "uproar-bot.bsky.social"
    password = "abcd-efgh-ijkl-mnop"

    def __init__(self) -> None:
        self.http = FeedServer()
        self.posts: dict[str, dict[str, Any]] = {}
        self.matcher: Callable[[str, Mapping[str, Any]], bool] = lambda _q, _post: True
        self.access_tokens: dict[str, bool] = {}  # token -> still valid (False: expired)
        self.refresh_tokens: dict[str, bool] = {}
        self._issued = 0
        self._injected: list[_Injected] = []
        self.http.add_handler(CREATE_SESSION, self._create_session)
        self.http.add_handler(REFRESH_SESSION, self._refresh_session)
        self.http.add_handler(SEARCH, self._search)
        self.http.add_handler(GET_POSTS, self._get_posts)

    def __enter__(self) -> FakeBluesky:
        self.http.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.stop()

    @property
    def api_url(self) -> str:
        return self.http.base_url + XRPC

    # -- the store -----------------------------------------------------------------------------

    def load_sample(self, name: str = "searchPosts.json") -> list[str]:
        """Add the posts of a sample search answer; returns their URIs, newest first."""
        posts = sample(name)["posts"]
        for post in posts:
            self.posts[post["uri"]] = post
        return [p["uri"] for p in posts]

    def add_post(self, rkey: str, text: str, indexed_at: str, *,
                 handle: str = "someone.bsky.social", likes: int = 0) -> dict[str, Any]:
        did = "did:plc:" + (handle.split(".")[0] + "x" * 24)[:24]
        uri = f"at://{did}/app.bsky.feed.post/{rkey}"
        post = {
            "uri": uri, "cid": "bafyrei" + rkey,
            "author": {"did": did, "handle": handle, "displayName": handle.split(".")[0],
                       "labels": []},
            "record": {"$type": "app.bsky.feed.post", "createdAt": indexed_at, "langs": ["en"],
                       "text": text},
            "replyCount": 0, "repostCount": 0, "likeCount": likes, "quoteCount": 0,
            "indexedAt": indexed_at, "labels": [],
        }
        self.posts[uri] = post
        return post

    # -- sessions, errors and inspection -------------------------------------------------------

    def expire_access_tokens(self) -> None:
        for token in self.access_tokens:
            self.access_tokens[token] = False

    def expire_refresh_tokens(self) -> None:
        for token in self.refresh_tokens:
            self.refresh_tokens[token] = False

    def inject(self, response: Response, *, at: int = 1) -> None:
        """Answer the ``at``-th search request from now (1 = the next) with ``response``."""
        self._injected.append(_Injected(at, response))

    def searches(self) -> list[dict[str, str]]:
        """The query parameters of every search request, in order."""
        return [{k: v[-1] for k, v in parse_qs(r.query).items()}
                for r in self.http.requests_for(SEARCH)]

    def logins(self) -> int:
        return self.http.hits(CREATE_SESSION)

    def refreshes(self) -> int:
        return self.http.hits(REFRESH_SESSION)

    # -- serving -------------------------------------------------------------------------------

    def _issue(self) -> dict[str, Any]:
        self._issued += 1
        access, refresh = f"access-{self._issued}", f"refresh-{self._issued}"
        self.access_tokens[access] = True
        self.refresh_tokens[refresh] = True
        body = sample("createSession.json")
        body.update(handle=self.handle, accessJwt=access, refreshJwt=refresh)
        return body

    def _create_session(self, request: RecordedRequest) -> Response:
        if request.method != "POST":
            return xrpc_error(405, "InvalidRequest", "Method Not Allowed")
        try:
            creds = json.loads(request.body)
        except ValueError:
            return xrpc_error(400, "InvalidRequest", "Request body must be JSON")
        if creds.get("identifier") != self.handle or creds.get("password") != self.password:
            return xrpc_error(401, "AuthenticationRequired", "Invalid identifier or password")
        return Response(json.dumps(self._issue()), content_type=JSON)

    def _refresh_session(self, request: RecordedRequest) -> Response:
        token = _bearer(request)
        if token not in self.refresh_tokens:
            return xrpc_error(400, "InvalidToken", "Token could not be verified")
        if not self.refresh_tokens.pop(token):
            return xrpc_error(400, "ExpiredToken", "Token has expired")
        body = self._issue()
        return Response(json.dumps({k: body[k] for k in
                                    ("accessJwt", "refreshJwt", "handle", "did", "active")}),
                        content_type=JSON)

    def _next_injected(self) -> Response | None:
        chosen = None
        for item in list(self._injected):
            item.countdown -= 1
            if item.countdown == 0:
                self._injected.remove(item)
                chosen = chosen or item.response
        return chosen

    def _admit(self, request: RecordedRequest) -> Response | None:
        """The error answer for a request without a valid access token, or an injected one."""
        token = _bearer(request)
        if token is None:
            return xrpc_error(401, "AuthMissing", "Authentication Required")
        if token not in self.access_tokens:
            return xrpc_error(400, "InvalidToken", "Token could not be verified")
        if not self.access_tokens[token]:
            return xrpc_error(400, "ExpiredToken", "Token has expired")
        return self._next_injected()

    def _get_posts(self, request: RecordedRequest) -> Response:
        """``GET app.bsky.feed.getPosts?uris=…&uris=…`` (1-25): the posts that still exist."""
        refused = self._admit(request)
        if refused is not None:
            return refused
        uris = parse_qs(request.query).get("uris", [])
        if not 1 <= len(uris) <= 25:
            return xrpc_error(400, "InvalidRequest", "Error: uris must not have more than 25 "
                                                     "elements")
        found = [copy.deepcopy(self.posts[u]) for u in uris if u in self.posts]
        return Response(json.dumps({"posts": found}, ensure_ascii=False), content_type=JSON)

    def _search(self, request: RecordedRequest) -> Response:
        refused = self._admit(request)
        if refused is not None:
            return refused
        params = {k: v[-1] for k, v in parse_qs(request.query).items()}
        q = params.get("q", "")
        if not q:
            return xrpc_error(400, "InvalidRequest", 'Error: Params must have the property "q"')
        limit = int(params.get("limit", "25"))
        if not 1 <= limit <= 100:
            return xrpc_error(400, "InvalidRequest", "Error: limit must be <= 100")
        offset = int(params.get("cursor") or 0)
        matches = sorted((p for p in self.posts.values() if self.matcher(q, p)),
                         key=lambda p: p["indexedAt"], reverse=True)
        page = matches[offset:offset + limit]
        body: dict[str, Any] = {"posts": copy.deepcopy(page), "hitsTotal": len(matches)}
        if offset + limit < len(matches):
            body["cursor"] = str(offset + limit)
        return Response(json.dumps(body, ensure_ascii=False), content_type=JSON,
                        headers={"ratelimit-limit": "3000", "ratelimit-remaining": "2999",
                                 "ratelimit-policy": "3000;w=300"})


def _bearer(request: RecordedRequest) -> str | None:
    value = request.headers.get("authorization", "")
    return value[len("Bearer "):] if value.startswith("Bearer ") else None


@pytest.fixture
def fake_bluesky() -> Iterator[FakeBluesky]:
    """A running :class:`FakeBluesky` with an empty store; stopped after the test."""
    with FakeBluesky() as server:
        yield server
