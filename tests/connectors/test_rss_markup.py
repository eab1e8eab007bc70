"""A mention's text never contains markup, whatever the feed declares: feedparser's own test
feeds (tests/data/feedparser, BSD licence in LICENSE there) that left tags, escaped twice or
declared as plain text, served over HTTP to the real RSS connector."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from connectors.rss import RSSConnector, without_markup
from tests.fakes.feedserver import ATOM, FeedServer
from tests.paths import DATA

FEEDS = DATA / "feedparser"
TAG = re.compile(r"<[A-Za-z!/?][^<>]*>")  # anything shaped like a tag, comment or CDATA


@pytest.fixture
def connector() -> Iterator[RSSConnector]:
    made: list[RSSConnector] = []

    def make(url: str) -> RSSConnector:
        made.append(RSSConnector([url], clock=lambda: datetime(2026, 3, 2, tzinfo=UTC)))
        return made[-1]

    yield make  # type: ignore[misc]
    for each in made:
        each.close()


@pytest.mark.parametrize("name", sorted(p.name for p in FEEDS.glob("*.xml")))
def test_feedparsers_test_feeds_give_text_without_markup(
    name: str, feed_server: FeedServer, connector: object
) -> None:
    url = feed_server.add_route(f"/{name}", (FEEDS / name).read_bytes(), content_type=ATOM)
    result = connector(url).fetch([], None)  # type: ignore[operator]
    # (An entry whose only content was markup has no text left, and is no mention at all.)
    for mention in result.mentions:
        assert not TAG.search(mention.text), f"{name}: {mention.text!r}"


def test_escaped_markup_becomes_its_text(feed_server: FeedServer, connector: object) -> None:
    name = "atom_entry_title_base64.xml"  # Atom 0.3, title type="text/html" mode="base64"
    url = feed_server.add_route(f"/{name}", (FEEDS / name).read_bytes(), content_type=ATOM)
    [mention] = connector(url).fetch([], None).mentions  # type: ignore[operator]
    assert mention.text == "Example Atom"


@pytest.mark.parametrize(("text", "expected"), [
    ('<span title=""></span>Lost bag', "Lost bag"),
    ("<svg onload=alert(1)> broken", "broken"),
    ("<!-- hidden --> shown", "shown"),
    ("x<y and y>z, I <3 my cello, a < b", "x<y and y>z, I <3 my cello, a < b"),  # not markup
])
def test_without_markup(text: str, expected: str) -> None:
    assert without_markup(text) == expected
