"""A fake Algolia Hacker News Search API on 127.0.0.1 (``search_by_date``).

Usage::

    from tests.fakes.hackernews import fake_hackernews  # noqa: F401  (the pytest fixture)

    def test_something(fake_hackernews):
        fake_hackernews.load_sample()
        connector = HackerNewsConnector(api_url=fake_hackernews.api_url)
        ...

``GET /api/v1/search_by_date`` answers like hn.algolia.com: ``query``, ``tags`` (a
comma-separated OR list in parentheses, e.g. ``(story,comment)``), ``numericFilters``
(``created_at_i>N``, ``>=``, ``<``, ``<=``), ``hitsPerPage`` and ``page``; hits newest first,
``nbHits`` / ``nbPages`` / ``page`` / ``hitsPerPage`` and Algolia's 1,000-hit pagination cap.
Which hits match ``query`` is up to ``matcher`` (default: all). The hits are the objects of
``tests/data/api/hackernews/search_by_date.json`` and :meth:`add_comment` look-alikes;
:attr:`indexed` lets a test hide hits that Algolia has not indexed yet.
Error injection: :meth:`inject`; :func:`rate_limited`, :func:`algolia_error`, :func:`html_page`.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.fakes.feedserver import FeedServer, RecordedRequest, Response
from tests.paths import DATA

DATA_DIR = DATA / "api" / "hackernews"
JSON = "application/json; charset=UTF-8"
SEARCH = "/api/v1/search_by_date"
ITEMS = "/api/v1/items/"
# Algolia's paginationLimitedTo on the HN index.
PAGINATION_LIMIT = 1000


def sample(name: str = "search_by_date.json") -> dict[str, Any]:
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


def algolia_error(status: int, message: str) -> Response:
    return Response(json.dumps({"message": message, "status": status}), status=status,
                    content_type=JSON)


def rate_limited() -> Response:
    return algolia_error(429, "Too many requests")


def html_page(status: int = 200) -> Response:
    return Response("<html><body><h1>504 Gateway Time-out</h1></body></html>", status=status,
                    content_type="text/html")


@dataclass(slots=True)
class _Injected:
    countdown: int
    response: Response


class FakeHackerNews:
    """The fake API; use as a context manager or through the :func:`fake_hackernews` fixture."""

    def __init__(self) -> None:
        self.http = FeedServer()
        self.hits: dict[str, dict[str, Any]] = {}
        self.indexed: Callable[[Mapping[str, Any]], bool] = lambda _hit: True
        self.matcher: Callable[[str, Mapping[str, Any]], bool] = lambda _q, _hit: True
        self._injected: list[_Injected] = []
        self.http.add_handler(SEARCH, self._search)
        # Called before each search page is answered (tests add hits "while paging").
        self.before_search: Callable[[dict[str, str]], None] | None = None

    def __enter__(self) -> FakeHackerNews:
        self.http.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.stop()

    @property
    def api_url(self) -> str:
        return self.http.base_url + "/api/v1/"

    def load_sample(self) -> list[str]:
        """Add the sample hits; returns their objectIDs, newest first."""
        hits = sample()["hits"]
        for hit in hits:
            self.add_hit(hit)
        return [h["objectID"] for h in hits]

    def add_hit(self, hit: dict[str, Any]) -> dict[str, Any]:
        """Add (or replace) a hit; it is also served at ``items/<objectID>``."""
        self.hits[hit["objectID"]] = hit
        self.http.add_handler(ITEMS + hit["objectID"], self._item)
        return hit

    def add_comment(self, object_id: str, text: str, created_at_i: int) -> dict[str, Any]:
        hit = copy.deepcopy(sample()["hits"][0])
        hit.update(objectID=object_id, comment_text=text, created_at_i=created_at_i,
                   _tags=["comment", f"author_{hit['author']}", "story_38935001"])
        return self.add_hit(hit)

    def inject(self, response: Response, *, at: int = 1) -> None:
        self._injected.append(_Injected(at, response))

    def searches(self) -> list[dict[str, str]]:
        return [{k: v[-1] for k, v in parse_qs(r.query).items()}
                for r in self.http.requests_for(SEARCH)]

    def _next_injected(self) -> Response | None:
        chosen = None
        for item in list(self._injected):
            item.countdown -= 1
            if item.countdown == 0:
                self._injected.remove(item)
                chosen = chosen or item.response
        return chosen

    def _item(self, request: RecordedRequest) -> Response:
        """``GET items/:id``: the item as a tree (``children`` holds its comments)."""
        injected = self._next_injected()
        if injected is not None:
            return injected
        hit = self.hits.get(request.path[len(ITEMS):])
        if hit is None:
            return Response(json.dumps({"status": 404, "error": "Not Found"}), status=404,
                            content_type=JSON)
        kind = "comment" if "comment" in (hit.get("_tags") or ()) else "story"
        children = [{"id": int(hit["objectID"]) * 10 + n, "type": "comment", "children": []}
                    for n in range(int(hit.get("num_comments") or 0))]
        item = {"id": int(hit["objectID"]), "created_at": hit.get("created_at"),
                "created_at_i": hit["created_at_i"], "type": kind, "author": hit.get("author"),
                "title": hit.get("title"), "url": hit.get("url"),
                "text": hit.get("comment_text") if kind == "comment" else hit.get("story_text"),
                "points": hit.get("points"), "parent_id": hit.get("parent_id"),
                "story_id": hit.get("story_id"), "options": [], "children": children}
        return Response(json.dumps(item, ensure_ascii=False), content_type=JSON)

    def _search(self, request: RecordedRequest) -> Response:
        injected = self._next_injected()
        if injected is not None:
            return injected
        params = {k: v[-1] for k, v in parse_qs(request.query).items()}
        if self.before_search is not None:
            self.before_search(params)
        query = params.get("query", "")
        hits = [h for h in self.hits.values() if self.indexed(h) and self.matcher(query, h)]
        tags = params.get("tags", "")
        if tags:
            wanted = set(tags.strip("()").split(","))
            hits = [h for h in hits if wanted & set(h.get("_tags") or ())]
        for condition in filter(None, params.get("numericFilters", "").split(",")):
            match = re.fullmatch(r"(\w+)(>=|<=|>|<|=)(-?\d+)", condition)
            if match is None:
                return algolia_error(400, f"Invalid syntax for numeric condition: {condition}")
            name, op, value = match[1], match[2], int(match[3])
            hits = [h for h in hits if _compare(h.get(name), op, value)]
        hits.sort(key=lambda h: h["created_at_i"], reverse=True)
        per_page = int(params.get("hitsPerPage", "20"))
        if not 0 <= per_page <= 1000:
            return algolia_error(400, "hitsPerPage must be between 0 and 1000")
        page = int(params.get("page", "0"))
        reachable = hits[:PAGINATION_LIMIT]
        pages = -(-len(reachable) // per_page) if per_page else 0
        body = {
            "exhaustive": {"nbHits": True, "typo": True}, "exhaustiveNbHits": True,
            "hits": copy.deepcopy(reachable[page * per_page:(page + 1) * per_page]),
            "hitsPerPage": per_page, "nbHits": len(hits), "nbPages": pages, "page": page,
            "params": request.query, "processingTimeMS": 1, "query": query,
        }
        return Response(json.dumps(body, ensure_ascii=False), content_type=JSON)


def _compare(value: object, op: str, bound: int) -> bool:
    if not isinstance(value, int):
        return False
    return {">": value > bound, ">=": value >= bound, "<": value < bound,
            "<=": value <= bound, "=": value == bound}[op]


@pytest.fixture
def fake_hackernews() -> Iterator[FakeHackerNews]:
    """A running :class:`FakeHackerNews` with no hits; stopped after the test."""
    with FakeHackerNews() as server:
        yield server
