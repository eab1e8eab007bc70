"""BlueskyConnector against a fake Bluesky PDS (XRPC) on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from connectors.base import AuthFailed, FetchResult, Mention, RateLimited, TransientError
from connectors.bluesky import BlueskyConnector
from tests.fakes import bluesky as fake
from tests.fakes.bluesky import FakeBluesky

fake_bluesky = fake.fake_bluesky

NOW = datetime(2024, 1, 10, 14, 5, tzinfo=UTC)
QUERY = '"united airlines" OR @united OR (#unitedairlines AND NOT strike)'

Make = Callable[..., BlueskyConnector]


@pytest.fixture
def make(fake_bluesky: FakeBluesky) -> Iterator[Make]:
    made: list[BlueskyConnector] = []

    def build(**kwargs: object) -> BlueskyConnector:
        options: dict = {"api_url": fake_bluesky.api_url, "clock": lambda: NOW, **kwargs}
        handle = options.pop("handle", fake_bluesky.handle)
        password = options.pop("password", fake_bluesky.password)
        connector = BlueskyConnector(handle, password, **options)
        made.append(connector)
        return connector

    yield build
    for connector in made:
        connector.close()


def by_id(result: FetchResult) -> dict[str, Mention]:
    return {m.source_id: m for m in result.mentions}


def test_maps_posts(fake_bluesky: FakeBluesky, make: Make) -> None:
    uris = fake_bluesky.load_sample()
    result = make().fetch(["united"], None)
    assert result.problems == []
    mentions = by_id(result)
    assert list(mentions) == uris

    reply = mentions[uris[0]]
    assert reply.source == "bluesky"
    assert reply.url == "https://bsky.app/profile/sonsofmaxwell.bsky.social/post/3kgbz6v7cq22d"
    assert reply.text.startswith("@united broke my guitar")
    assert (reply.author.handle, reply.author.name, reply.author.followers) == \
        ("sonsofmaxwell.bsky.social", "Dave Carroll", None)
    assert reply.created_at == datetime(2024, 1, 10, 14, 2, 11, 512000, tzinfo=UTC)
    assert (reply.engagement.likes, reply.engagement.reposts, reply.engagement.replies) == \
        (57, 15, 4)
    assert reply.lang == "en"
    assert reply.parent_id == \
        "at://did:plc:z72i7hdynmk6r22z27h6tvur/app.bsky.feed.post/3kgbyx2j6ns2n"
    assert reply.conversation_id == \
        "at://did:plc:z72i7hdynmk6r22z27h6tvur/app.bsky.feed.post/3kgbywtfvpk2n"
    assert reply.raw["cid"].startswith("bafyrei")

    tagged = mentions[uris[1]]
    assert tagged.lang == "fr"  # the first of record.langs
    assert tagged.author.name == ""
    assert tagged.parent_id is None and tagged.conversation_id == uris[1]
    assert mentions[uris[2]].lang is None  # no langs in the record


def test_one_search_per_or_branch_with_tags_kept(fake_bluesky: FakeBluesky, make: Make) -> None:
    fake_bluesky.load_sample()
    result = make(limit=50).fetch([QUERY, "@united"], None)
    searches = fake_bluesky.searches()
    assert [s["q"] for s in searches] == ['"united airlines"', "united", "#unitedairlines"]
    assert {(s["sort"], s["limit"]) for s in searches} == {("latest", "50")}
    assert len(result.mentions) == 3  # the same posts from every search, returned once
    request = fake_bluesky.http.requests_for(fake.SEARCH)[0]
    assert request.headers["authorization"] == "Bearer access-1"
    assert fake_bluesky.logins() == 1


def test_pages_and_second_poll_reads_only_newer_posts(fake_bluesky: FakeBluesky,
                                                      make: Make) -> None:
    uris = fake_bluesky.load_sample()
    connector = make(limit=2)
    first = connector.fetch(["united"], None)
    assert set(by_id(first)) == set(uris)
    assert [s.get("cursor") for s in fake_bluesky.searches()] == [None, "2"]
    state = first.cursor["searches"]["united"]
    assert state["newest"] == "2024-01-10T14:02:12.118000Z"
    assert state["seen"] == [uris[0]]

    new = fake_bluesky.add_post("3kgc2aaaaaa2a", "united lost my bag", "2024-01-10T14:04:00.000Z")
    second = connector.fetch(["united"], first.cursor)
    assert [m.source_id for m in second.mentions] == [new["uri"]]
    # Page 1 holds the new post and the newest one already seen; page 2 reaches older posts.
    assert [s.get("cursor") for s in fake_bluesky.searches()[2:]] == [None, "2"]
    assert second.cursor["searches"]["united"]["seen"] == [new["uri"]]

    third = connector.fetch(["united"], second.cursor)
    assert third.mentions == [] and third.cursor == second.cursor
    assert fake_bluesky.logins() == 1  # the session outlives polls


def test_posts_indexed_in_the_same_instant_are_not_lost(fake_bluesky: FakeBluesky,
                                                        make: Make) -> None:
    connector = make()
    a = fake_bluesky.add_post("3aaa", "united a", "2024-01-10T14:00:00Z")
    first = connector.fetch(["united"], None)
    b = fake_bluesky.add_post("3bbb", "united b", "2024-01-10T14:00:00Z")
    second = connector.fetch(["united"], first.cursor)
    assert [m.source_id for m in second.mentions] == [b["uri"]]
    assert set(second.cursor["searches"]["united"]["seen"]) == {a["uri"], b["uri"]}


def test_page_cap_is_reported_once(fake_bluesky: FakeBluesky, make: Make) -> None:
    connector = make(limit=1, max_pages=2)
    fake_bluesky.add_post("3old", "united old", "2024-01-10T13:00:00Z")
    first = connector.fetch(["united"], None)
    assert first.problems == []  # the first poll has no "since last poll" to miss
    for n in range(4):
        fake_bluesky.add_post(f"3new{n}", "united new", f"2024-01-10T14:0{n}:00Z")
    second = connector.fetch(["united"], first.cursor)
    assert len(second.mentions) == 2
    assert len(second.problems) == 1 and "more than 2 pages" in second.problems[0]
    for n in range(4):
        fake_bluesky.add_post(f"3newer{n}", "united newer", f"2024-01-10T14:1{n}:00Z")
    assert connector.fetch(["united"], second.cursor).problems == []


def test_expired_access_token_is_refreshed(fake_bluesky: FakeBluesky, make: Make) -> None:
    fake_bluesky.load_sample()
    connector = make()
    first = connector.fetch(["united"], None)
    fake_bluesky.expire_access_tokens()
    connector.fetch(["united"], first.cursor)
    assert (fake_bluesky.logins(), fake_bluesky.refreshes()) == (1, 1)
    auth = [r.headers["authorization"] for r in fake_bluesky.http.requests_for(fake.SEARCH)]
    assert auth == ["Bearer access-1", "Bearer access-1", "Bearer access-2"]
    refresh = fake_bluesky.http.requests_for(fake.REFRESH_SESSION)[0]
    assert refresh.method == "POST" and refresh.headers["authorization"] == "Bearer refresh-1"


def test_logs_in_again_when_the_refresh_token_expired_too(fake_bluesky: FakeBluesky,
                                                         make: Make) -> None:
    fake_bluesky.load_sample()
    connector = make()
    connector.fetch(["united"], None)
    fake_bluesky.expire_access_tokens()
    fake_bluesky.expire_refresh_tokens()
    result = connector.fetch(["united"], None)
    assert len(result.mentions) == 3
    assert (fake_bluesky.logins(), fake_bluesky.refreshes()) == (2, 1)


def test_wrong_app_password_is_auth_failed(fake_bluesky: FakeBluesky, make: Make) -> None:
    with pytest.raises(AuthFailed) as caught:
        make(password="wrong").fetch(["united"], None)
    message = str(caught.value)
    assert "BLUESKY_HANDLE" in message and "BLUESKY_APP_PASSWORD" in message
    assert "Invalid identifier or password" in message
    assert fake_bluesky.searches() == []


def test_rate_limit_uses_the_reset_header(fake_bluesky: FakeBluesky, make: Make) -> None:
    fake_bluesky.inject(fake.rate_limited(int(NOW.timestamp()) + 120))
    with pytest.raises(RateLimited) as caught:
        make().fetch(["united"], None)
    assert caught.value.retry_after == 120
    assert "2024-01-10T14:07:00Z" in str(caught.value)


@pytest.mark.parametrize("status", [200, 502])
def test_html_page_is_transient(fake_bluesky: FakeBluesky, make: Make, status: int) -> None:
    fake_bluesky.inject(fake.html_page(status))
    with pytest.raises(TransientError) as caught:
        make().fetch(["united"], None)
    assert "app.bsky.feed.searchPosts" in str(caught.value)
    if status == 200:
        assert "text/html instead of JSON" in str(caught.value)


def test_rejected_search_is_a_problem_once(fake_bluesky: FakeBluesky, make: Make) -> None:
    fake_bluesky.load_sample()
    connector = make()
    fake_bluesky.inject(fake.xrpc_error(400, "InvalidRequest", "query too long"))
    first = connector.fetch(["bad", "united"], None)
    assert len(first.mentions) == 3
    assert first.problems == ["Bluesky rejected the search 'bad': InvalidRequest: query too long"]
    fake_bluesky.inject(fake.xrpc_error(400, "InvalidRequest", "query too long"))
    assert connector.fetch(["bad", "united"], first.cursor).problems == []
    healed = connector.fetch(["bad", "united"], first.cursor)
    assert healed.problems == ["Bluesky search 'bad' works again"]


def test_queries_no_longer_configured_are_dropped(fake_bluesky: FakeBluesky, make: Make) -> None:
    fake_bluesky.load_sample()
    connector = make()
    first = connector.fetch(["united", "delta"], None)
    assert set(first.cursor["searches"]) == {"united", "delta"}
    assert set(connector.fetch(["delta"], first.cursor).cursor["searches"]) == {"delta"}


def test_unreachable_api_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    connector = BlueskyConnector("a", "b", api_url=f"http://127.0.0.1:{port}/xrpc/", timeout=2)
    with pytest.raises(TransientError, match="cannot reach Bluesky"):
        connector.fetch(["united"], None)
    connector.close()


def test_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="BLUESKY_APP_PASSWORD"):
        BlueskyConnector("handle", "")
    with pytest.raises(ValueError, match="limit"):
        BlueskyConnector("h", "p", limit=500)


# -- engagement refresh (app.bsky.feed.getPosts) -------------------------------------------------


def test_refresh_reads_counts_25_uris_a_call(fake_bluesky: FakeBluesky, make: Make) -> None:
    posts = [fake_bluesky.add_post(f"3kpost{n:04d}", "united lost my bag",
                                   f"2024-01-10T14:{n % 60:02d}:00.000Z") for n in range(30)]
    uris = [p["uri"] for p in posts]
    posts[0].update(likeCount=500, repostCount=120, quoteCount=30, replyCount=44)
    del fake_bluesky.posts[uris[1]]
    fresh = {m.source_id: m for m in make().refresh(uris)}
    assert len(fresh) == 29 and uris[1] not in fresh
    first = fresh[uris[0]].engagement
    assert (first.likes, first.reposts, first.replies) == (500, 150, 44)
    calls = fake_bluesky.http.requests_for(fake.GET_POSTS)
    assert [c.query.count("uris=") for c in calls] == [25, 5]
    assert fake_bluesky.logins() == 1


def test_refresh_with_a_wrong_app_password_raises_auth_failed(fake_bluesky: FakeBluesky,
                                                              make: Make) -> None:
    with pytest.raises(AuthFailed, match="BLUESKY_APP_PASSWORD"):
        make(password="wrong").refresh(["at://did:plc:x/app.bsky.feed.post/1"])


def test_a_removed_xrpc_method_is_reported_as_gone(fake_bluesky: FakeBluesky, make: Make) -> None:
    from connectors.base import EndpointGone

    fake_bluesky.inject(fake.xrpc_error(404, "MethodNotImplemented", "Method Not Implemented"))
    with pytest.raises(EndpointGone, match="check api_url"):
        make().fetch(["united"], None)
