"""RSS and Atom feeds: blogs, news sites and news-search feeds.

Every poll reads every configured feed once (queries are ignored: feeds are either whole blogs
or news searches already filtered by the brand, and the pipeline matches brands in the text).

Per feed the connector

* sends a conditional GET (``If-None-Match`` / ``If-Modified-Since`` from the cursor); a 304
  yields nothing and keeps the validators;
* follows up to :data:`_MAX_REDIRECTS` redirects, streams the body and stops reading past
  ``max_bytes``;
* hands the *bytes* to feedparser (wrapped in a file object: given a bare ``bytes`` value
  feedparser would try to open it as a local file name, given a URL it would fetch it itself);
* maps each entry to a :class:`Mention` with plain text (tags stripped, entities decoded).

Identity (``source_id``): the entry's id (RSS ``guid`` / Atom ``id``) when it looks global (has
a URI scheme such as ``https:``, ``urn:`` or ``tag:``), else ``<feed url>#<id>`` so that two
blogs numbering their posts 1, 2, 3 do not collide; without an id, the entry's link (so the same
article found through two news-search feeds is one mention); without either,
``sha256:<hex>`` of the feed URL, title and summary.

Problems are reported once: a feed that starts failing (HTTP error, timeout, refused
connection, not a feed, too large) gives one problem line naming the feed and the reason, then
stays quiet while it keeps failing; when it works again, one "recovered" line. A malformed feed
whose entries could partly be read gives those entries and one "malformed" line, repeated only
after it has parsed clean again. A 429 (or a 503 with ``Retry-After``) makes the connector skip
that feed until the time the server asked for. One failing feed never stops the others.

Politeness at scale (hundreds of feeds, many on the same news-search host): feeds are fetched
``concurrency`` at a time, but at most ``per_host`` at once from one host name, and each of a
host's ``per_host`` lanes waits ``host_interval`` between its requests — so a host never gets
more than ``per_host`` requests in any ``host_interval``. A 429 (or 503 with ``Retry-After``)
from one feed holds back the whole host: its other feeds are not asked this poll, nor in later
polls until the time the server named (reported once per host). Waiting uses the injected
``sleep``, so tests run on a simulated clock.

Whole-poll failure: when *every* configured feed failed this poll with a transient error
(timeout, connection error, 5xx), :meth:`RSSConnector.fetch` raises :class:`TransientError`
naming them, so the scheduler counts consecutive failures of the source and backs off (this is
almost always our own network being down). Permanent errors (404, not a feed, too large),
rate limits and skipped feeds never make the whole poll fail; they are returned as problems.

Cursor (JSON-serialisable; feeds no longer configured are dropped)::

    {"feeds": {"<feed url>": {"etag": str | None, "last_modified": str | None, "bozo": bool,
                              "error": str | None, "failing_since": iso | None,
                              "retry_after_until": iso | None}},
     "hosts": {"<host name>": {"retry_after_until": iso}}}   # only hosts holding us back
"""

from __future__ import annotations

import calendar
import hashlib
import io
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any, ClassVar
from urllib.parse import urlsplit

import feedparser
import httpx

from connectors.base import (
    MAX_TEXT,
    Author,
    Connector,
    FetchResult,
    Mention,
    TransientError,
    format_time,
    parse_time,
    utc_now,
)

# Enough for http->https plus a feed proxy or two; more is a loop or a misconfigured site.
_MAX_REDIRECTS = 5
# A server dripping bytes resets httpx's per-read timeout forever; cap the whole download too.
_TOTAL_TIME_FACTOR = 3
# A 429 without Retry-After: wait about one default poll interval before asking again.
_DEFAULT_RETRY_AFTER = timedelta(minutes=5)
# A hostile or broken Retry-After must not silence a feed for weeks.
_MAX_RETRY_AFTER = timedelta(days=1)
# Entries dated further ahead than this are wrong (bad time zone, typo); use the poll time.
_FUTURE_SLACK = timedelta(days=1)
# feedparser flags these as "bozo" although the feed parsed fine: a charset header that
# disagrees with the XML declaration, or a feed served as text/plain. Not worth an ops line.
_BENIGN_BOZO = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)
# How many failing feeds a TransientError message names before "and N more".
_MAX_NAMED_FEEDS = 5

_ACCEPT = ("application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
           "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1")
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S")



@dataclass(frozen=True, slots=True)
class _FeedState:
    """What the cursor remembers about one feed."""

    etag: str | None = None
    last_modified: str | None = None
    bozo: bool = False
    error: str | None = None
    failing_since: str | None = None
    retry_after_until: str | None = None

    @classmethod
    def from_json(cls, data: object) -> _FeedState:
        """Read a saved state, ignoring anything malformed (an old or hand-edited cursor)."""
        if not isinstance(data, Mapping):
            return cls()

        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) and value else None

        return cls(etag=text("etag"), last_modified=text("last_modified"),
                   bozo=data.get("bozo") is True, error=text("error"),
                   failing_since=text("failing_since"),
                   retry_after_until=text("retry_after_until"))

    def retry_after(self) -> datetime | None:
        if self.retry_after_until is None:
            return None
        try:
            return parse_time(self.retry_after_until)
        except ValueError:
            return None


class _FeedFailure(Exception):
    """Why one feed could not be read this poll (internal: becomes a problem line)."""

    def __init__(self, reason: str, *, transient: bool,
                 retry_after: timedelta | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class _Download:
    body: bytes
    headers: dict[str, str]
    final_url: str


@dataclass(slots=True)
class _FeedResult:
    mentions: list[Mention]
    state: _FeedState
    problems: list[str]
    transient_failure: str | None = None  # the reason, when the feed failed transiently


class RSSConnector(Connector):
    """Polls RSS 0.9x/1.0/2.0 and Atom feeds over HTTP(S)."""

    name: ClassVar[str] = "rss"

    def __init__(
        self,
        feeds: Sequence[str],
        *,
        timeout: float = 20.0,
        max_bytes: int = 5_000_000,
        user_agent: str = "Uproar/0.1 (+https://github.com/uproar)",
        client: httpx.Client | None = None,
        clock: Callable[[], datetime] = utc_now,
        concurrency: int = 8,
        per_host: int = 2,
        host_interval: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if concurrency < 1 or per_host < 1:
            raise ValueError("concurrency and per_host must be at least 1")
        if host_interval < 0:
            raise ValueError("host_interval must not be negative")
        self._concurrency = concurrency
        self._per_host = per_host
        self._host_interval = host_interval
        self._sleep = sleep
        self.feeds: tuple[str, ...] = tuple(dict.fromkeys(f.strip() for f in feeds if f.strip()))
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._headers = {"User-Agent": user_agent, "Accept": _ACCEPT}
        self._clock = clock
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(
            timeout=timeout, follow_redirects=True, max_redirects=_MAX_REDIRECTS)

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    # -- the poll ----------------------------------------------------------------------------

    def fetch(self, queries: Sequence[str], cursor: Mapping[str, Any] | None) -> FetchResult:
        """Read every feed once; see the module docstring for problems and errors."""
        now = self._now()
        saved = cursor.get("feeds") if isinstance(cursor, Mapping) else None
        saved = saved if isinstance(saved, Mapping) else {}
        poll = _HostPoll(now, _held_hosts(cursor, now))
        by_host: dict[str, list[str]] = {}
        for url in self.feeds:
            by_host.setdefault(host_of(url), []).append(url)
        queues = {host: deque(urls) for host, urls in by_host.items()}
        lanes = [(host, queue) for host, queue in queues.items()
                 for _ in range(min(self._per_host, len(queue)))]
        if lanes:
            workers = min(self._concurrency, len(lanes))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rss") as pool:
                for future in [pool.submit(self._run_lane, host, queue, saved, poll)
                               for host, queue in lanes]:
                    future.result()
        states: dict[str, dict[str, Any]] = {}
        mentions: dict[str, Mention] = {}
        problems: list[str] = []
        transient: dict[str, str] = {}
        for url in self.feeds:
            result = poll.results.get(url)
            if result is None:  # its host asked us to wait: keep the feed as it was
                result = _FeedResult([], _FeedState.from_json(saved.get(url)), [])
            states[url] = asdict(result.state)
            problems.extend(result.problems)
            if result.transient_failure is not None:
                transient[url] = result.transient_failure
            for mention in result.mentions:
                mentions.setdefault(mention.source_id, mention)
        problems.extend(poll.held_back(by_host))
        if self.feeds and len(transient) == len(self.feeds):
            raise TransientError(
                self.name, _summarise_failures(transient),
                details=[f"feed {url}: {reason}" for url, reason in transient.items()],
            )
        hosts = {host: {"retry_after_until": format_time(until)}
                 for host, until in sorted(poll.held.items()) if host in by_host}
        cursor_out: dict[str, Any] = {"feeds": states}
        if hosts:
            cursor_out["hosts"] = hosts
        return FetchResult(mentions=list(mentions.values()), cursor=cursor_out,
                           problems=problems)

    def _run_lane(self, host: str, queue: deque[str], saved: Mapping[str, Any],
                  poll: _HostPoll) -> None:
        """One of a host's lanes: its feeds one after another, ``host_interval`` apart."""
        first = True
        while True:
            try:
                url = queue.popleft()  # deque pops are atomic: lanes share the queue
            except IndexError:
                return
            if poll.is_held(host):
                continue
            if not first and self._host_interval:
                self._sleep(self._host_interval)
            first = False
            state = _FeedState.from_json(saved.get(url))
            result = self._poll_feed(url, state, poll.now)
            poll.results[url] = result
            until = result.state.retry_after()
            if until is not None and result.state.retry_after_until != state.retry_after_until:
                poll.hold(host, until, url)

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the clock must return timezone-aware datetimes")
        return now.astimezone(UTC)

    def _poll_feed(self, url: str, state: _FeedState, now: datetime) -> _FeedResult:
        until = state.retry_after()
        if until is not None and now < until:
            return _FeedResult([], state, [])  # the server asked us to wait; already reported
        try:
            download = self._download(url, state, now)
            read = _read_entries(download, url, now) if download is not None else None
        except _FeedFailure as failure:
            return self._failed(url, state, failure, now)
        problems = []
        if state.error is not None:
            problems.append(f"feed {url} recovered (failing since {state.failing_since}: "
                            f"{state.error})")
        state = replace(state, error=None, failing_since=None, retry_after_until=None)
        if download is None or read is None:  # 304 Not Modified: keep validators and mark
            return _FeedResult([], state, problems)
        mentions, malformed = read
        state = replace(state, etag=download.headers.get("etag") or None,
                        last_modified=download.headers.get("last-modified") or None)
        if malformed is not None and not state.bozo:
            problems.append(f"feed {url}: malformed feed ({malformed}); "
                            f"using {len(mentions)} entries that could be read")
        return _FeedResult(mentions, replace(state, bozo=malformed is not None), problems)

    def _failed(self, url: str, state: _FeedState, failure: _FeedFailure,
                now: datetime) -> _FeedResult:
        problems = []
        retry_until = None
        if failure.retry_after is not None:
            retry_until = format_time(now + failure.retry_after)
        if state.error is None:
            line = f"feed {url}: {failure.reason}"
            if retry_until is not None:
                line += f"; not polling it again before {retry_until}"
            problems.append(line)
        new_state = replace(state, error=failure.reason,
                            failing_since=state.failing_since or format_time(now),
                            retry_after_until=retry_until)
        return _FeedResult([], new_state, problems,
                           transient_failure=failure.reason if failure.transient else None)

    # -- HTTP --------------------------------------------------------------------------------

    def _download(self, url: str, state: _FeedState, now: datetime) -> _Download | None:
        """GET the feed; ``None`` on 304. Raises :class:`_FeedFailure` with a readable reason."""
        headers = dict(self._headers)
        if state.etag:
            headers["If-None-Match"] = state.etag
        if state.last_modified:
            headers["If-Modified-Since"] = state.last_modified
        deadline = time.monotonic() + self._timeout * _TOTAL_TIME_FACTOR
        try:
            with self._client.stream("GET", url, headers=headers, follow_redirects=True,
                                     timeout=self._timeout) as response:
                if response.status_code == 304:
                    return None
                _check_status(response, now)
                body = self._read_capped(response, deadline)
                return _Download(body=body, headers=dict(response.headers.items()),
                                 final_url=str(response.url))
        except httpx.TimeoutException as exc:
            raise _FeedFailure(f"timed out after {self._timeout:g}s ({type(exc).__name__})",
                               transient=True) from exc
        except httpx.TooManyRedirects as exc:
            raise _FeedFailure(f"more than {_MAX_REDIRECTS} redirects",
                               transient=False) from exc
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise _FeedFailure(f"not a fetchable URL ({exc})", transient=False) from exc
        except httpx.TransportError as exc:
            raise _FeedFailure(f"connection failed ({type(exc).__name__}: {exc})",
                               transient=True) from exc
        except httpx.HTTPError as exc:  # decoding errors and the like
            raise _FeedFailure(f"HTTP error ({type(exc).__name__}: {exc})",
                               transient=True) from exc

    def _read_capped(self, response: httpx.Response, deadline: float) -> bytes:
        limit = self._max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _FeedFailure(f"response of {declared} bytes is over the {limit}-byte limit",
                               transient=False)
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise _FeedFailure(f"response is over the {limit}-byte limit; stopped reading",
                                   transient=False)
            if time.monotonic() > deadline:
                raise _FeedFailure(f"download took longer than "
                                   f"{self._timeout * _TOTAL_TIME_FACTOR:g}s", transient=True)
            chunks.append(chunk)
        return b"".join(chunks)


def host_of(url: str) -> str:
    """The host name politeness is counted by (``127.0.0.1`` and ``localhost`` are two)."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _held_hosts(cursor: Mapping[str, Any] | None, now: datetime) -> dict[str, datetime]:
    """Hosts that asked (in an earlier poll) not to be polled before a time still to come."""
    saved = cursor.get("hosts") if isinstance(cursor, Mapping) else None
    held = {}
    for host, data in (saved.items() if isinstance(saved, Mapping) else ()):
        until = _FeedState(retry_after_until=data.get("retry_after_until")
                           if isinstance(data, Mapping) else None).retry_after()
        if until is not None and until > now:
            held[str(host)] = until
    return held


class _HostPoll:
    """What the lanes of one poll share: results, and the hosts that asked us to wait."""

    def __init__(self, now: datetime, held: dict[str, datetime]) -> None:
        self.now = now
        self.held = held
        self.results: dict[str, _FeedResult] = {}
        self.asked_by: dict[str, str] = {}  # host -> the feed that asked, this poll
        self._lock = threading.Lock()

    def is_held(self, host: str) -> bool:
        with self._lock:
            until = self.held.get(host)
            return until is not None and self.now < until

    def hold(self, host: str, until: datetime, url: str) -> None:
        """``url`` of ``host`` answered 429 / 503 with Retry-After: hold the host back."""
        with self._lock:
            if host not in self.held or self.held[host] < until:
                self.held[host] = until
                self.asked_by[host] = url

    def held_back(self, by_host: Mapping[str, Sequence[str]]) -> list[str]:
        """One line per host that asked us to wait during this poll and had feeds skipped."""
        lines = []
        for host, url in self.asked_by.items():
            skipped = [u for u in by_host[host] if u not in self.results]
            if skipped:
                lines.append(f"host {host} asked us to slow down ({url} was rate limited): "
                             f"{len(skipped)} more of its feeds not polled before "
                             f"{format_time(self.held[host])}")
        return lines


def _check_status(response: httpx.Response, now: datetime) -> None:
    code = response.status_code
    status = f"HTTP {code} {response.reason_phrase}".strip()
    retry_after = response.headers.get("retry-after")
    if code == 429 or (code == 503 and retry_after):
        delay = _parse_retry_after(retry_after, now) if retry_after else None
        raise _FeedFailure(f"rate limited ({status})", transient=False,
                           retry_after=delay if delay is not None else _DEFAULT_RETRY_AFTER)
    if code >= 500:
        raise _FeedFailure(status, transient=True)
    if code >= 300:  # 3xx here is a redirect without a usable Location
        raise _FeedFailure(status, transient=False)


def _parse_retry_after(value: str, now: datetime) -> timedelta | None:
    """Seconds or an HTTP date; clamped to [0, _MAX_RETRY_AFTER]. ``None`` if unreadable."""
    value = value.strip()
    if value.isdigit():
        delay = timedelta(seconds=int(value))
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        delay = when - now  # a few seconds of clock skew against the server do not matter
    return min(max(delay, timedelta(0)), _MAX_RETRY_AFTER)


# -- parsing ---------------------------------------------------------------------------------


def _read_entries(download: _Download, feed_url: str,
                  now: datetime) -> tuple[list[Mention], str | None]:
    """The feed's mentions and why it is malformed (``None`` when it parsed clean)."""
    try:
        parsed = _parse(download)
        mentions = [m for m in (_to_mention(e, feed_url, parsed, now) for e in parsed.entries)
                    if m.text]  # an entry with no words cannot name a brand (broken XML)
        return mentions, _malformed_reason(parsed)
    except _FeedFailure:
        raise
    except Exception as exc:  # a bug met on one odd feed must not stop the others
        raise _FeedFailure(f"could not be read ({type(exc).__name__}: {exc})",
                           transient=False) from exc


def _parse(download: _Download) -> feedparser.FeedParserDict:
    headers = {
        "content-type": download.headers.get("content-type", ""),
        "content-location": download.final_url,  # base for relative links
    }
    if "content-language" in download.headers:
        headers["content-language"] = download.headers["content-language"]
    # A file object, never bytes or str: feedparser would open a "file name" or fetch a URL.
    parsed = feedparser.parse(io.BytesIO(download.body), response_headers=headers,
                              resolve_relative_uris=True, sanitize_html=True)
    if not parsed.get("version") and not parsed.entries:
        content_type = download.headers.get("content-type", "no content type").split(";")[0]
        raise _FeedFailure(f"not an RSS or Atom feed ({content_type or 'no content type'})",
                           transient=False)
    return parsed


def _malformed_reason(parsed: feedparser.FeedParserDict) -> str | None:
    if not parsed.get("bozo"):
        return None
    exc = parsed.get("bozo_exception")
    if isinstance(exc, _BENIGN_BOZO):
        return None
    if exc is None:
        return "unknown error"
    message = exc.getMessage() if hasattr(exc, "getMessage") else str(exc)
    line = exc.getLineNumber() if hasattr(exc, "getLineNumber") else None
    return f"{message} at line {line}" if line else str(message)


def _to_mention(entry: Mapping[str, Any], feed_url: str, parsed: feedparser.FeedParserDict,
                now: datetime) -> Mention:
    feed = parsed.feed
    is_rss = str(parsed.get("version", "")).startswith("rss")
    title = _field_text(entry.get("title_detail"), entry.get("title"), is_rss)
    body = _body_text(entry, is_rss)
    text = "\n\n".join(part for part in (title, body) if part)
    if len(text) > MAX_TEXT:
        text = text[: MAX_TEXT - 1].rstrip() + "…"
    link = str(entry.get("link") or "")
    entry_id = str(entry.get("id") or "").strip() or None
    feed_title = _field_text(feed.get("title_detail"), feed.get("title"), is_rss)
    author_name = str((entry.get("author_detail") or {}).get("name") or entry.get("author") or "")
    host = urlsplit(str(feed.get("link") or "")).hostname or urlsplit(feed_url).hostname or ""
    return Mention(
        source="rss",
        source_id=_identity(entry_id, link, feed_url, title, body),
        url=link,
        text=text,
        created_at=_entry_time(entry, now),
        author=Author(handle=author_name or host, name=author_name or feed_title),
        lang=_language(entry, feed),
        raw={"feed": feed_url, "feed_title": feed_title, "entry_id": entry_id},
    )


def _identity(entry_id: str | None, link: str, feed_url: str, title: str, body: str) -> str:
    if entry_id:
        return entry_id if _URI_SCHEME.match(entry_id) else f"{feed_url}#{entry_id}"
    if link:
        return link
    digest = hashlib.sha256("\x00".join((feed_url, title, body)).encode("utf-8"))
    return f"sha256:{digest.hexdigest()}"


def _entry_time(entry: Mapping[str, Any], now: datetime) -> datetime:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(key)
        if value is None:
            continue
        try:
            when = datetime.fromtimestamp(calendar.timegm(value), UTC)  # struct_time in UTC
        except (TypeError, ValueError, OverflowError, OSError):
            continue
        return now if when > now + _FUTURE_SLACK else when
    return now


def _language(entry: Mapping[str, Any], feed: Mapping[str, Any]) -> str | None:
    """Primary language subtag (``en-US`` -> ``en``) of the entry, else of the feed."""
    candidates: Iterable[Any] = (
        *(c.get("language") for c in entry.get("content") or () if isinstance(c, Mapping)),
        (entry.get("summary_detail") or {}).get("language"),
        (entry.get("title_detail") or {}).get("language"),
        feed.get("language"),
    )
    for value in candidates:
        if isinstance(value, str) and value.strip():
            return value.strip().replace("_", "-").split("-")[0].lower() or None
    return None


def _body_text(entry: Mapping[str, Any], is_rss: bool) -> str:
    """Full content when the feed has it (content:encoded, Atom content), else the summary."""
    for content in entry.get("content") or ():
        if isinstance(content, Mapping) and content.get("value"):
            text = _field_text(content, content.get("value"), is_rss)
            if text:
                return text
    return _field_text(entry.get("summary_detail"), entry.get("summary"), is_rss)


def _field_text(detail: object, value: object, is_rss: bool) -> str:
    """Plain text of a feedparser field, whatever the feed declares.

    HTML (and, in RSS, every field: RSS titles carry entity-escaped HTML in practice) loses its
    tags and has its entities decoded once. A field declared plain (Atom ``type="text"``, or
    with no type at all) is kept as it is, unless it holds markup after all; markup that was
    escaped twice (``&amp;lt;b&amp;gt;``) is removed too (:func:`without_markup`).
    """
    if not value:
        return ""
    kind = detail.get("type", "") if isinstance(detail, Mapping) else ""
    if is_rss or "html" in kind:
        return without_markup(html_to_text(str(value)))
    return without_markup(_tidy(str(value)))


# Element names of HTML, SVG and MathML: text such as "a <b" or "x<y and y>z" is not markup
# unless it names one of these. Checked case-insensitively.
_ELEMENT_NAMES = (
    "a abbr acronym address animate animatemotion animatetransform applet area article aside "
    "audio b base basefont bdi bdo bgsound big blink blockquote body br button canvas caption "
    "center circle cite clippath code col colgroup command data datalist dd defs del desc "
    "details dfn dialog dir div dl dt ellipse em embed fieldset figcaption figure font "
    "footer foreignobject form frame frameset g h1 h2 h3 h4 h5 h6 head header hgroup hr html i "
    "iframe image img input ins isindex kbd keygen label legend li line lineargradient link "
    "main map mark marker marquee math menu meta meter mi mn mo mrow ms mtext multicol nav nobr "
    "noembed noframes noscript object ol optgroup option output p param path pattern picture "
    "plaintext polygon polyline pre progress q radialgradient rb rect rp rt rtc ruby s samp "
    "script section select semantics small source spacer span stop strike strong style sub "
    "summary sup svg switch symbol table tbody td template text textarea textpath tfoot th "
    "thead time title tr track tref tspan tt u ul use var video wbr xmp "
    # the rest of what feedparser's sanitizer lets through (old HTML, SVG fonts, MathML)
    "annotation annotation-xml datagrid event-source font-face font-face-name font-face-src "
    "glyph hkern m maction maligngroup malignmark menclose merror metadata mfenced mfrac "
    "mglyph missing-glyph mlabeledtr mlongdiv mmultiscripts mover mpadded mpath mphantom "
    "mprescripts mroot mscarries mscarry msgroup msline mspace msqrt msrow mstack mstyle msub "
    "msubsup msup mtable mtd mtr munder munderover nextid none set sound"
)
_ELEMENTS = _ELEMENT_NAMES.split()
# A tag of one of those elements (with any attributes), a comment, a CDATA marker or an XML
# declaration. Everything else ("5 < 6", Slack's "<!here>") is text.
_MARKUP = re.compile(
    r"<!--.*?(?:-->|$)|<!\[CDATA\[|\]\]>|<\?xml[^>]*>|<!doctype[^>]*>"
    r"|</?(?:" + "|".join(map(re.escape, sorted(_ELEMENTS, key=len, reverse=True)))
    + r")(?:\s[^<>]*)?/?>",
    re.IGNORECASE | re.DOTALL,
)


def without_markup(text: str) -> str:
    """``text`` with any HTML/SVG/MathML tag, comment or CDATA marker left in it removed — what
    a feed escaped once more than it declared, or declared as plain text: a mention's text
    never carries markup. Nothing else changes (no entity is decoded a second time)."""
    if not _MARKUP.search(text):
        return text
    return _tidy(_MARKUP.sub(" ", text))


class _TextExtractor(HTMLParser):
    _SKIP: ClassVar[frozenset[str]] = frozenset({"script", "style", "template", "noscript"})
    _BLOCK: ClassVar[frozenset[str]] = frozenset(
        {"p", "br", "div", "li", "ul", "ol", "tr", "blockquote", "pre", "section", "article",
         "h1", "h2", "h3", "h4", "h5", "h6", "hr", "table", "figure", "figcaption"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Plain text of an HTML fragment: tags and comments dropped (script and style with their
    content), entities decoded once, whitespace tidied. Nothing is executed or fetched; the
    result may contain ``<`` and ``&`` as text, which whoever renders it must escape."""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    return _tidy("".join(parser.parts))


def _tidy(text: str) -> str:
    lines = (re.sub(r"[^\S\n]+", " ", line).strip() for line in text.splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _summarise_failures(failures: Mapping[str, str]) -> str:
    named = [f"{url} ({reason})" for url, reason in list(failures.items())[:_MAX_NAMED_FEEDS]]
    more = len(failures) - len(named)
    suffix = f" and {more} more" if more > 0 else ""
    return f"all {len(failures)} feeds failed: " + "; ".join(named) + suffix
