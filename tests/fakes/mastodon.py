"""A fake Mastodon instance on 127.0.0.1: status search and hashtag timelines.

Usage::

    from tests.fakes.mastodon import fake_mastodon  # noqa: F401  (the pytest fixture)

    def test_something(fake_mastodon):
        fake_mastodon.load_sample()
        connector = MastodonConnector(api_url=fake_mastodon.api_url,
                                      access_token=fake_mastodon.token)
        ...

It answers like Mastodon 4.2:

* ``GET /api/v1/timelines/tag/<tag>`` — public (a wrong token is 401 all the same); ``limit``
  (default 20, at most 40), ``max_id`` / ``since_id`` (newest first) and ``min_id`` (the
  statuses right after it, still sent newest first); a ``Link`` header with ``rel="next"``
  (``max_id``) and ``rel="prev"`` (``min_id``) built from the instance's *public* host
  (:attr:`public_url`), as a real instance does; an unknown tag is an empty list;
* ``GET /api/v2/search`` — ``q``, ``type=statuses``, ``limit``, ``offset``, ``min_id`` /
  ``max_id``; statuses need a token (without one the instance answers no statuses); which
  statuses match ``q`` is up to ``matcher`` (default: all), newest first.

Statuses are full Status entities (``tests/data/api/mastodon/tag_timeline.json``); a status is
on the timeline of every tag in its ``tags``. Error injection: :meth:`inject` answers the n-th
next API request; :func:`rate_limited`, :func:`api_error` and :func:`html_page` build answers.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode

import pytest

from tests.fakes.feedserver import FeedServer, RecordedRequest, Response
from tests.paths import DATA

DATA_DIR = DATA / "api" / "mastodon"
JSON = "application/json; charset=utf-8"
SEARCH = "/api/v2/search"
TAG_PREFIX = "/api/v1/timelines/tag/"
STATUS_PREFIX = "/api/v1/statuses/"


def sample(name: str) -> Any:
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


def api_error(status: int, message: str, **headers: str) -> Response:
    return Response(json.dumps({"error": message}), status=status, content_type=JSON,
                    headers=headers)


def rate_limited(reset: str) -> Response:
    """Mastodon's 429: ``X-RateLimit-Reset`` is an ISO time."""
    return api_error(429, "Too many requests", **{
        "X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})


def html_page(status: int = 200) -> Response:
    return Response("<!DOCTYPE html><html><head><title>We're sorry, but something went wrong "
                    "(500)</title></head><body><div class=\"dialog\"><h1>Maintenance</h1>"
                    "</div></body></html>", status=status, content_type="text/html")


@dataclass(slots=True)
class _Injected:
    countdown: int
    response: Response


class FakeMastodon:
    """The fake instance; use as a context manager or through the :func:`fake_mastodon`
    fixture."""

    token = "fake-mastodon-user-token"
    public_url = "https://mastodon.example"

    def __init__(self) -> None:
        self.http = FeedServer()
        self.statuses: dict[str, dict[str, Any]] = {}
        self.matcher: Callable[[str, Mapping[str, Any]], bool] = lambda _q, _status: True
        self._injected: list[_Injected] = []
        self._next_id = 111733000000000000
        self.http.add_handler(SEARCH, self._search)

    def __enter__(self) -> FakeMastodon:
        self.http.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.stop()

    @property
    def api_url(self) -> str:
        return self.http.base_url + "/"

    # -- the store -----------------------------------------------------------------------------

    def add_status(self, status: dict[str, Any]) -> dict[str, Any]:
        self.statuses[status["id"]] = status
        self.http.add_handler(STATUS_PREFIX + status["id"], self._status)
        for tag in status.get("tags") or ():
            self.serve_tag(tag["name"])
        return status

    def serve_tag(self, tag: str) -> None:
        """Serve the timeline of ``tag`` (any case): real instances answer every tag."""
        for name in {tag, tag.lower()}:
            self.http.add_handler(TAG_PREFIX + quote(name, safe=""), self._tag_timeline)

    def load_sample(self) -> list[str]:
        """Add the sample statuses; returns their ids, newest first."""
        return [self.add_status(s)["id"] for s in sample("tag_timeline.json")]

    def post(self, text: str, *, tag: str = "unitedairlines", acct: str = "someone") -> dict:
        """A new public status (newer than every other) on ``tag``'s timeline."""
        self._next_id += 1
        status = copy.deepcopy(sample("tag_timeline.json")[2])
        status_id = str(self._next_id)
        status.update(
            id=status_id, created_at="2024-01-10T14:10:00.000Z", content=f"<p>{text}</p>",
            uri=f"https://mastodon.example/users/{acct}/statuses/{status_id}",
            url=f"https://mastodon.example/@{acct}/{status_id}",
            tags=[{"name": tag, "url": f"https://mastodon.example/tags/{tag}"}])
        status["account"] = {**status["account"], "acct": acct, "username": acct}
        return self.add_status(status)

    # -- errors and inspection -----------------------------------------------------------------

    def inject(self, response: Response, *, at: int = 1) -> None:
        """Answer the ``at``-th API request from now (1 = the next) with ``response``."""
        self._injected.append(_Injected(at, response))

    def requests(self, prefix: str = "/api/") -> list[tuple[str, dict[str, str]]]:
        """(path, query parameters) of every API request under ``prefix``, in order."""
        return [(unquote(r.path), {k: v[-1] for k, v in parse_qs(r.query).items()})
                for r in self.http.requests if r.path.startswith(prefix)]

    # -- serving -------------------------------------------------------------------------------

    def _next_injected(self) -> Response | None:
        chosen = None
        for item in list(self._injected):
            item.countdown -= 1
            if item.countdown == 0:
                self._injected.remove(item)
                chosen = chosen or item.response
        return chosen

    def _auth(self, request: RecordedRequest) -> tuple[bool, Response | None]:
        """(authenticated, error answer) for the request's bearer token."""
        value = request.headers.get("authorization")
        if value is None:
            return False, None
        if value != f"Bearer {self.token}":
            return False, api_error(401, "The access token is invalid")
        return True, None

    def _tag_timeline(self, request: RecordedRequest) -> Response:
        _, error = self._auth(request)
        if error is not None:
            return error
        injected = self._next_injected()
        if injected is not None:
            return injected
        tag = unquote(request.path[len(TAG_PREFIX):]).lower()
        params = {k: v[-1] for k, v in parse_qs(request.query).items()}
        limit = min(int(params.get("limit", "20")), 40)
        on_tag = [s for s in self.statuses.values()
                  if tag in {t["name"].lower() for t in s.get("tags") or ()}]
        page = _window(on_tag, params, limit)
        headers = {}
        if page:
            base = f"{self.public_url}{TAG_PREFIX}{quote(tag, safe='')}"
            older = urlencode({"limit": limit, "max_id": page[-1]["id"]})
            newer = urlencode({"limit": limit, "min_id": page[0]["id"]})
            headers["Link"] = f'<{base}?{older}>; rel="next", <{base}?{newer}>; rel="prev"'
        return Response(json.dumps(copy.deepcopy(page), ensure_ascii=False), content_type=JSON,
                        headers=headers)

    def _status(self, request: RecordedRequest) -> Response:
        """``GET /api/v1/statuses/:id``: public statuses need no token; deleted ones are 404."""
        _, error = self._auth(request)
        if error is not None:
            return error
        injected = self._next_injected()
        if injected is not None:
            return injected
        status = self.statuses.get(request.path[len(STATUS_PREFIX):])
        if status is None:
            return api_error(404, "Record not found")
        return Response(json.dumps(copy.deepcopy(status), ensure_ascii=False), content_type=JSON)

    def _search(self, request: RecordedRequest) -> Response:
        authenticated, error = self._auth(request)
        if error is not None:
            return error
        injected = self._next_injected()
        if injected is not None:
            return injected
        params = {k: v[-1] for k, v in parse_qs(request.query).items()}
        q = params.get("q", "")
        if not q:
            return api_error(400, "Validation failed: Query can't be blank")
        limit = min(int(params.get("limit", "20")), 40)
        offset = int(params.get("offset", "0"))
        statuses: list[dict[str, Any]] = []
        if authenticated and params.get("type", "statuses") == "statuses":
            found = [s for s in self.statuses.values() if self.matcher(q, s)]
            if params.get("resolve") == "true" and q.startswith(("http://", "https://")):
                found = [s for s in self.statuses.values() if q in (s.get("uri"), s.get("url"))]
            window = _window(found, {k: v for k, v in params.items() if k != "min_id"},
                             len(found))
            if "min_id" in params:
                window = [s for s in window if int(s["id"]) > int(params["min_id"])]
            statuses = window[offset:offset + limit]
        body = {"accounts": [], "statuses": copy.deepcopy(statuses), "hashtags": []}
        return Response(json.dumps(body, ensure_ascii=False), content_type=JSON)


def _window(statuses: list[dict[str, Any]], params: Mapping[str, str],
            limit: int) -> list[dict[str, Any]]:
    """Mastodon's id paging: newest first; ``min_id`` takes the ``limit`` right after it."""
    ordered = sorted(statuses, key=lambda s: int(s["id"]), reverse=True)
    if "max_id" in params:
        ordered = [s for s in ordered if int(s["id"]) < int(params["max_id"])]
    if "since_id" in params:
        ordered = [s for s in ordered if int(s["id"]) > int(params["since_id"])]
    if "min_id" in params:
        after = [s for s in reversed(ordered) if int(s["id"]) > int(params["min_id"])]
        return list(reversed(after[:limit]))
    return ordered[:limit]


@pytest.fixture
def fake_mastodon() -> Iterator[FakeMastodon]:
    """A running :class:`FakeMastodon` with no statuses; stopped after the test."""
    with FakeMastodon() as server:
        yield server
