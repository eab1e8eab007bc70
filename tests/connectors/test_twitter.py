"""TwitterConnector with the real tweepy client against a fake X API v2 on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from connectors.base import AuthFailed, FetchResult, Mention, RateLimited, TransientError
from connectors.twitter import TwitterConnector, to_x_query
from tests.fakes import twitter as fake
from tests.fakes.feedserver import Response
from tests.fakes.twitter import FakeTwitter, recorded

# The lead's conftest may provide it too; naming it here keeps this module runnable alone.
fake_twitter = fake.fake_twitter

# Just after the recorded search (its newest tweet was posted at 22:42:12 UTC).
NOW = datetime(2022, 10, 7, 22, 45, tzinfo=UTC)
QUERY = '"united airlines" OR @united'

Make = Callable[..., TwitterConnector]


@pytest.fixture
def make(fake_twitter: FakeTwitter) -> Iterator[Make]:
    made: list[TwitterConnector] = []

    def build(**kwargs: object) -> TwitterConnector:
        options: dict = {"api_url": fake_twitter.api_url, "clock": lambda: NOW, **kwargs}
        token = options.pop("bearer_token", fake_twitter.bearer_token)
        connector = TwitterConnector(token, **options)
        made.append(connector)
        return connector

    yield build
    for connector in made:
        connector.close()


@pytest.fixture
def tweepy_dev(fake_twitter: FakeTwitter) -> dict:
    return fake_twitter.add_user("1072250532645998596", "TweepyDev", "Tweepy Dev", followers=321)


@pytest.fixture
def recorded_ids(fake_twitter: FakeTwitter, tweepy_dev: dict) -> list[str]:
    """The 10 tweets of tweepy's recorded recent search, newest first."""
    return fake_twitter.load_recorded("search_recent_tweepy.json", author=tweepy_dev)


def by_id(result: FetchResult) -> dict[str, Mention]:
    return {m.source_id: m for m in result.mentions}


# -- query translation ---------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "expected"), [
    ('"united airlines" OR @united', '"united airlines" OR @united'),
    ("united AND baggage", "united baggage"),
    ("united baggage NOT lost", "united baggage -lost"),
    ('united -"united states"', 'united -"united states"'),
    ("#unitedairlines AND NOT (strike OR union)", "#unitedairlines -strike -union"),
    ("united AND (guitar OR guitars) OR NOT (a b) OR c",
     "united (guitar OR guitars) OR -(a b) OR c"),
    ('"say \\"hi\\" now"', '"say hi now"'),
    ("NOT (a OR -b) united", "-a b united"),
])
def test_query_translation(query: str, expected: str) -> None:
    assert to_x_query(query) == expected


# -- mapping -------------------------------------------------------------------------------------


def test_maps_tweets_authors_and_engagement(fake_twitter: FakeTwitter, make: Make,
                                            recorded_ids: list[str]) -> None:
    dave = fake_twitter.add_user("46544137", "sonsofmaxwell", "Dave Carroll", followers=12000)
    fake_twitter.add_tweet("1578516295611748353", "@united broke my guitar", author=dave,
                           likes=7, retweets=3, quotes=2, replies=4, lang="en",
                           conversation_id="1578516000000000000",
                           replied_to="1578516000000000000")
    result = make().fetch([QUERY], None)

    mentions = by_id(result)
    assert len(mentions) == 11
    assert result.problems == []
    reply = mentions["1578516295611748353"]
    assert reply.source == "twitter"
    assert reply.url == "https://x.com/sonsofmaxwell/status/1578516295611748353"
    assert reply.text == "@united broke my guitar"
    assert (reply.author.handle, reply.author.name, reply.author.followers) == \
        ("sonsofmaxwell", "Dave Carroll", 12000)
    assert (reply.engagement.likes, reply.engagement.reposts, reply.engagement.replies) == (7, 5, 4)
    assert reply.lang == "en"
    assert reply.parent_id == reply.conversation_id == "1578516000000000000"
    assert reply.raw["public_metrics"]["quote_count"] == 2
    assert reply.raw["id"] == "1578516295611748353"

    # A recorded tweet: its text is the time the tweepy test bot posted it; created_at agrees.
    first = mentions[recorded_ids[0]]
    assert first.text == "2022-10-07 22:42:12.637103 tweepy"
    assert first.created_at.tzinfo is not None and first.created_at.utcoffset() == timedelta(0)
    assert first.created_at.replace(microsecond=0) == datetime(2022, 10, 7, 22, 42, 12,
                                                               tzinfo=UTC)
    assert first.author.followers == 321
    assert first.url == f"https://x.com/TweepyDev/status/{recorded_ids[0]}"
    assert first.parent_id is None
    assert first.conversation_id == recorded_ids[0]


def test_asks_for_the_fields_it_maps(fake_twitter: FakeTwitter, make: Make,
                                     recorded_ids: list[str]) -> None:
    make(page_size=50).fetch([QUERY], None)
    (search,) = fake_twitter.searches()
    assert search["query"] == QUERY
    assert search["max_results"] == "50"
    assert search["expansions"] == "author_id"
    assert set(search["user.fields"].split(",")) == {"username", "name", "public_metrics"}
    assert set(search["tweet.fields"].split(",")) >= {
        "created_at", "public_metrics", "lang", "conversation_id", "referenced_tweets",
        "author_id"}
    assert "since_id" not in search
    request = fake_twitter.http.requests_for(fake.SEARCH_PATH)[0]
    assert request.headers["authorization"] == f"Bearer {fake_twitter.bearer_token}"


def test_recorded_body_without_fields_still_maps(fake_twitter: FakeTwitter, make: Make) -> None:
    """An answer without the asked-for fields (as tweepy recorded it) still gives mentions:
    the time comes from the tweet id, the author is unknown."""
    body = recorded("users_mentions_twitter.json")
    del body["meta"]["next_token"]  # a token of the real API: the fake would reject it
    fake_twitter.inject(Response(json.dumps(body), content_type=fake.JSON))
    result = make().fetch(["@Twitter"], None)
    assert len(result.mentions) == 10
    complaint = by_id(result)["1578516295611748353"]
    assert complaint.text.startswith("@Twitter @TwitterSupport this is my ENTIRE feed")
    # 13 s before the recording's Date header (Fri, 07 Oct 2022 22:43:19 UTC)
    assert complaint.created_at == datetime(2022, 10, 7, 22, 43, 6, 945000, tzinfo=UTC)
    assert complaint.author.handle == "" and complaint.author.followers is None
    assert complaint.url == "https://x.com/i/web/status/1578516295611748353"
    assert result.cursor["queries"]["@Twitter"]["since_id"] == "1578516295611748353"


def test_undetermined_language_is_none(fake_twitter: FakeTwitter, make: Make,
                                       tweepy_dev: dict) -> None:
    fake_twitter.add_tweet("1578516295611748353", "https://t.co/x", author=tweepy_dev,
                           lang="zxx")
    (mention,) = make().fetch([QUERY], None).mentions
    assert mention.lang is None


# -- paging and the cursor -----------------------------------------------------------------------


def add_mentions_of_twitter(fake_twitter: FakeTwitter) -> list[str]:
    """Ten more recorded tweets (complaints to @Twitter), newer than the tweepy ones."""
    someone = fake_twitter.add_user("99", "someone", "Some One", followers=5)
    return fake_twitter.load_recorded("users_mentions_twitter.json", author=someone)


def test_pages_with_next_token_and_advances_since_id_after_the_last_page(
        fake_twitter: FakeTwitter, make: Make, recorded_ids: list[str]) -> None:
    newer_ids = add_mentions_of_twitter(fake_twitter)
    connector = make(page_size=10)

    result = connector.fetch([QUERY], None)
    assert set(by_id(result)) == set(recorded_ids) | set(newer_ids)
    searches = fake_twitter.searches()
    assert len(searches) == 2
    assert "next_token" not in searches[0] and searches[1]["next_token"]
    assert result.cursor == {"queries": {QUERY: {"since_id": newer_ids[0], "newest_seen": None,
                                                 "capped": False, "error": None}}}

    # Next poll: since_id sent, only the new tweet comes back.
    someone = fake_twitter.users["99"]
    fake_twitter.add_tweet("1578520000000000000", "@united lost my bag", author=someone)
    second = connector.fetch([QUERY], result.cursor)
    assert [m.source_id for m in second.mentions] == ["1578520000000000000"]
    assert fake_twitter.searches()[-1]["since_id"] == newer_ids[0]
    assert second.cursor["queries"][QUERY]["since_id"] == "1578520000000000000"

    # Nothing new: since_id is kept.
    third = connector.fetch([QUERY], second.cursor)
    assert third.mentions == []
    assert third.cursor == second.cursor


def test_error_on_page_two_raises_and_the_next_poll_refetches(
        fake_twitter: FakeTwitter, make: Make, recorded_ids: list[str]) -> None:
    connector = make(page_size=10)
    first = connector.fetch([QUERY], None)
    newer_ids = add_mentions_of_twitter(fake_twitter)
    someone = fake_twitter.users["99"]
    fake_twitter.add_tweet("1578520000000000000", "@united lost my bag", author=someone)

    fake_twitter.inject(fake.unavailable(), at=2)
    with pytest.raises(TransientError, match="503"):
        connector.fetch([QUERY], first.cursor)

    # The daemon saves no cursor from a failed poll, so it polls with the old one again.
    again = connector.fetch([QUERY], first.cursor)
    assert set(by_id(again)) == {"1578520000000000000", *newer_ids}
    since = [s.get("since_id") for s in fake_twitter.searches()]
    assert since == [None, recorded_ids[0], recorded_ids[0], recorded_ids[0], recorded_ids[0]]
    assert again.cursor["queries"][QUERY]["since_id"] == "1578520000000000000"


def test_page_cap_keeps_since_id_and_reports_once(fake_twitter: FakeTwitter, make: Make,
                                                  recorded_ids: list[str]) -> None:
    connector = make(page_size=10, max_pages=1)
    start = {"queries": {QUERY: {"since_id": "1578500000000000000"}}}
    newer_ids = add_mentions_of_twitter(fake_twitter)

    first = connector.fetch([QUERY], start)
    assert set(by_id(first)) == set(newer_ids)  # the newest page only
    assert len(first.problems) == 1 and "more than 1 pages" in first.problems[0]
    state = first.cursor["queries"][QUERY]
    assert state == {"since_id": "1578500000000000000", "newest_seen": newer_ids[0],
                     "capped": True, "error": None}

    second = connector.fetch([QUERY], first.cursor)
    assert second.problems == []  # said once
    assert fake_twitter.searches()[-1]["since_id"] == "1578500000000000000"

    # The backlog is gone (fewer tweets match now): the poll completes and since_id jumps.
    for tweet_id in recorded_ids:
        del fake_twitter.tweets[tweet_id]
    third = connector.fetch([QUERY], second.cursor)
    assert third.problems == []
    assert third.cursor["queries"][QUERY] == {"since_id": newer_ids[0], "newest_seen": None,
                                              "capped": False, "error": None}


def test_queries_are_searched_separately_and_deduplicated(
        fake_twitter: FakeTwitter, make: Make, recorded_ids: list[str]) -> None:
    other = "tweepy"
    result = make().fetch([QUERY, other, QUERY], None)
    assert len(result.mentions) == 10  # both queries found the same tweets
    assert [s["query"] for s in fake_twitter.searches()] == [QUERY, other]
    assert set(result.cursor["queries"]) == {QUERY, other}

    # A query dropped from the config is dropped from the cursor.
    assert set(make().fetch([other], result.cursor).cursor["queries"]) == {other}


def test_rejected_query_is_a_problem_once_and_others_still_run(
        fake_twitter: FakeTwitter, make: Make, recorded_ids: list[str]) -> None:
    connector = make()
    fake_twitter.inject(fake.bad_request("There were errors processing your request: "
                                         "Ambiguous use of or as a keyword"))
    first = connector.fetch(["bad or query", QUERY], None)
    assert len(first.mentions) == 10
    assert len(first.problems) == 1
    assert "'bad or query'" in first.problems[0] and "Ambiguous use of or" in first.problems[0]
    assert first.cursor["queries"]["bad or query"]["error"]

    fake_twitter.inject(fake.bad_request("There were errors processing your request: "
                                         "Ambiguous use of or as a keyword"))
    assert connector.fetch(["bad or query", QUERY], first.cursor).problems == []

    healed = connector.fetch(["bad or query", QUERY], first.cursor)
    assert healed.problems == ["X/Twitter query 'bad or query' works again"]
    assert healed.cursor["queries"]["bad or query"]["error"] is None


def test_since_id_older_than_seven_days_is_dropped_once(
        fake_twitter: FakeTwitter, make: Make, recorded_ids: list[str]) -> None:
    fake_twitter.inject(fake.bad_request(
        "Invalid 'since_id':'1'. 'since_id' must be a tweet id created after "
        "2022-09-30T22:45Z.", "since_id"))
    result = make().fetch([QUERY], {"queries": {QUERY: {"since_id": "1"}}})
    assert len(result.mentions) == 10
    assert len(result.problems) == 1 and "since_id 1 is older" in result.problems[0]
    assert [s.get("since_id") for s in fake_twitter.searches()] == ["1", None]
    assert result.cursor["queries"][QUERY]["since_id"] == recorded_ids[0]


# -- errors --------------------------------------------------------------------------------------


def test_rate_limit_raises_with_retry_after_from_the_reset_header(
        fake_twitter: FakeTwitter, make: Make, recorded_ids: list[str]) -> None:
    reset = int(NOW.timestamp()) + 600
    fake_twitter.inject(fake.rate_limited(reset))
    with pytest.raises(RateLimited) as caught:
        make().fetch([QUERY], None)
    assert caught.value.retry_after == 600
    assert caught.value.source == "twitter"
    assert "2022-10-07T22:55:00Z" in str(caught.value)


def test_wrong_bearer_token_is_auth_failed_with_what_to_do(make: Make,
                                                           recorded_ids: list[str]) -> None:
    with pytest.raises(AuthFailed, match="TWITTER_BEARER_TOKEN") as caught:
        make(bearer_token="wrong").fetch([QUERY], None)
    assert "HTTP 401" in str(caught.value)


def test_app_without_project_is_auth_failed(fake_twitter: FakeTwitter, make: Make) -> None:
    fake_twitter.inject(fake.client_forbidden())
    with pytest.raises(AuthFailed, match="TWITTER_BEARER_TOKEN") as caught:
        make().fetch([QUERY], None)
    assert "HTTP 403" in str(caught.value) and "attached to a Project" in str(caught.value)


@pytest.mark.parametrize("status", [200, 502])
def test_html_page_instead_of_json_is_a_clear_transient_error(
        fake_twitter: FakeTwitter, make: Make, status: int) -> None:
    fake_twitter.inject(fake.html_page(status))
    with pytest.raises(TransientError) as caught:
        make().fetch([QUERY], None)
    message = str(caught.value)
    assert f"{fake_twitter.api_url}2/tweets/search/recent" in message
    if status == 200:
        assert "text/html instead of JSON" in message


def test_unreachable_api_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    connector = TwitterConnector("token", api_url=f"http://127.0.0.1:{port}/", timeout=2)
    with pytest.raises(TransientError, match="cannot reach X/Twitter"):
        connector.fetch([QUERY], None)
    connector.close()


def test_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="bearer token"):
        TwitterConnector("")
    with pytest.raises(ValueError, match="page_size"):
        TwitterConnector("t", page_size=5)


# -- engagement refresh (GET /2/tweets) ----------------------------------------------------------


def test_refresh_reads_current_metrics_and_followers_in_batches_of_100(
        fake_twitter: FakeTwitter, make: Make, tweepy_dev: dict) -> None:
    ids = [str(1578500000000000000 + n) for n in range(150)]
    for tweet_id in ids:
        fake_twitter.add_tweet(tweet_id, "@united lost my bag", author=tweepy_dev, likes=1)
    connector = make()
    fake_twitter.tweets[ids[0]]["public_metrics"].update(like_count=900, retweet_count=300,
                                                         quote_count=20, reply_count=45)
    tweepy_dev["public_metrics"]["followers_count"] = 5000
    del fake_twitter.tweets[ids[1]]  # deleted since it was archived
    fresh = {m.source_id: m for m in connector.refresh(ids)}
    assert len(fresh) == 149 and ids[1] not in fresh
    first = fresh[ids[0]]
    assert (first.engagement.likes, first.engagement.reposts, first.engagement.replies) == \
        (900, 320, 45)
    assert first.author.followers == 5000 and first.author.handle == "TweepyDev"
    lookups = fake_twitter.lookups()
    assert [len(q["ids"].split(",")) for q in lookups] == [100, 50]
    assert "public_metrics" in lookups[0]["tweet.fields"]
    assert lookups[0]["expansions"] == "author_id"


def test_refresh_with_a_refused_token_raises_auth_failed(fake_twitter: FakeTwitter,
                                                          make: Make) -> None:
    with pytest.raises(AuthFailed, match="TWITTER_BEARER_TOKEN"):
        make(bearer_token="revoked").refresh(["1578500000000000001"])


def test_refresh_rate_limited_says_when_it_resets(fake_twitter: FakeTwitter, make: Make,
                                                  recorded_ids: list[str]) -> None:
    fake_twitter.inject(fake.rate_limited(reset=int(NOW.timestamp()) + 120))
    with pytest.raises(RateLimited) as caught:
        make().refresh(recorded_ids[:2])
    assert caught.value.retry_after == 120


def test_a_gone_endpoint_is_reported_as_gone(fake_twitter: FakeTwitter, make: Make) -> None:
    from connectors.base import EndpointGone

    fake_twitter.inject(Response(json.dumps({"title": "Gone", "detail": "This endpoint has been "
                                             "retired", "type": "about:blank", "status": 410}),
                                 status=410, content_type=fake.JSON))
    with pytest.raises(EndpointGone, match="HTTP 410"):
        make().fetch([QUERY], None)
