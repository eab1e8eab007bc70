"""A real HTTP server on 127.0.0.1 that serves feeds (or anything else) for tests.

Usage::

    from tests.fakes.feedserver import feed_server  # noqa: F401  (the pytest fixture)

    def test_something(feed_server):
        feed_server.add_route("/feed.xml", sample_feed("rss20_news.xml"),
                              content_type="application/rss+xml; charset=utf-8")
        url = feed_server.url("/feed.xml")
        ...
        assert feed_server.hits("/feed.xml") == 1
        assert feed_server.requests_for("/feed.xml")[0].headers["user-agent"].startswith("Uproar")

A route is a canned response (status, headers, body) with optional extras:

* ``etag=`` / ``last_modified=``: answer 304 to a request whose ``If-None-Match`` or
  ``If-Modified-Since`` matches, like a well-behaved feed host;
* ``delay=``: wait that many seconds before answering (server side; released at shutdown);
* ``send_length=False``: no Content-Length, the body ends when the connection closes.

``add_handler(path, fn)`` serves ``fn(request) -> Response`` for dynamic behaviour, and
``add_redirect`` a redirect. Routes can be replaced while the server runs; every request is
recorded (method, path, query, headers, body) in arrival order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from tests.paths import DATA

FEEDS_DIR = DATA / "feeds"

RSS = "application/rss+xml; charset=utf-8"
ATOM = "application/atom+xml; charset=utf-8"


def sample_feed(name: str) -> bytes:
    """The bytes of a sample file in ``tests/data/feeds/``."""
    return (FEEDS_DIR / name).read_bytes()


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


@dataclass(slots=True)
class Response:
    """What a route answers. ``body`` as str is sent UTF-8 encoded."""

    body: bytes | str = b""
    status: int = 200
    content_type: str | None = RSS
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    etag: str | None = None
    last_modified: str | None = None
    send_length: bool = True


Handler = Callable[[RecordedRequest], Response]


class FeedServer:
    """A threaded HTTP server on 127.0.0.1 and an ephemeral port. Use as a context manager or
    call :meth:`start` / :meth:`stop`."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host  # another loopback address (127.0.0.2) serves as another host
        self._routes: dict[str, Handler] = {}
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer((host, 0), _make_handler(self))
        self._httpd.daemon_threads = True
        # serve_forever polls for shutdown every poll_interval; 0.5 s would slow every test
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,),
                                        name="feed-server", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FeedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a ``delay``
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- configuration ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def add_route(
        self,
        path: str,
        body: bytes | str = b"",
        *,
        content_type: str | None = RSS,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
        etag: str | None = None,
        last_modified: str | None = None,
        send_length: bool = True,
    ) -> str:
        """Serve a canned response at ``path`` (any method, query ignored); returns its URL."""
        response = Response(body=body, status=status, content_type=content_type,
                            headers=dict(headers or {}), delay=delay, etag=etag,
                            last_modified=last_modified, send_length=send_length)
        return self.add_handler(path, lambda _request: response)

    def add_handler(self, path: str, handler: Handler) -> str:
        """Serve ``handler(request)`` at ``path``; returns its URL."""
        with self._lock:
            self._routes[_path_only(path)] = handler
        return self.url(path)

    def add_redirect(self, path: str, location: str, *, status: int = 302) -> str:
        return self.add_route(path, b"", status=status, content_type=None,
                              headers={"Location": location})

    def remove_route(self, path: str) -> None:
        with self._lock:
            self._routes.pop(_path_only(path), None)

    # -- inspection ------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_for(self, path: str) -> list[RecordedRequest]:
        wanted = _path_only(path)
        return [r for r in self.requests if r.path == wanted]

    def hits(self, path: str) -> int:
        return len(self.requests_for(path))

    # -- serving (called from handler threads) ---------------------------------------------

    def _record(self, request: RecordedRequest) -> Handler | None:
        with self._lock:
            self._requests.append(request)
            return self._routes.get(request.path)

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)


def _path_only(path: str) -> str:
    path = path if path.startswith("/") else "/" + path
    return urlsplit(path).path


def _not_modified(request: RecordedRequest, response: Response) -> bool:
    if response.status != 200:
        return False
    if_none_match = request.headers.get("if-none-match")
    if response.etag is not None and if_none_match is not None:
        tags = [t.strip() for t in if_none_match.split(",")]
        return "*" in tags or response.etag in tags
    since = request.headers.get("if-modified-since")
    if response.last_modified is not None and since is not None:
        try:
            return parsedate_to_datetime(since) >= parsedate_to_datetime(response.last_modified)
        except (TypeError, ValueError):
            return False
    return False


def _make_handler(server: FeedServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        server_version = "UproarFeedServer/1.0"

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = RecordedRequest(
                method=self.command, path=parts.path, query=parts.query,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"")
            handler = server._record(request)
            if handler is None:
                self._send(Response(b"no such route\n", status=404, content_type="text/plain"))
                return
            response = handler(request)
            if response.delay:
                server._sleep(response.delay)
            if _not_modified(request, response):
                response = Response(b"", status=304, content_type=None,
                                    headers=response.headers, etag=response.etag,
                                    last_modified=response.last_modified)
            self._send(response)

        def _send(self, response: Response) -> None:
            body = response.body.encode("utf-8") if isinstance(response.body, str) \
                else response.body
            if response.status == 304 or self.command == "HEAD":
                body = b""
            try:
                self.send_response(response.status)
                if response.content_type:
                    self.send_header("Content-Type", response.content_type)
                if response.etag:
                    self.send_header("ETag", response.etag)
                if response.last_modified:
                    self.send_header("Last-Modified", response.last_modified)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                if response.send_length:
                    self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout, size cap): that is what some tests do

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _serve

        def log_message(self, fmt: str, *args: object) -> None:
            pass  # keep pytest output clean; requests are recorded instead

    return _Handler


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A running :class:`FeedServer` with no routes; stopped after the test."""
    with FeedServer() as server:
        yield server
