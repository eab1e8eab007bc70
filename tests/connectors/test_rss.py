"""RSSConnector against real feeds served over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from connectors import rss
from connectors.base import FetchResult, Mention, TransientError
from connectors.rss import RSSConnector, html_to_text
from tests.fakes import feedserver as feedserver
from tests.fakes.feedserver import ATOM, RSS, FeedServer, sample_feed

# The lead's conftest may provide it too; naming it here keeps this module runnable alone.
feed_server = feedserver.feed_server

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_connector(clock: FakeClock) -> Iterator:
    made: list[RSSConnector] = []

    def make(feeds: list[str], **kwargs: object) -> RSSConnector:
        connector = RSSConnector(feeds, clock=clock, **kwargs)  # type: ignore[arg-type]
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


def by_id(result: FetchResult) -> dict[str, Mention]:
    return {m.source_id: m for m in result.mentions}


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/feed.xml"


# -- mapping entries to mentions -------------------------------------------------------------


def test_rss20_entries_become_mentions(feed_server: FeedServer, make_connector) -> None:
    url = feed_server.add_route("/feed/", sample_feed("rss20_news.xml"), content_type=RSS)
    result = make_connector([url]).fetch(["united airlines"], None)

    assert result.problems == []
    mentions = by_id(result)
    assert len(mentions) == 3
    guitar = mentions["https://thelayover.example.com/?p=4412"]
    assert guitar.source == "rss"
    assert guitar.url == "https://thelayover.example.com/2009/07/united-breaks-guitars/"
    assert guitar.created_at == datetime(2009, 7, 7, 3, 12, tzinfo=UTC)  # -0400 -> UTC
    assert guitar.created_at.tzinfo is not None
    # title, blank line, then the full content:encoded as plain text with entities decoded
    assert guitar.text.startswith(
        "Musician says United Airlines baggage handlers broke his $3,500 guitar\n\n"
        "A Canadian musician watched from his seat as handlers threw guitar cases on the "
        "tarmac at O\u2019Hare.")
    assert "United Airlines still refuses to pay" in guitar.text
    assert "\u201cI should have flown with someone else" in guitar.text
    assert "<" not in guitar.text and "&" not in guitar.text
    assert guitar.author.handle == "Maria Lopez" and guitar.author.name == "Maria Lopez"
    assert guitar.lang == "en"
    assert guitar.raw == {"feed": url, "feed_title": "The Layover \u2014 travel news & rants",
                          "entry_id": "https://thelayover.example.com/?p=4412"}

    tarmac = mentions["https://thelayover.example.com/2009/07/skyjet-tarmac/"]
    assert tarmac.author.name == "Jo Park"  # "email (name)" keeps only the name
    assert tarmac.created_at == datetime(2009, 7, 7, 10, 45, 10, tzinfo=UTC)
    assert "three hours \u2014 and the crew" in tarmac.text  # &amp;mdash; is HTML in RSS
    json.dumps([m.to_json() for m in result.mentions])


def test_atom_entries_become_mentions(feed_server: FeedServer, make_connector) -> None:
    url = feed_server.add_route("/feed.atom", sample_feed("atom_blog.xml"), content_type=ATOM)
    result = make_connector([url]).fetch([], None)

    assert result.problems == []
    mentions = by_id(result)
    died = mentions["tag:kettleandcrumb.example.org,2024:post-118"]
    assert died.created_at == datetime(2024, 3, 1, 17, 20, tzinfo=UTC)  # published, not updated
    assert died.text == (
        "My BakeMaster 3000 died after 13 days \u2014 and support hung up on me\n\n"
        "The mixer stopped mid-dough on day thirteen. I called BakeMaster support four times;"
        " the last agent hung up on me.\n\n"
        'Warranty? "Not covered".')
    assert died.url == "https://kettleandcrumb.example.org/2024/03/bakemaster-died"
    assert died.author.handle == "Priya Shah"
    assert died.lang == "en"  # xml:lang="en-GB" on the feed

    tin = mentions["tag:kettleandcrumb.example.org,2024:post-117"]
    assert tin.created_at == datetime(2024, 2, 20, 7, 0, tzinfo=UTC)  # only <updated>
    assert tin.text == ("Why I still love my Crumbly & Co. bread tin\n\n"
                        "Ten years, two house moves, zero rust. Crumbly & Co. make tins that last.")
    assert tin.url == feed_server.url("/2024/02/crumbly-tin")  # relative link resolved
    # no entry author: the site's host as handle, the feed's title as name
    assert tin.author.handle == "kettleandcrumb.example.org"
    assert tin.author.name == "Kettle & Crumb \u2014 a home-baking blog"

    assert mentions["tag:kettleandcrumb.example.org,2024:post-116-fr"].lang == "fr"


def test_sends_user_agent_and_accept(feed_server: FeedServer, make_connector) -> None:
    url = feed_server.add_route("/feed", sample_feed("rss20_news.xml"))
    make_connector([url], user_agent="UproarTest/1").fetch([], None)
    (request,) = feed_server.requests_for("/feed")
    assert request.headers["user-agent"] == "UproarTest/1"
    assert "application/rss+xml" in request.headers["accept"]


# -- conditional GET -------------------------------------------------------------------------


def test_second_poll_sends_validators_and_304_yields_nothing(
        feed_server: FeedServer, make_connector) -> None:
    modified = "Tue, 07 Jul 2009 14:05:00 GMT"
    url = feed_server.add_route("/feed", sample_feed("rss20_news.xml"), etag='"v1"',
                                last_modified=modified)
    connector = make_connector([url])

    first = connector.fetch([], None)
    assert len(first.mentions) == 3
    assert first.cursor["feeds"][url]["etag"] == '"v1"'
    assert first.cursor["feeds"][url]["last_modified"] == modified

    second = connector.fetch([], json.loads(json.dumps(first.cursor)))
    assert second.mentions == [] and second.problems == []
    assert second.cursor == first.cursor  # validators kept
    request = feed_server.requests_for("/feed")[1]
    assert request.headers["if-none-match"] == '"v1"'
    assert request.headers["if-modified-since"] == modified
    assert feed_server.hits("/feed") == 2

    # the feed changes: new ETag, new entries read, new validator saved
    feed_server.add_route("/feed", sample_feed("rss20_news.xml"), etag='"v2"')
    third = connector.fetch([], second.cursor)
    assert len(third.mentions) == 3
    assert third.cursor["feeds"][url]["etag"] == '"v2"'
    assert third.cursor["feeds"][url]["last_modified"] is None


def test_last_modified_alone_is_enough(feed_server: FeedServer, make_connector) -> None:
    modified = format_datetime(NOW - timedelta(hours=1), usegmt=True)
    url = feed_server.add_route("/feed", sample_feed("atom_blog.xml"), content_type=ATOM,
                                last_modified=modified)
    connector = make_connector([url])
    cursor = connector.fetch([], None).cursor
    again = connector.fetch([], cursor)
    assert again.mentions == []
    assert "if-none-match" not in feed_server.requests_for("/feed")[1].headers


# -- malformed feeds -------------------------------------------------------------------------


def test_malformed_feed_gives_its_entries_and_is_reported_once(
        feed_server: FeedServer, make_connector) -> None:
    url = feed_server.add_route("/gripes", sample_feed("malformed.xml"))
    connector = make_connector([url])

    first = connector.fetch([], None)
    assert set(by_id(first)) == {"https://gripeboard.example.net/posts/901",
                                 "https://gripeboard.example.net/posts/902"}
    assert "Nobody answers the phone" in by_id(first)[
        "https://gripeboard.example.net/posts/901"].text
    assert first.problems == [f"feed {url}: malformed feed (undefined entity at line 12); "
                              "using 2 entries that could be read"]
    assert first.cursor["feeds"][url]["bozo"] is True

    second = connector.fetch([], first.cursor)
    assert len(second.mentions) == 2
    assert second.problems == []

    feed_server.add_route("/gripes", sample_feed("rss20_news.xml"))  # fixed by its owner
    clean = connector.fetch([], second.cursor)
    assert clean.problems == [] and clean.cursor["feeds"][url]["bozo"] is False

    feed_server.add_route("/gripes", sample_feed("malformed.xml"))  # broken again: say so
    broken_again = connector.fetch([], clean.cursor)
    assert len(broken_again.problems) == 1 and "malformed feed" in broken_again.problems[0]


# -- failing feeds ---------------------------------------------------------------------------


def test_slow_feed_times_out_and_other_feeds_are_read(
        feed_server: FeedServer, make_connector) -> None:
    slow = feed_server.add_route("/slow", sample_feed("rss20_news.xml"), delay=5.0)
    good = feed_server.add_route("/good", sample_feed("atom_blog.xml"), content_type=ATOM)
    result = make_connector([slow, good], timeout=0.3).fetch([], None)

    assert len(result.mentions) == 3
    assert all(m.raw["feed"] == good for m in result.mentions)
    (problem,) = result.problems
    assert problem.startswith(f"feed {slow}: timed out after 0.3s")
    assert result.cursor["feeds"][slow]["failing_since"] == "2024-06-01T12:00:00Z"


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        ({"status": 404, "body": "gone", "content_type": "text/plain"}, "HTTP 404 Not Found"),
        ({"status": 410, "body": "", "content_type": "text/plain"}, "HTTP 410 Gone"),
        ({"status": 500, "body": "oops", "content_type": "text/plain"},
         "HTTP 500 Internal Server Error"),
        ({"body": sample_feed("not_a_feed.html"), "content_type": "text/html; charset=utf-8"},
         "not an RSS or Atom feed (text/html)"),
    ],
    ids=["404", "410", "500", "html"],
)
def test_failing_feed_is_reported_once_then_recovery(
        feed_server: FeedServer, make_connector, clock: FakeClock, route: dict,
        expected: str) -> None:
    bad = feed_server.add_route("/bad", **route)
    good = feed_server.add_route("/good", sample_feed("rss20_news.xml"))
    connector = make_connector([bad, good])

    first = connector.fetch([], None)
    assert len(first.mentions) == 3
    assert first.problems == [f"feed {bad}: {expected}"]
    state = first.cursor["feeds"][bad]
    assert state["error"] == expected and state["failing_since"] == "2024-06-01T12:00:00Z"

    clock.advance(minutes=5)
    second = connector.fetch([], first.cursor)
    assert second.problems == []  # still failing: not again
    assert second.cursor["feeds"][bad]["failing_since"] == "2024-06-01T12:00:00Z"

    feed_server.add_route("/bad", sample_feed("atom_blog.xml"), content_type=ATOM)
    clock.advance(minutes=5)
    third = connector.fetch([], second.cursor)
    assert len(third.mentions) == 6
    assert third.problems == [
        f"feed {bad} recovered (failing since 2024-06-01T12:00:00Z: {expected})"]
    assert third.cursor["feeds"][bad]["error"] is None
    assert third.cursor["feeds"][bad]["failing_since"] is None


def test_connection_refused_is_a_problem_when_other_feeds_work(
        feed_server: FeedServer, make_connector) -> None:
    dead = closed_port_url()
    good = feed_server.add_route("/good", sample_feed("rss20_news.xml"))
    result = make_connector([dead, good]).fetch([], None)
    assert len(result.mentions) == 3
    (problem,) = result.problems
    assert problem.startswith(f"feed {dead}: connection failed (ConnectError")


def test_every_feed_failing_transiently_raises(feed_server: FeedServer, make_connector) -> None:
    dead = closed_port_url()
    broken = feed_server.add_route("/broken", "oops", status=503, content_type="text/plain")
    with pytest.raises(TransientError) as excinfo:
        make_connector([dead, broken]).fetch([], None)
    assert excinfo.value.source == "rss"
    assert "all 2 feeds failed" in str(excinfo.value)
    assert dead in str(excinfo.value) and broken in str(excinfo.value)


def test_every_feed_failing_permanently_returns_problems(
        feed_server: FeedServer, make_connector) -> None:
    missing = feed_server.add_route("/missing", "no", status=404, content_type="text/plain")
    result = make_connector([missing]).fetch([], None)
    assert result.mentions == []
    assert result.problems == [f"feed {missing}: HTTP 404 Not Found"]


def test_no_feeds_is_an_empty_poll(make_connector) -> None:
    result = make_connector([]).fetch([], None)
    assert result == FetchResult(mentions=[], cursor={"feeds": {}}, problems=[])


# -- rate limits -----------------------------------------------------------------------------


def test_retry_after_is_respected(feed_server: FeedServer, make_connector,
                                  clock: FakeClock) -> None:
    limited = feed_server.add_route("/limited", "slow down", status=429,
                                    content_type="text/plain", headers={"Retry-After": "120"})
    good = feed_server.add_route("/good", sample_feed("atom_blog.xml"), content_type=ATOM)
    good = good.replace("127.0.0.1", "localhost")  # another host: not held back with /limited
    connector = make_connector([limited, good])

    first = connector.fetch([], None)
    assert first.problems == [f"feed {limited}: rate limited (HTTP 429 Too Many Requests); "
                              "not polling it again before 2024-06-01T12:02:00Z"]
    assert first.cursor["feeds"][limited]["retry_after_until"] == "2024-06-01T12:02:00Z"

    clock.advance(seconds=60)
    second = connector.fetch([], first.cursor)
    assert feed_server.hits("/limited") == 1  # skipped
    assert feed_server.hits("/good") == 2
    assert second.problems == []
    assert second.cursor["feeds"][limited] == first.cursor["feeds"][limited]

    feed_server.add_route("/limited", sample_feed("rss20_news.xml"))
    clock.advance(seconds=61)
    third = connector.fetch([], second.cursor)
    assert feed_server.hits("/limited") == 2
    assert len(third.mentions) == 6
    assert third.problems == [f"feed {limited} recovered (failing since 2024-06-01T12:00:00Z: "
                              "rate limited (HTTP 429 Too Many Requests))"]
    assert third.cursor["feeds"][limited]["retry_after_until"] is None


def test_503_with_retry_after_date(feed_server: FeedServer, make_connector,
                                   clock: FakeClock) -> None:
    when = format_datetime(NOW + timedelta(minutes=10), usegmt=True)
    url = feed_server.add_route("/maint", "maintenance", status=503, content_type="text/plain",
                                headers={"Retry-After": when})
    result = make_connector([url]).fetch([], None)  # rate limited, not a transient failure
    assert result.cursor["feeds"][url]["retry_after_until"] == "2024-06-01T12:10:00Z"
    clock.advance(minutes=9)
    make_connector([url]).fetch([], result.cursor)
    assert feed_server.hits("/maint") == 1


def test_absurd_retry_after_is_capped(feed_server: FeedServer, make_connector) -> None:
    url = feed_server.add_route("/limited", "", status=429, headers={"Retry-After": "99999999"})
    result = make_connector([url]).fetch([], None)
    assert result.cursor["feeds"][url]["retry_after_until"] == "2024-06-02T12:00:00Z"


# -- size, redirects -------------------------------------------------------------------------


@pytest.mark.parametrize("send_length", [True, False], ids=["content-length", "streamed"])
def test_oversized_feed_is_cut_off(feed_server: FeedServer, make_connector,
                                   send_length: bool) -> None:
    huge = sample_feed("rss20_news.xml").replace(
        b"<item>", b"<item><!--" + b"x" * 200_000 + b"-->", 1)
    url = feed_server.add_route("/huge", huge, send_length=send_length)
    good = feed_server.add_route("/good", sample_feed("atom_blog.xml"), content_type=ATOM)
    result = make_connector([url, good], max_bytes=50_000).fetch([], None)
    assert len(result.mentions) == 3
    (problem,) = result.problems
    assert problem.startswith(f"feed {url}: response ")
    assert "over the 50000-byte limit" in problem


def test_redirects_are_followed(feed_server: FeedServer, make_connector) -> None:
    feed_server.add_route("/new/feed.xml", sample_feed("rss20_news.xml"))
    feed_server.add_redirect("/feed", "/moved", status=301)
    old = feed_server.add_redirect("/moved", feed_server.url("/new/feed.xml"), status=302)
    first_url = feed_server.url("/feed")
    result = make_connector([first_url]).fetch([], None)
    assert result.problems == []
    assert len(result.mentions) == 3
    assert all(m.raw["feed"] == first_url for m in result.mentions)  # the configured URL
    assert feed_server.hits("/moved") == 1 and old.endswith("/moved")


def test_redirect_loop_is_bounded(feed_server: FeedServer, make_connector) -> None:
    feed_server.add_redirect("/a", "/b")
    feed_server.add_redirect("/b", "/a")
    url = feed_server.url("/a")
    result = make_connector([url]).fetch([], None)
    assert result.problems == [f"feed {url}: more than 5 redirects"]
    assert feed_server.hits("/a") + feed_server.hits("/b") == 6


# -- identity --------------------------------------------------------------------------------


def test_identity_fallbacks(feed_server: FeedServer, make_connector, clock: FakeClock) -> None:
    url = feed_server.add_route("/notices", sample_feed("fallbacks.xml"))
    other = feed_server.add_route("/mirror", sample_feed("fallbacks.xml"))
    connector = make_connector([url])
    first = connector.fetch([], None)
    ids = [m.source_id for m in first.mentions]

    # no guid: the link
    assert ids[0] == "https://notices.example.org/n/freshmart-flood"
    # no guid, no link: a hash of feed URL, title and summary, stable across polls
    assert ids[1].startswith("sha256:") and len(ids[1]) == len("sha256:") + 64
    assert first.mentions[1].url == ""
    assert first.mentions[1].created_at == NOW  # no date at all: the poll time
    # a guid that is not a URI is only unique within its feed
    assert ids[2] == f"{url}#42"

    clock.advance(hours=1)
    assert [m.source_id for m in connector.fetch([], None).mentions] == ids
    mirrored = [m.source_id for m in make_connector([other]).fetch([], None).mentions]
    assert mirrored[0] == ids[0]  # the same article is the same mention
    assert mirrored[1] != ids[1] and mirrored[2] == f"{other}#42"


def test_same_entry_in_two_feeds_is_one_mention(feed_server: FeedServer,
                                                make_connector) -> None:
    a = feed_server.add_route("/a", sample_feed("rss20_news.xml"))
    b = feed_server.add_route("/b", sample_feed("rss20_news.xml"))
    result = make_connector([a, b]).fetch([], None)
    assert len(result.mentions) == 3
    assert {m.raw["feed"] for m in result.mentions} == {a}


def test_future_dates_are_clamped(feed_server: FeedServer, make_connector) -> None:
    feed = sample_feed("rss20_news.xml").replace(b"Tue, 07 Jul 2009 08:30:00 GMT",
                                                 b"Mon, 07 Jul 2031 08:30:00 GMT")
    url = feed_server.add_route("/feed", feed)
    mentions = by_id(make_connector([url]).fetch([], None))
    assert mentions["https://thelayover.example.com/?p=4415"].created_at == NOW


# -- hostile text and encodings ---------------------------------------------------------------


def test_hostile_text_is_kept_as_text(feed_server: FeedServer, make_connector) -> None:
    url = feed_server.add_route("/feed", sample_feed("hostile.xml"))
    (mention,) = make_connector([url]).fetch([], None).mentions
    text = mention.text
    # Slack's <!channel> stays text (Slack escapes it); markup never reaches a mention's text,
    # not even markup the feed escaped as text (issue 15); plain "<" and "&" do.
    assert text.startswith("Hey <!channel> MegaBank lost my deposit\n\n")
    assert "Literal markup as text: not bold and <!here> and 5 < 6 & AT&T" in text
    # markup that was markup is gone, and scripts and styles with their content
    assert "MegaBank ate my paycheck." in text
    for gone in ("<script", "alert(", "document.cookie", "steal()", "onclick", "<img",
                 "evil.example", "display:none", "<iframe", "javascript:", "<p"):
        assert gone not in text


def test_html_to_text() -> None:
    assert html_to_text("<p>a<br>b</p><p>c &amp;lt; d</p>") == "a\nb\n\nc &lt; d"
    assert html_to_text("x<y and &bogus; &#x41;") == "x<y and &bogus; A"
    assert html_to_text("<script>1</script><style>p{}</style><!-- c -->ok") == "ok"


@pytest.mark.parametrize("content_type", ["application/rss+xml", "text/xml",
                                          "application/xml; charset=ISO-8859-1"])
def test_latin1_feed(feed_server: FeedServer, make_connector, content_type: str) -> None:
    url = feed_server.add_route("/fr", sample_feed("latin1.xml"), content_type=content_type)
    result = make_connector([url]).fetch([], None)
    assert result.problems == []  # a charset header at odds with the XML is not "malformed"
    (mention,) = result.mentions
    assert mention.text == ("D\u00e9\u00e7u par la cr\u00e8me br\u00fbl\u00e9e de "
                            "P\u00e2tisserie L\u00e9on\n\n"
                            "Tr\u00e8s d\u00e9\u00e7u : caram\u00e9lisation br\u00fbl\u00e9e, "
                            "cr\u00e8me ti\u00e8de, et 9 \u20ac l'addition ! "
                            "(\u00a3 refus\u00e9es)")
    assert mention.lang == "fr"
    assert mention.raw["feed_title"] == "Caf\u00e9 Cr\u00e8me - Le blog"
    assert mention.created_at == datetime(2024, 1, 13, 14, 30, tzinfo=UTC)


def test_body_naming_a_local_file_is_not_opened(feed_server: FeedServer,
                                                make_connector) -> None:
    # feedparser.parse(bytes) would treat these bytes as a file name and read the file
    url = feed_server.add_route("/trap", b"/etc/hostname", content_type="application/rss+xml")
    result = make_connector([url]).fetch([], None)
    assert result.mentions == []
    assert result.problems == [f"feed {url}: not an RSS or Atom feed (application/rss+xml)"]


def test_long_text_is_capped(feed_server: FeedServer, make_connector) -> None:
    feed = sample_feed("rss20_news.xml").replace(
        b"Credit where it is due:", b"Credit where it is due: " + b"very good " * 2000)
    url = feed_server.add_route("/feed", feed)
    mentions = by_id(make_connector([url]).fetch([], None))
    text = mentions["https://thelayover.example.com/?p=4415"].text
    assert 4900 < len(text) <= 5000 and text.endswith("very good\u2026")


# -- cursor ----------------------------------------------------------------------------------


def test_cursor_is_json_and_forgets_unconfigured_feeds(
        feed_server: FeedServer, make_connector) -> None:
    url = feed_server.add_route("/feed", sample_feed("rss20_news.xml"), etag='"e"')
    old_cursor = {"feeds": {"https://removed.example.com/rss": {"etag": '"x"', "bozo": True},
                            url: "garbage"}}
    result = make_connector([url]).fetch([], old_cursor)
    assert len(result.mentions) == 3
    assert json.loads(json.dumps(result.cursor)) == result.cursor
    assert list(result.cursor["feeds"]) == [url]
    assert result.cursor["feeds"][url] == {
        "etag": '"e"', "last_modified": None, "bozo": False, "error": None,
        "failing_since": None, "retry_after_until": None}


def test_a_bug_on_one_feed_does_not_stop_the_others(
        feed_server: FeedServer, make_connector, monkeypatch: pytest.MonkeyPatch) -> None:
    real = rss._to_mention

    def explode_on_atom(entry, feed_url, parsed, now):  # type: ignore[no-untyped-def]
        if feed_url.endswith(".atom"):
            raise KeyError("surprise")
        return real(entry, feed_url, parsed, now)

    monkeypatch.setattr(rss, "_to_mention", explode_on_atom)
    odd = feed_server.add_route("/odd.atom", sample_feed("atom_blog.xml"), content_type=ATOM)
    good = feed_server.add_route("/good", sample_feed("rss20_news.xml"))
    result = make_connector([odd, good]).fetch([], None)
    assert len(result.mentions) == 3
    assert result.problems == [f"feed {odd}: could not be read (KeyError: 'surprise')"]
