"""A fake YouTube Data API v3 on 127.0.0.1: search.list, videos.list, commentThreads.list.

Usage::

    from tests.fakes.youtube import fake_youtube  # noqa: F401  (the pytest fixture)

    def test_something(fake_youtube):
        fake_youtube.load_sample()
        connector = YouTubeConnector(fake_youtube.api_key, api_url=fake_youtube.api_url)
        ...
        assert fake_youtube.units_used == 101

It answers like ``www.googleapis.com/youtube/v3``:

* every call needs ``key`` (a wrong one is ``400 API_KEY_INVALID``, none ``403 forbidden``),
  and costs quota (search 100, the others 1), counted in :attr:`units_used`; past
  :attr:`quota_limit` every call is ``403 quotaExceeded``;
* ``GET search`` — ``part=snippet``, ``q`` (which videos match is up to ``matcher``, default
  all), ``type=video``, ``order=date``, ``publishedAfter`` (inclusive), ``maxResults`` (0-50),
  ``pageToken``; search results carry HTML-escaped titles and descriptions, as YouTube's do;
* ``GET videos`` — ``part=statistics,snippet``, ``id`` (comma-separated, at most 50); unknown
  ids are left out;
* ``GET commentThreads`` — ``videoId`` or ``allThreadsRelatedToChannelId``, ``order=time``,
  ``maxResults`` (1-100), ``pageToken``, ``textFormat``; ``404 videoNotFound`` for an unknown
  video, ``403 commentsDisabled`` for one in :attr:`comments_disabled`.

The resources are those of ``tests/data/api/youtube/`` (and :meth:`add_video` /
:meth:`add_comment` look-alikes); the error bodies are in ``errors.json``.
Error injection: :meth:`inject`; :func:`google_error`, :func:`html_page`.
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

DATA_DIR = DATA / "api" / "youtube"
JSON = "application/json; charset=UTF-8"
BASE = "/youtube/v3/"
COSTS = {"search": 100, "videos": 1, "commentThreads": 1}


def sample(name: str) -> dict[str, Any]:
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


def google_error(name: str) -> Response:
    """One of the error answers in ``errors.json`` (keyInvalid, forbidden, quotaExceeded,
    commentsDisabled, videoNotFound)."""
    body = sample("errors.json")[name]
    return Response(json.dumps(body), status=body["error"]["code"], content_type=JSON,
                    headers={"Vary": "Origin, X-Origin, Referer"})


def html_page(status: int = 200) -> Response:
    return Response("<!DOCTYPE html><html lang=en><title>Error 502 (Server Error)!!1</title>"
                    "<p><b>502.</b> <ins>That's an error.</ins></p></html>", status=status,
                    content_type="text/html; charset=UTF-8")


def _escape(text: str) -> str:
    """How search.list escapes snippet text."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#39;"))


@dataclass(slots=True)
class _Injected:
    countdown: int
    response: Response


class FakeYouTube:
    """The fake API; use as a context manager or through the :func:`fake_youtube` fixture."""

    api_key = "AIzaSyFAKE-fake-fake-fake-fake-fake12"

    def __init__(self) -> None:
        self.http = FeedServer()
        self.videos: dict[str, dict[str, Any]] = {}
        self.threads: dict[str, dict[str, Any]] = {}
        self.comments_disabled: set[str] = set()
        self.matcher: Callable[[str, Mapping[str, Any]], bool] = lambda _q, _video: True
        self.units_used = 0
        self.quota_limit: int | None = None
        self._injected: list[_Injected] = []
        self.http.add_handler(BASE + "search", self._search)
        self.http.add_handler(BASE + "videos", self._videos)
        self.http.add_handler(BASE + "commentThreads", self._comment_threads)

    def __enter__(self) -> FakeYouTube:
        self.http.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.stop()

    @property
    def api_url(self) -> str:
        return self.http.base_url + BASE

    # -- the store -----------------------------------------------------------------------------

    def load_sample(self) -> None:
        for video in sample("videos.json")["items"]:
            self.videos[video["id"]] = video
        for thread in sample("commentThreads.json")["items"]:
            self.threads[thread["id"]] = thread

    def add_video(self, video_id: str, title: str, published_at: str) -> dict[str, Any]:
        video = copy.deepcopy(sample("videos.json")["items"][1])
        video["id"] = video_id
        video["snippet"].update(title=title, publishedAt=published_at, description="")
        self.videos[video_id] = video
        return video

    def add_comment(self, comment_id: str, video_id: str, text: str,
                    published_at: str) -> dict[str, Any]:
        thread = copy.deepcopy(sample("commentThreads.json")["items"][0])
        thread["id"] = comment_id
        thread["snippet"]["videoId"] = video_id
        top = thread["snippet"]["topLevelComment"]
        top["id"] = comment_id
        top["snippet"].update(videoId=video_id, textDisplay=text, textOriginal=text,
                              publishedAt=published_at, updatedAt=published_at)
        self.threads[comment_id] = thread
        return thread

    # -- errors and inspection -----------------------------------------------------------------

    def inject(self, response: Response, *, at: int = 1) -> None:
        """Answer the ``at``-th API call from now (1 = the next) with ``response``."""
        self._injected.append(_Injected(at, response))

    def calls(self) -> list[tuple[str, dict[str, str]]]:
        """(resource, query parameters without ``key``) of every call, in order."""
        out = []
        for request in self.http.requests:
            params = {k: v[-1] for k, v in parse_qs(request.query).items() if k != "key"}
            out.append((request.path.removeprefix(BASE), params))
        return out

    # -- serving -------------------------------------------------------------------------------

    def _next_injected(self) -> Response | None:
        chosen = None
        for item in list(self._injected):
            item.countdown -= 1
            if item.countdown == 0:
                self._injected.remove(item)
                chosen = chosen or item.response
        return chosen

    def _admit(self, request: RecordedRequest) -> tuple[dict[str, str], Response | None]:
        params = {k: v[-1] for k, v in parse_qs(request.query).items()}
        if "key" not in params:
            body = sample("errors.json")["forbidden"]
            body["error"].update(code=403, message="The request is missing a valid API key.")
            body["error"]["errors"] = [{"message": "The request is missing a valid API key.",
                                        "domain": "global", "reason": "forbidden"}]
            return params, Response(json.dumps(body), status=403, content_type=JSON)
        if params["key"] != self.api_key:
            return params, google_error("keyInvalid")
        injected = self._next_injected()
        if injected is not None:
            return params, injected
        cost = COSTS[request.path.removeprefix(BASE)]
        if self.quota_limit is not None and self.units_used + cost > self.quota_limit:
            return params, google_error("quotaExceeded")
        self.units_used += cost
        return params, None

    def _search(self, request: RecordedRequest) -> Response:
        params, refusal = self._admit(request)
        if refusal is not None:
            return refusal
        q = params.get("q", "")
        after = params.get("publishedAfter", "")
        found = [v for v in self.videos.values()
                 if v["snippet"]["publishedAt"] >= after and self.matcher(q, v)]
        found.sort(key=lambda v: v["snippet"]["publishedAt"], reverse=True)
        per_page = int(params.get("maxResults", "5"))
        start = int(params.get("pageToken") or 0)
        page = found[start:start + per_page]
        items = []
        for video in page:
            snippet = video["snippet"]
            items.append({
                "kind": "youtube#searchResult", "etag": "etag-" + video["id"],
                "id": {"kind": "youtube#video", "videoId": video["id"]},
                "snippet": {"publishedAt": snippet["publishedAt"],
                            "channelId": snippet["channelId"],
                            "title": _escape(snippet["title"]),
                            "description": _escape(snippet["description"][:160]),
                            "thumbnails": snippet.get("thumbnails", {}),
                            "channelTitle": _escape(snippet["channelTitle"]),
                            "liveBroadcastContent": "none",
                            "publishTime": snippet["publishedAt"]}})
        body: dict[str, Any] = {"kind": "youtube#searchListResponse", "etag": "e",
                                "regionCode": "US",
                                "pageInfo": {"totalResults": len(found),
                                             "resultsPerPage": per_page},
                                "items": items}
        if start + per_page < len(found):
            body["nextPageToken"] = str(start + per_page)
        return Response(json.dumps(body, ensure_ascii=False), content_type=JSON)

    def _videos(self, request: RecordedRequest) -> Response:
        params, refusal = self._admit(request)
        if refusal is not None:
            return refusal
        ids = [i for i in params.get("id", "").split(",") if i]
        if len(ids) > 50:
            return Response(json.dumps({"error": {"code": 400, "message": "too many ids",
                                                  "errors": [{"reason": "badRequest"}]}}),
                            status=400, content_type=JSON)
        items = [copy.deepcopy(self.videos[i]) for i in ids if i in self.videos]
        body = {"kind": "youtube#videoListResponse", "etag": "e", "items": items,
                "pageInfo": {"totalResults": len(items), "resultsPerPage": len(items)}}
        return Response(json.dumps(body, ensure_ascii=False), content_type=JSON)

    def _comment_threads(self, request: RecordedRequest) -> Response:
        params, refusal = self._admit(request)
        if refusal is not None:
            return refusal
        if "videoId" in params:
            video_id = params["videoId"]
            if video_id not in self.videos:
                return google_error("videoNotFound")
            if video_id in self.comments_disabled:
                return google_error("commentsDisabled")
            threads = [t for t in self.threads.values() if t["snippet"]["videoId"] == video_id]
        else:
            channel = params.get("allThreadsRelatedToChannelId")
            threads = [t for t in self.threads.values() if t["snippet"]["channelId"] == channel]
        threads.sort(key=lambda t: t["snippet"]["topLevelComment"]["snippet"]["publishedAt"],
                     reverse=True)
        per_page = int(params.get("maxResults", "20"))
        start = int(params.get("pageToken") or 0)
        page = copy.deepcopy(threads[start:start + per_page])
        body: dict[str, Any] = {"kind": "youtube#commentThreadListResponse", "etag": "e",
                                "pageInfo": {"totalResults": len(page),
                                             "resultsPerPage": per_page},
                                "items": page}
        if start + per_page < len(threads):
            body["nextPageToken"] = str(start + per_page)
        return Response(json.dumps(body, ensure_ascii=False), content_type=JSON)


@pytest.fixture
def fake_youtube() -> Iterator[FakeYouTube]:
    """A running :class:`FakeYouTube` with no videos; stopped after the test."""
    with FakeYouTube() as server:
        yield server
