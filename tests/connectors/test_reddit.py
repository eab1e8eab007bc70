"""RedditConnector with the real praw client against a fake Reddit on 127.0.0.1."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from connectors.base import AuthFailed, FetchResult, Mention, RateLimited, TransientError
from connectors.reddit import RedditConnector, to_reddit_query
from tests.fakes import reddit as fake
from tests.fakes.reddit import FakeReddit, recorded_listing, submission

# The lead's conftest may provide it too; naming it here keeps this module runnable alone.
fake_reddit = fake.fake_reddit

QUERY = '"united airlines" OR @united'
USER_AGENT = "python:uproar-tests:v1.0 (by /u/uproar)"

Make = Callable[..., RedditConnector]


@pytest.fixture
def make(fake_reddit: FakeReddit) -> Iterator[Make]:
    made: list[RedditConnector] = []

    def build(**kwargs: object) -> RedditConnector:
        options: dict = {"user_agent": USER_AGENT, "api_url": fake_reddit.api_url,
                         "auth_url": fake_reddit.auth_url, **kwargs}
        client_id = options.pop("client_id", fake_reddit.client_id)
        secret = options.pop("client_secret", fake_reddit.client_secret)
        connector = RedditConnector(client_id, secret, **options)
        made.append(connector)
        return connector

    yield build
    for connector in made:
        connector.close()


def by_id(result: FetchResult) -> dict[str, Mention]:
    return {m.source_id: m for m in result.mentions}


@pytest.fixture
def askreddit(fake_reddit: FakeReddit) -> dict[str, list[str]]:
    """r/askreddit with its recorded new submissions and comments (fullnames, newest first)."""
    return {"new": fake_reddit.load_listing("/r/askreddit/new", "askreddit_new.json"),
            "comments": fake_reddit.load_listing("/r/askreddit/comments",
                                                 "askreddit_comments.json")}


# -- query translation ---------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "expected"), [
    ('"united airlines" OR @united', '"united airlines" OR united'),
    ("united baggage", "united baggage"),
    ('united -"united states" NOT strike', 'united NOT "united states" NOT strike'),
    ("#unitedairlines AND -(strike OR union)", "unitedairlines AND NOT (strike OR union)"),
])
def test_query_translation(query: str, expected: str) -> None:
    assert to_reddit_query(query) == expected


# -- mapping and requests ------------------------------------------------------------------------


def test_maps_search_results(fake_reddit: FakeReddit, make: Make) -> None:
    fake_reddit.set_search(recorded_listing("search_all_praw.json"))
    result = make().fetch([QUERY], None)

    assert len(result.mentions) == 6 and result.problems == []
    post = by_id(result)["t3_3x4kt2"]
    assert post.source == "reddit"
    assert post.url == ("https://www.reddit.com/r/redditdev/comments/3x4kt2/"
                        "praw_is_there_an_easy_way_of_getting_a_list_of/")
    assert post.text.startswith("[PRAW] Is there an easy way of getting a list of the "
                                "subreddits I am subscribed to, without using OAuth?\n\nAs the "
                                "title says.")
    assert post.author.handle == "GrinningMouth38"
    assert post.created_at == datetime(2015, 12, 16, 21, 3, 6, tzinfo=UTC)
    assert (post.engagement.score, post.engagement.replies) == (2, 5)
    assert post.parent_id is None and post.conversation_id == "t3_3x4kt2"
    assert post.raw["subreddit"] == "redditdev" and post.raw["kind"] == "t3"
    assert all(isinstance(v, (str, int, float, bool)) for v in post.raw.values())


def test_search_request_and_app_only_token(fake_reddit: FakeReddit, make: Make) -> None:
    fake_reddit.set_search([])
    make().fetch([QUERY], None)

    (token,) = fake_reddit.token_requests()
    assert token.method == "POST"
    assert token.body == b"grant_type=client_credentials"
    assert token.headers["user-agent"].startswith(USER_AGENT)
    (search,) = fake_reddit.listing_requests()
    assert search["_path"] == "/r/all/search"
    assert (search["q"], search["sort"], search["t"], search["limit"]) == \
        ('"united airlines" OR united', "new", "day", "100")
    request = fake_reddit.http.requests[-1]
    assert request.headers["authorization"] == "bearer fake-access-token-1"


def test_maps_subreddit_posts_and_comments(fake_reddit: FakeReddit, make: Make,
                                           askreddit: dict[str, list[str]]) -> None:
    result = make(subreddits=["r/askreddit"]).fetch([], None)

    assert set(by_id(result)) == set(askreddit["new"]) | set(askreddit["comments"])
    post = by_id(result)["t3_48fbgl"]
    assert post.text == "What went from 100 to 0 real fucking quick?"  # a link post: title only
    assert post.url == ("https://www.reddit.com/r/AskReddit/comments/48fbgl/"
                        "what_went_from_100_to_0_real_fucking_quick/")
    reply = by_id(result)["t1_d4y8bdn"]
    assert reply.text.startswith("Seeing Don sucker punch the UTZ actor")
    assert reply.parent_id == "t1_d4xrzgq" and reply.conversation_id == "t3_4r2hd3"
    assert reply.url.startswith("https://www.reddit.com/r/AskReddit/comments/4r2hd3/")
    assert reply.url.endswith("/d4y8bdn/")
    assert reply.created_at == datetime.fromtimestamp(1467590690, UTC)
    assert reply.author.handle == "LoneStarCub15"
    assert set(result.cursor["listings"]) == {"new:r/askreddit", "comments:r/askreddit"}


def test_deleted_author(fake_reddit: FakeReddit, make: Make) -> None:
    fake_reddit.set_search([submission("abc123", "United lost my bag", created_utc=1.7e9,
                                       author="[deleted]")])
    (mention,) = make().fetch([QUERY], None).mentions
    assert mention.author.handle == "[deleted]"


# -- paging, incremental stop, dedupe ------------------------------------------------------------


def test_pages_with_after(fake_reddit: FakeReddit, make: Make,
                          askreddit: dict[str, list[str]]) -> None:
    fake_reddit.page_cap = 5
    result = make(subreddits=["askreddit"], limit=10).fetch([], None)
    new = fake_reddit.listing_requests("/r/askreddit/new")
    assert [r.get("after") for r in new] == [None, askreddit["new"][4]]
    assert len([m for m in result.mentions if m.source_id.startswith("t3_")]) == 10


def test_second_poll_stops_at_items_already_read(fake_reddit: FakeReddit, make: Make,
                                                 askreddit: dict[str, list[str]]) -> None:
    fake_reddit.page_cap = 4
    connector = make(subreddits=["askreddit"])
    first = connector.fetch([], None)
    assert len(fake_reddit.listing_requests("/r/askreddit/new")) == 3  # 4 + 4 + 4 items

    newest = 1456821458.0  # t3_48fbm9, the newest recorded post
    fake_reddit.add_listing("/r/askreddit/new", [
        submission("48fc01", "United airlines lost my bag", created_utc=newest + 30,
                   subreddit="AskReddit"),
        submission("48fc02", "Flying United tomorrow", created_utc=newest + 90,
                   subreddit="AskReddit")])
    second = connector.fetch([], first.cursor)

    assert {m.source_id for m in second.mentions} == {"t3_48fc01", "t3_48fc02"}
    # one page: its 3rd item is the last poll's newest, its 4th older than the overlap
    assert len(fake_reddit.listing_requests("/r/askreddit/new")) == 4
    state = second.cursor["listings"]["new:r/askreddit"]
    assert state["newest"] == "t3_48fc02" and state["newest_utc"] == newest + 90
    assert set(state["recent"]) == {"t3_48fc01", "t3_48fc02"}  # the last minute before it


def test_late_items_in_the_overlap_are_found_once(fake_reddit: FakeReddit, make: Make) -> None:
    """r/all/new as praw recorded it twice, two seconds apart: the second poll returns just
    the four new posts although the older ones are within the overlap."""
    before = fake_reddit.load_listing("/r/all/new", "all_new_before.json")
    connector = make(subreddits=["all"])
    first = connector.fetch([], None)
    assert {m.source_id for m in first.mentions} == set(before)

    after = fake_reddit.load_listing("/r/all/new", "all_new_after.json")
    second = connector.fetch([], first.cursor)
    assert [m.source_id for m in second.mentions] == after
    assert connector.fetch([], second.cursor).mentions == []


def test_same_item_in_several_listings_is_returned_once(fake_reddit: FakeReddit,
                                                        make: Make) -> None:
    post = submission("abc123", "United Airlines broke my guitar", created_utc=1.7e9,
                      subreddit="travel")
    fake_reddit.set_search([post])
    fake_reddit.add_listing("/r/travel/new", [post])
    result = make(subreddits=["travel"]).fetch([QUERY, "@united"], None)
    assert [m.source_id for m in result.mentions] == ["t3_abc123"]
    assert len(fake_reddit.listing_requests()) == 4  # two searches, new, comments


def test_more_than_limit_new_items_is_reported_once(fake_reddit: FakeReddit, make: Make,
                                                    askreddit: dict[str, list[str]]) -> None:
    connector = make(subreddits=["askreddit"], limit=5)
    old = {"listings": {"new:r/askreddit": {"newest": "t3_old", "newest_utc": 1456000000.0}}}
    first = connector.fetch([], old)
    assert [p for p in first.problems if "new:r/askreddit" in p] == [
        "reddit new:r/askreddit: more than 5 new items since the last poll; older ones were "
        "skipped (raise limit or poll more often)"]
    assert first.cursor["listings"]["new:r/askreddit"]["capped"] is True

    again = dict(first.cursor)
    again["listings"] = dict(first.cursor["listings"])
    again["listings"]["new:r/askreddit"] = {**again["listings"]["new:r/askreddit"],
                                            "newest_utc": 1456000000.0, "recent": {}}
    assert connector.fetch([], again).problems == []  # still capped: said once


def test_error_on_page_two_raises_and_the_next_poll_rereads(
        fake_reddit: FakeReddit, make: Make, askreddit: dict[str, list[str]]) -> None:
    fake_reddit.page_cap = 6
    connector = make(subreddits=["askreddit"])
    fake_reddit.inject(fake.unavailable(), at=2, path="/r/askreddit/new")
    fake_reddit.inject(fake.unavailable(), at=3, path="/r/askreddit/new")  # and its retry
    with pytest.raises(TransientError, match="503"):
        connector.fetch([], None)

    again = connector.fetch([], None)  # the daemon kept the old (empty) cursor
    assert set(askreddit["new"]) <= set(by_id(again))


# -- errors --------------------------------------------------------------------------------------


def test_wrong_credentials_are_auth_failed_with_what_to_do(fake_reddit: FakeReddit,
                                                           make: Make) -> None:
    fake_reddit.set_search([])
    with pytest.raises(AuthFailed, match="REDDIT_CLIENT_ID and REDDIT_CLIENT_SECRET") as caught:
        make(client_secret="wrong").fetch([QUERY], None)
    assert "HTTP 401" in str(caught.value) and "/api/v1/access_token" in str(caught.value)


def test_expired_token_is_renewed_within_the_poll(fake_reddit: FakeReddit, make: Make) -> None:
    fake_reddit.set_search([submission("abc123", "United", created_utc=1.7e9)])
    connector = make()
    connector.fetch([QUERY], None)
    fake_reddit.expire_tokens()
    assert len(connector.fetch([QUERY], None).mentions) == 1
    assert len(fake_reddit.token_requests()) == 2


def test_rate_limit_raises_with_retry_after(fake_reddit: FakeReddit, make: Make) -> None:
    fake_reddit.set_search([])
    fake_reddit.inject(fake.too_many_requests(reset=120))
    with pytest.raises(RateLimited) as caught:
        make().fetch([QUERY], None)
    assert caught.value.retry_after == 120
    assert "/r/all/search" in str(caught.value)


def test_used_up_window_stops_the_poll_instead_of_sleeping(fake_reddit: FakeReddit,
                                                           make: Make) -> None:
    fake_reddit.set_search([])
    fake_reddit.ratelimit_remaining = 1  # the first answer says 0 left, resetting in 300 s
    started = time.monotonic()
    with pytest.raises(RateLimited) as caught:
        make().fetch([QUERY, "@united"], None)
    assert 290 < (caught.value.retry_after or 0) <= 300
    assert time.monotonic() - started < 5
    assert len(fake_reddit.listing_requests()) == 1


def test_server_error_is_transient_after_one_quick_retry(fake_reddit: FakeReddit,
                                                         make: Make) -> None:
    fake_reddit.set_search([])
    fake_reddit.inject(fake.unavailable(), at=1)
    fake_reddit.inject(fake.unavailable(), at=2)
    started = time.monotonic()
    with pytest.raises(TransientError, match="HTTP 503") as caught:
        make().fetch([QUERY], None)
    assert "HTML error page" in str(caught.value)
    assert len(fake_reddit.listing_requests()) == 2
    assert time.monotonic() - started < 2  # prawcore's 2-4 s sleeps are off


def test_recorded_html_bad_request_is_a_clear_error(fake_reddit: FakeReddit,
                                                    make: Make) -> None:
    fake_reddit.set_search([])
    fake_reddit.inject(fake.bad_request_html())
    with pytest.raises(TransientError) as caught:
        make().fetch([QUERY], None)
    message = str(caught.value)
    assert f"{fake_reddit.api_url}r/all/search" in message and "text/html" in message


def test_html_page_with_200_is_a_clear_error(fake_reddit: FakeReddit, make: Make) -> None:
    fake_reddit.set_search([])
    fake_reddit.inject(fake.maintenance_page())
    with pytest.raises(TransientError, match="HTTP 200 text/html instead of JSON"):
        make().fetch([QUERY], None)


def test_blocked_page_is_auth_failed(fake_reddit: FakeReddit, make: Make) -> None:
    fake_reddit.set_search([])
    fake_reddit.inject(fake.blocked_html())
    with pytest.raises(AuthFailed, match=r"HTTP 403.*HTML"):
        make().fetch([QUERY], None)


def test_private_subreddit_is_a_problem_once_and_others_still_run(
        fake_reddit: FakeReddit, make: Make, askreddit: dict[str, list[str]]) -> None:
    connector = make(subreddits=["secretclub", "askreddit"])
    fake_reddit.inject(fake.private_subreddit(), path="/r/secretclub/new")
    fake_reddit.inject(fake.banned_subreddit(), path="/r/secretclub/comments")
    first = connector.fetch([], None)
    assert len(first.mentions) == 24
    assert first.problems == [
        "reddit new:r/secretclub: r/secretclub is private or quarantined (HTTP 403)",
        "reddit comments:r/secretclub: r/secretclub is banned or missing (HTTP 404)"]

    fake_reddit.inject(fake.private_subreddit(), path="/r/secretclub/new")
    second = connector.fetch([], first.cursor)
    assert second.problems == ["reddit comments:r/secretclub: works again"]


def test_unreachable_api_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    connector = RedditConnector("id", "secret", user_agent=USER_AGENT, timeout=2,
                                api_url=f"http://127.0.0.1:{port}/",
                                auth_url=f"http://127.0.0.1:{port}/")
    with pytest.raises(TransientError, match="cannot reach Reddit"):
        connector.fetch([QUERY], None)
    connector.close()


def test_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="client_id"):
        RedditConnector("", "s", user_agent=USER_AGENT)
    with pytest.raises(ValueError, match="user_agent"):
        RedditConnector("i", "s", user_agent="x")


# -- engagement refresh (GET /api/info) ----------------------------------------------------------


def test_refresh_reads_scores_of_posts_and_comments_by_fullname(
        fake_reddit: FakeReddit, make: Make, askreddit: dict[str, list[str]]) -> None:
    post, comment = askreddit["new"][0], askreddit["comments"][0]
    things = fake_reddit.things()
    things[post]["data"].update(score=4321, num_comments=250)
    things[comment]["data"].update(score=77)
    fresh = {m.source_id: m for m in make().refresh([post, comment, "t3_zzzzzz", "bogus"])}
    assert set(fresh) == {post, comment}  # an unknown (deleted) item is simply missing
    assert (fresh[post].engagement.score, fresh[post].engagement.replies) == (4321, 250)
    assert fresh[comment].engagement.score == 77
    [info] = fake_reddit.listing_requests("/api/info")
    assert info["id"] == f"{post},{comment},t3_zzzzzz"


def test_refresh_with_refused_credentials_raises_auth_failed(
        fake_reddit: FakeReddit, make: Make, askreddit: dict[str, list[str]]) -> None:
    with pytest.raises(AuthFailed, match="REDDIT_CLIENT_ID"):
        make(client_secret="wrong").refresh(askreddit["new"][:1])
