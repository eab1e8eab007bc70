"""MastodonConnector against a fake Mastodon instance on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from connectors.base import AuthFailed, FetchResult, Mention, RateLimited, TransientError
from connectors.mastodon import MastodonConnector
from tests.fakes import mastodon as fake
from tests.fakes.mastodon import FakeMastodon

fake_mastodon = fake.fake_mastodon

NOW = datetime(2024, 1, 10, 14, 5, tzinfo=UTC)
QUERY = '"united airlines" OR @united OR #UnitedAirlines'
TAG_PATH = fake.TAG_PREFIX + "unitedairlines"

Make = Callable[..., MastodonConnector]


@pytest.fixture
def make(fake_mastodon: FakeMastodon) -> Iterator[Make]:
    made: list[MastodonConnector] = []

    def build(**kwargs: object) -> MastodonConnector:
        options: dict = {"api_url": fake_mastodon.api_url, "clock": lambda: NOW,
                         "access_token": fake_mastodon.token, **kwargs}
        connector = MastodonConnector(**options)
        made.append(connector)
        return connector

    yield build
    for connector in made:
        connector.close()


def by_id(result: FetchResult) -> dict[str, Mention]:
    return {m.source_id: m for m in result.mentions}


def test_maps_statuses(fake_mastodon: FakeMastodon, make: Make) -> None:
    fake_mastodon.load_sample()
    result = make(access_token="").fetch(["#unitedairlines"], None)
    mentions = list(result.mentions)
    assert len(mentions) == 3

    reply = mentions[0]
    assert reply.source == "mastodon"
    assert reply.source_id == \
        "https://mastodon.social/users/sonsofmaxwell/statuses/111732940221345678"
    assert reply.url == "https://mastodon.social/@sonsofmaxwell/111732940221345678"
    assert reply.text == ("@united broke my guitar & nobody at the gate cares.\n\n"
                          "Third flight in a row. #UnitedAirlines")
    assert (reply.author.handle, reply.author.name, reply.author.followers) == \
        ("sonsofmaxwell", "Dave Carroll", 12000)
    assert reply.created_at == datetime(2024, 1, 10, 14, 2, 11, tzinfo=UTC)
    assert (reply.engagement.likes, reply.engagement.reposts, reply.engagement.replies) == \
        (57, 12, 4)
    assert reply.lang == "en"
    assert reply.parent_id == "111732901112223334"
    assert reply.raw["visibility"] == "public"

    remote = mentions[1]
    assert remote.author.handle == "reisende@chaos.social"
    assert remote.text.startswith("airline rant\n\nFlug gestrichen, Koffer weg.\nDanke,")
    assert remote.lang == "de" and remote.parent_id is None
    assert mentions[2].lang is None and mentions[2].author.name == ""


def test_without_a_token_reads_hashtag_timelines_and_says_so_once(
        fake_mastodon: FakeMastodon, make: Make) -> None:
    fake_mastodon.load_sample()
    fake_mastodon.serve_tag("unitedbreaksguitars")
    connector = make(access_token="", hashtags=["#UnitedBreaksGuitars"])
    first = connector.fetch([QUERY, "delta"], None)
    assert [path for path, _ in fake_mastodon.requests()] == [
        TAG_PATH, fake.TAG_PREFIX + "unitedbreaksguitars"]
    assert len(first.problems) == 1
    assert "MASTODON_ACCESS_TOKEN" in first.problems[0]
    assert "#unitedairlines, #unitedbreaksguitars" in first.problems[0]
    assert all("authorization" not in r.headers for r in fake_mastodon.http.requests)
    assert connector.fetch([QUERY], first.cursor).problems == []


def test_with_a_token_searches_each_or_branch_and_reads_tags(fake_mastodon: FakeMastodon,
                                                             make: Make) -> None:
    fake_mastodon.load_sample()
    result = make(limit=20).fetch([QUERY], None)
    assert result.problems == []
    assert len(result.mentions) == 3  # found by every search, returned once
    calls = fake_mastodon.requests()
    assert [(path, params.get("q")) for path, params in calls] == [
        (fake.SEARCH, '"united airlines"'), (fake.SEARCH, "united"),
        (fake.SEARCH, "UnitedAirlines"), (TAG_PATH, None)]
    assert calls[0][1] == {"q": '"united airlines"', "type": "statuses", "resolve": "false",
                           "limit": "20"}
    assert fake_mastodon.http.requests[0].headers["authorization"] == \
        f"Bearer {fake_mastodon.token}"


def test_tag_timeline_polls_with_min_id_and_follows_link_prev(fake_mastodon: FakeMastodon,
                                                              make: Make) -> None:
    ids = fake_mastodon.load_sample()
    connector = make(access_token="", limit=2)
    first = connector.fetch(["#unitedairlines"], None)
    assert len(first.mentions) == 2  # the first poll reads the newest page only
    assert first.cursor["streams"]["tag:unitedairlines"]["min_id"] == ids[0]

    new = [fake_mastodon.post(f"united lost bag {n}") for n in range(5)]
    second = connector.fetch(["#unitedairlines"], first.cursor)
    assert sorted(m.source_id for m in second.mentions) == sorted(s["uri"] for s in new)
    pages = [params for path, params in fake_mastodon.requests()][1:]
    # min_id from the cursor, then the Link rel="prev" (built on the public host) rebased
    assert [p["min_id"] for p in pages] == [ids[0], new[1]["id"], new[3]["id"]]
    assert second.cursor["streams"]["tag:unitedairlines"]["min_id"] == new[4]["id"]

    third = connector.fetch(["#unitedairlines"], second.cursor)
    assert third.mentions == [] and third.cursor == second.cursor


def test_search_polls_with_min_id_and_reports_a_cap_once(fake_mastodon: FakeMastodon,
                                                         make: Make) -> None:
    ids = fake_mastodon.load_sample()
    connector = make(limit=2, max_pages=2)
    first = connector.fetch(["united"], None)
    assert first.cursor["streams"]["search:united"]["min_id"] == ids[0]

    new = [fake_mastodon.post(f"united again {n}", tag="other") for n in range(5)]
    second = connector.fetch(["united"], first.cursor)
    assert [m.source_id for m in second.mentions] == [s["uri"] for s in new[::-1][:4]]
    searches = [params for _, params in fake_mastodon.requests()][1:]
    assert [(p["min_id"], p.get("offset")) for p in searches] == [(ids[0], None), (ids[0], "2")]
    assert len(second.problems) == 1 and "more than 2 pages" in second.problems[0]
    assert second.cursor["streams"]["search:united"]["min_id"] == new[-1]["id"]

    fake_mastodon.post("united once more", tag="other")
    third = connector.fetch(["united"], second.cursor)
    assert len(third.mentions) == 1 and third.problems == []


def test_streams_no_longer_configured_are_dropped(fake_mastodon: FakeMastodon,
                                                  make: Make) -> None:
    fake_mastodon.load_sample()
    connector = make()
    first = connector.fetch(["united", "#unitedairlines"], None)
    assert set(first.cursor["streams"]) == {"search:united", "search:unitedairlines",
                                            "tag:unitedairlines"}
    second = connector.fetch(["united"], first.cursor)
    assert set(second.cursor["streams"]) == {"search:united"}


def test_refused_token_is_auth_failed(make: Make) -> None:
    with pytest.raises(AuthFailed, match="MASTODON_ACCESS_TOKEN") as caught:
        make(access_token="revoked").fetch(["united"], None)
    assert "The access token is invalid" in str(caught.value)


def test_rate_limit_uses_the_iso_reset_header(fake_mastodon: FakeMastodon, make: Make) -> None:
    fake_mastodon.inject(fake.rate_limited("2024-01-10T14:10:00.000000Z"))
    with pytest.raises(RateLimited) as caught:
        make().fetch(["united"], None)
    assert caught.value.retry_after == 300
    assert "2024-01-10T14:10:00Z" in str(caught.value)


@pytest.mark.parametrize("status", [200, 503])
def test_html_page_is_transient(fake_mastodon: FakeMastodon, make: Make, status: int) -> None:
    fake_mastodon.inject(fake.html_page(status))
    with pytest.raises(TransientError) as caught:
        make().fetch(["united"], None)
    assert "/api/v2/search" in str(caught.value)
    if status == 200:
        assert "text/html instead of JSON" in str(caught.value)


def test_refused_stream_is_a_problem_once(fake_mastodon: FakeMastodon, make: Make) -> None:
    fake_mastodon.load_sample()
    connector = make()
    fake_mastodon.inject(fake.api_error(422, "Validation failed"))
    first = connector.fetch(["united", "delta"], None)
    assert len(first.mentions) == 3
    assert first.problems == ["Mastodon search 'united': the instance refused it "
                              "(HTTP 422: Validation failed)"]
    fake_mastodon.inject(fake.api_error(422, "Validation failed"))
    assert connector.fetch(["united", "delta"], first.cursor).problems == []
    assert connector.fetch(["united", "delta"], first.cursor).problems == [
        "Mastodon search 'united' works again"]


def test_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="limit"):
        MastodonConnector(limit=80)


# -- engagement refresh (GET /api/v1/statuses/:id) -----------------------------------------------


def test_refresh_reads_counts_of_statuses_it_has_seen(fake_mastodon: FakeMastodon,
                                                      make: Make) -> None:
    ids = fake_mastodon.load_sample()
    connector = make(access_token="")
    uris = [m.source_id for m in connector.fetch(["#unitedairlines"], None).mentions]
    fake_mastodon.statuses[ids[0]].update(favourites_count=999, reblogs_count=321,
                                          replies_count=55)
    del fake_mastodon.statuses[ids[1]]  # deleted by its author
    fresh = {m.source_id: m for m in connector.refresh(uris)}
    assert set(fresh) == {uris[0], uris[2]}
    first = fresh[uris[0]]
    assert (first.engagement.likes, first.engagement.reposts, first.engagement.replies) == \
        (999, 321, 55)
    assert first.author.followers == 12000
    assert [path for path, _ in fake_mastodon.requests("/api/v1/statuses/")] == \
        [fake.STATUS_PREFIX + i for i in ids]


def test_refresh_after_a_restart_resolves_uris_with_a_token(fake_mastodon: FakeMastodon,
                                                             make: Make) -> None:
    ids = fake_mastodon.load_sample()
    uri = fake_mastodon.statuses[ids[1]]["uri"]  # a remote status (chaos.social)
    assert [m.source_id for m in make().refresh([uri])] == [uri]
    assert [p for p, q in fake_mastodon.requests() if q.get("resolve") == "true"] == \
        [fake.SEARCH]
    assert make(access_token="").refresh([uri]) == []  # no token: cannot resolve, skipped
