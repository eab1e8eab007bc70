"""HackerNewsConnector against a fake Algolia HN Search API on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from connectors.base import FetchResult, Mention, RateLimited, TransientError
from connectors.hackernews import HackerNewsConnector
from tests.fakes import hackernews as fake
from tests.fakes.hackernews import FakeHackerNews

fake_hackernews = fake.fake_hackernews

NOW = datetime(2024, 1, 10, 14, 5, tzinfo=UTC)
NEWEST = 1704895331  # created_at_i of the newest sample hit (2024-01-10T14:02:11Z)

Make = Callable[..., HackerNewsConnector]


@pytest.fixture
def make(fake_hackernews: FakeHackerNews) -> Iterator[Make]:
    made: list[HackerNewsConnector] = []

    def build(**kwargs: object) -> HackerNewsConnector:
        options: dict = {"api_url": fake_hackernews.api_url, "clock": lambda: NOW, **kwargs}
        connector = HackerNewsConnector(**options)
        made.append(connector)
        return connector

    yield build
    for connector in made:
        connector.close()


def by_id(result: FetchResult) -> dict[str, Mention]:
    return {m.source_id: m for m in result.mentions}


def test_maps_stories_and_comments(fake_hackernews: FakeHackerNews, make: Make) -> None:
    fake_hackernews.load_sample()
    result = make().fetch(["united"], None)
    assert result.problems == []
    mentions = by_id(result)
    assert list(mentions) == ["38935120", "38935002", "38935001"]

    comment = mentions["38935120"]
    assert comment.source == "hackernews"
    assert comment.url == "https://news.ycombinator.com/item?id=38935120"
    assert comment.text == ('United lost my bag & then closed the claim as "delivered".\n'
                            "Their support chat just loops: https://www.united.com/en/us/baggage")
    assert comment.author.handle == "throwaway_flyer" and comment.author.followers is None
    assert comment.created_at == datetime(2024, 1, 10, 14, 2, 11, tzinfo=UTC)
    assert comment.parent_id == "38935077" and comment.conversation_id == "38935001"
    assert comment.engagement.score == 0

    link = mentions["38935002"]
    assert link.text == "United Airlines grounds 737 MAX 9 fleet"
    assert (link.engagement.score, link.engagement.replies) == (311, 42)
    assert link.parent_id is None and link.conversation_id == "38935002"
    assert link.raw["url"].startswith("https://www.reuters.com/")

    ask = mentions["38935001"]
    assert ask.text == ("Ask HN: Has United ever paid out a baggage claim?\n\n"
                        "They broke my guitar in 2008.\nAsking for a friend.")


def test_one_request_per_or_branch(fake_hackernews: FakeHackerNews, make: Make) -> None:
    fake_hackernews.load_sample()
    result = make(hits_per_page=50).fetch(
        ['"united airlines" OR @united OR (#unitedairlines AND NOT strike)', "united"], None)
    assert len(result.mentions) == 3
    searches = fake_hackernews.searches()
    assert [s["query"] for s in searches] == ['"united airlines"', "united", "unitedairlines"]
    first_since = int(NOW.timestamp()) - 86400
    assert searches[0] == {"query": '"united airlines"', "tags": "(story,comment)",
                           "numericFilters": f"created_at_i>{first_since}",
                           "hitsPerPage": "50", "page": "0"}


def test_pages_until_nb_pages(fake_hackernews: FakeHackerNews, make: Make) -> None:
    ids = fake_hackernews.load_sample()
    result = make(hits_per_page=2).fetch(["united"], None)
    assert [m.source_id for m in result.mentions] == ids
    assert [s["page"] for s in fake_hackernews.searches()] == ["0", "1"]
    assert result.problems == []


def test_overlapping_window_catches_late_items_without_repeats(
        fake_hackernews: FakeHackerNews, make: Make) -> None:
    ids = fake_hackernews.load_sample()
    late = fake_hackernews.add_comment("38935110", "united, same here", NEWEST - 120)
    fake_hackernews.indexed = lambda hit: hit["objectID"] != late["objectID"]
    connector = make()
    first = connector.fetch(["united"], None)
    assert [m.source_id for m in first.mentions] == ids
    state = first.cursor["searches"]["united"]
    assert state["newest"] == NEWEST
    # the hits within 600 s of the newest (the oldest sample hit is 21 minutes older)
    assert state["recent"] == {"38935002": NEWEST - 211, "38935120": NEWEST}

    # Algolia catches up on the late comment; a brand-new comment arrives too.
    fake_hackernews.indexed = lambda hit: True
    fake_hackernews.add_comment("38935300", "united again", NEWEST + 60)
    second = connector.fetch(["united"], first.cursor)
    assert fake_hackernews.searches()[-1]["numericFilters"] == f"created_at_i>{NEWEST - 600}"
    assert [m.source_id for m in second.mentions] == ["38935300", "38935110"]
    assert second.cursor["searches"]["united"]["newest"] == NEWEST + 60

    third = connector.fetch(["united"], second.cursor)
    assert third.mentions == []
    assert fake_hackernews.searches()[-1]["numericFilters"] == f"created_at_i>{NEWEST - 540}"


def test_page_cap_is_reported_once(fake_hackernews: FakeHackerNews, make: Make) -> None:
    fake_hackernews.load_sample()
    connector = make(hits_per_page=1, max_pages=2)
    first = connector.fetch(["united"], None)
    assert len(first.mentions) == 2
    assert len(first.problems) == 1 and "more new stories and comments" in first.problems[0]
    fake_hackernews.add_comment("1", "united", NEWEST + 1)
    fake_hackernews.add_comment("2", "united", NEWEST + 2)
    fake_hackernews.add_comment("3", "united", NEWEST + 3)
    assert connector.fetch(["united"], first.cursor).problems == []


def test_rejected_query_is_a_problem_once(fake_hackernews: FakeHackerNews, make: Make) -> None:
    fake_hackernews.load_sample()
    connector = make()
    fake_hackernews.inject(fake.algolia_error(400, "Query is too long"))
    first = connector.fetch(["bad", "united"], None)
    assert len(first.mentions) == 3
    assert first.problems == ["Hacker News search rejected the query 'bad': Query is too long"]
    fake_hackernews.inject(fake.algolia_error(400, "Query is too long"))
    assert connector.fetch(["bad", "united"], first.cursor).problems == []
    assert connector.fetch(["bad", "united"], first.cursor).problems == [
        "Hacker News search 'bad' works again"]


def test_rate_limit(fake_hackernews: FakeHackerNews, make: Make) -> None:
    fake_hackernews.inject(fake.rate_limited())
    with pytest.raises(RateLimited, match="rate limit"):
        make().fetch(["united"], None)


@pytest.mark.parametrize("status", [200, 504])
def test_html_page_is_transient(fake_hackernews: FakeHackerNews, make: Make,
                                status: int) -> None:
    fake_hackernews.inject(fake.html_page(status))
    with pytest.raises(TransientError) as caught:
        make().fetch(["united"], None)
    assert f"{fake_hackernews.api_url}search_by_date" in str(caught.value)


def test_queries_no_longer_configured_are_dropped(fake_hackernews: FakeHackerNews,
                                                  make: Make) -> None:
    connector = make()
    first = connector.fetch(["united", "delta"], None)
    assert set(connector.fetch(["delta"], first.cursor).cursor["searches"]) == {"delta"}


# -- engagement refresh (GET items/:id) ----------------------------------------------------------


def test_refresh_reads_points_and_comment_counts(fake_hackernews: FakeHackerNews,
                                                 make: Make) -> None:
    fake_hackernews.load_sample()
    fake_hackernews.hits["38935002"].update(points=999, num_comments=7)
    fresh = {m.source_id: m for m in make().refresh(["38935002", "38935120", "40000000"])}
    assert set(fresh) == {"38935002", "38935120"}  # 40000000 was deleted: missing
    story = fresh["38935002"]
    assert (story.engagement.score, story.engagement.replies) == (999, 7)
    assert story.text == "United Airlines grounds 737 MAX 9 fleet"
    comment = fresh["38935120"]
    assert comment.parent_id == "38935077" and comment.text.startswith("United lost my bag")


def test_a_removed_search_endpoint_is_reported_as_gone(fake_hackernews: FakeHackerNews,
                                                       make: Make) -> None:
    from connectors.base import EndpointGone

    fake_hackernews.inject(fake.algolia_error(404, "Not Found"))
    with pytest.raises(EndpointGone, match="check api_url"):
        make().fetch(["united"], None)
