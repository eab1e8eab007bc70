"""YouTubeConnector against a fake YouTube Data API v3 on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from connectors.base import AuthFailed, FetchResult, Mention, RateLimited, TransientError
from connectors.youtube import YouTubeConnector, next_pacific_midnight, pacific_day
from tests.fakes import youtube as fake
from tests.fakes.youtube import FakeYouTube

fake_youtube = fake.fake_youtube

NOW = datetime(2024, 1, 10, 14, 5, tzinfo=UTC)  # 06:05 in California
WATCHED = "watched0001"

Make = Callable[..., YouTubeConnector]


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def make(fake_youtube: FakeYouTube) -> Iterator[Make]:
    made: list[YouTubeConnector] = []

    def build(**kwargs: object) -> YouTubeConnector:
        options: dict = {"api_url": fake_youtube.api_url, "clock": lambda: NOW, **kwargs}
        key = options.pop("api_key", fake_youtube.api_key)
        connector = YouTubeConnector(key, **options)
        made.append(connector)
        return connector

    yield build
    for connector in made:
        connector.close()


def by_id(result: FetchResult) -> dict[str, Mention]:
    return {m.source_id: m for m in result.mentions}


def test_maps_videos_statistics_and_comments(fake_youtube: FakeYouTube, make: Make) -> None:
    fake_youtube.load_sample()
    result = make(watch_video_ids=lambda: [WATCHED]).fetch(["united"], None)
    assert result.problems == []
    mentions = by_id(result)
    assert list(mentions) == ["5YGc4zOqozo", "dQw4w9WgXcQ", WATCHED,
                              "UgzH6wS8Kj0mXj7PqS14AaABAg", "UgwQ3r8Z0aYbS1cTdUeVfWgXh4AaABAg",
                              "UgyK0lM1nN2oO3pP4qQ5rR6sS7AaABAg"]

    video = mentions["5YGc4zOqozo"]
    assert video.source == "youtube"
    assert video.url == "https://www.youtube.com/watch?v=5YGc4zOqozo"
    assert video.text.startswith("United Breaks Guitars & it's happening again\n\nThey broke")
    assert video.text.endswith("Song and video by Dave Carroll.")  # full, from videos.list
    assert (video.author.handle, video.author.name) == \
        ("UCsTcErHg8oDvUnTzoqsYeNw", "Sons of Maxwell")
    assert video.created_at == datetime(2024, 1, 10, 14, 0, 7, tzinfo=UTC)
    assert (video.engagement.likes, video.engagement.replies, video.engagement.score) == \
        (9120, 1432, 184227)
    assert video.lang == "en"
    assert mentions["dQw4w9WgXcQ"].engagement.likes == 0  # likes hidden by the uploader
    assert mentions[WATCHED].lang is None

    comment = mentions["UgzH6wS8Kj0mXj7PqS14AaABAg"]
    assert comment.url == \
        "https://www.youtube.com/watch?v=watched0001&lc=UgzH6wS8Kj0mXj7PqS14AaABAg"
    assert comment.text == "Never flying United again. Boycott!"
    assert (comment.author.handle, comment.author.name) == \
        ("@frequentflyer42", "frequentflyer42")
    assert (comment.engagement.likes, comment.engagement.replies) == (812, 31)
    assert comment.parent_id == comment.conversation_id == WATCHED
    # No textOriginal: the (HTML-escaped) textDisplay is used.
    assert mentions["UgwQ3r8Z0aYbS1cTdUeVfWgXh4AaABAg"].text == \
        "The CEO's statement made it worse"

    calls = fake_youtube.calls()
    assert [resource for resource, _ in calls] == ["search", "videos", "commentThreads"]
    assert calls[0][1] == {"part": "snippet", "q": "united", "type": "video", "order": "date",
                           "publishedAfter": "2024-01-09T14:05:00Z", "maxResults": "50"}
    assert calls[1][1]["part"] == "statistics,snippet"
    assert calls[1][1]["id"] == f"5YGc4zOqozo,dQw4w9WgXcQ,{WATCHED}"
    assert calls[2][1] == {"part": "snippet", "videoId": WATCHED, "order": "time",
                           "maxResults": "100", "textFormat": "plainText"}
    assert fake_youtube.http.requests[0].query.count(f"key={fake_youtube.api_key}") == 1
    assert result.cursor["quota"] == {"day": "2024-01-10", "used": 102, "reported": False}
    assert fake_youtube.units_used == 102


def test_query_translation_uses_or_and_costs() -> None:
    query = ('"united airlines" OR @united OR (#unitedairlines AND NOT strike) '
             "OR (united AND baggage)")
    assert YouTubeConnector.searches_for([query, "united"]) == [
        '"united airlines"|united|unitedairlines', "united baggage", "united"]
    assert YouTubeConnector.units_per_day(timedelta(minutes=5), 2) == 57_600
    assert YouTubeConnector.units_per_day(timedelta(hours=1), 1) == 2_400
    assert YouTubeConnector.units_per_day(timedelta(minutes=7), 1) == 20_600  # 206 polls


def test_search_only_video_keeps_its_unescaped_snippet(fake_youtube: FakeYouTube,
                                                       make: Make) -> None:
    fake_youtube.load_sample()
    result = make(daily_quota=100).fetch(["united"], None)  # no unit left for videos.list
    video = by_id(result)["5YGc4zOqozo"]
    assert video.text.startswith("United Breaks Guitars & it's happening again\n\n")
    assert video.engagement.score == 0
    assert [resource for resource, _ in fake_youtube.calls()] == ["search"]


def test_second_poll_reads_only_newer_videos_and_comments(fake_youtube: FakeYouTube,
                                                          make: Make) -> None:
    fake_youtube.load_sample()
    watch: list[str] = []
    connector = make(watch_video_ids=lambda: watch)
    first = connector.fetch(["united"], None)
    assert len(first.mentions) == 3
    assert first.cursor["searches"]["united"]["newest"] == "2024-01-10T14:00:07Z"

    fake_youtube.add_video("newvideo001", "United lost my bag", "2024-01-10T14:04:00Z")
    second = connector.fetch(["united"], first.cursor)
    assert [m.source_id for m in second.mentions] == ["newvideo001"]
    # The overlap re-reads the last 15 minutes; the videos it already returned are skipped.
    assert fake_youtube.calls()[-2][1]["publishedAfter"] == "2024-01-10T13:45:07Z"
    assert fake_youtube.calls()[-1] == ("videos", {"part": "statistics,snippet",
                                                   "id": "newvideo001", "maxResults": "50"})

    # A video joins an active story: its statistics every poll, its comments incrementally.
    watch.append(WATCHED)
    third = connector.fetch(["united"], second.cursor)
    assert set(by_id(third)) == {WATCHED, "UgzH6wS8Kj0mXj7PqS14AaABAg",
                                 "UgwQ3r8Z0aYbS1cTdUeVfWgXh4AaABAg",
                                 "UgyK0lM1nN2oO3pP4qQ5rR6sS7AaABAg"}
    fake_youtube.add_comment("UgxNEW", WATCHED, "united, shame on you", "2024-01-10T14:04:30Z")
    fourth = connector.fetch(["united"], third.cursor)
    assert set(by_id(fourth)) == {WATCHED, "UgxNEW"}
    assert fourth.cursor["comments"] == {f"video:{WATCHED}": {
        "newest": "2024-01-10T14:04:30Z", "seen": ["UgxNEW"], "error": None}}

    watch.clear()  # the story ended: its comment stream is dropped
    assert connector.fetch(["united"], fourth.cursor).cursor["comments"] == {}


def test_channel_comments(fake_youtube: FakeYouTube, make: Make) -> None:
    fake_youtube.load_sample()
    result = make(channel_ids=["UCnews0000000000000000ab"]).fetch([], None)
    assert len(result.mentions) == 3
    assert fake_youtube.calls()[0][1]["allThreadsRelatedToChannelId"] == \
        "UCnews0000000000000000ab"


def test_quota_skips_calls_and_reports_once_per_pacific_day(fake_youtube: FakeYouTube,
                                                             make: Make) -> None:
    fake_youtube.load_sample()
    clock = Clock()
    connector = make(daily_quota=150, clock=clock, watch_video_ids=lambda: [WATCHED])
    first = connector.fetch(["united", "united baggage"], None)
    assert [r for r, _ in fake_youtube.calls()] == ["search", "videos", "commentThreads"]
    assert first.problems == ["YouTube quota for 2024-01-10 used up (102 units); next poll "
                              "after midnight Pacific"]
    assert first.cursor["quota"] == {"day": "2024-01-10", "used": 102, "reported": True}
    # The skipped search keeps its (empty) state and runs first thing tomorrow.
    assert first.cursor["searches"]["united baggage"]["newest"] is None

    clock.now = datetime(2024, 1, 11, 7, 30, tzinfo=UTC)  # 23:30 in California: same day
    second = connector.fetch(["united", "united baggage"], first.cursor)
    assert second.problems == []
    assert [r for r, _ in fake_youtube.calls()[3:]] == ["videos", "commentThreads"]
    assert second.cursor["quota"] == {"day": "2024-01-10", "used": 104, "reported": True}

    clock.now = datetime(2024, 1, 11, 8, 0, tzinfo=UTC)  # midnight Pacific: a new quota day
    third = connector.fetch(["united", "united baggage"], second.cursor)
    assert [r for r, _ in fake_youtube.calls()[5:]] == ["search", "videos", "commentThreads"]
    assert third.cursor["quota"] == {"day": "2024-01-11", "used": 102, "reported": True}
    assert len(third.problems) == 1 and "2024-01-11" in third.problems[0]


def test_pacific_day_follows_daylight_saving() -> None:
    assert pacific_day(datetime(2024, 7, 1, 6, 59, tzinfo=UTC)).isoformat() == "2024-06-30"
    assert pacific_day(datetime(2024, 7, 1, 7, 0, tzinfo=UTC)).isoformat() == "2024-07-01"
    assert next_pacific_midnight(NOW) == datetime(2024, 1, 11, 8, 0, tzinfo=UTC)


def test_quota_exceeded_is_rate_limited_until_pacific_midnight(fake_youtube: FakeYouTube,
                                                               make: Make) -> None:
    fake_youtube.quota_limit = 50
    with pytest.raises(RateLimited) as caught:
        make().fetch(["united"], None)
    assert caught.value.retry_after == (datetime(2024, 1, 11, 8, tzinfo=UTC) - NOW).seconds
    assert "2024-01-11T08:00:00Z" in str(caught.value) and "quota" in str(caught.value)


def test_full_search_page_is_reported_once(fake_youtube: FakeYouTube, make: Make) -> None:
    fake_youtube.load_sample()
    connector = make(max_results=2)
    first = connector.fetch(["united"], None)
    assert len(first.problems) == 1 and "more than 2 new videos" in first.problems[0]
    assert connector.fetch(["united"], first.cursor).problems == []


@pytest.mark.parametrize("error", ["keyInvalid", "forbidden"])
def test_refused_key_is_auth_failed(fake_youtube: FakeYouTube, make: Make, error: str) -> None:
    fake_youtube.inject(fake.google_error(error))
    with pytest.raises(AuthFailed, match="YOUTUBE_API_KEY"):
        make().fetch(["united"], None)


def test_wrong_key_is_auth_failed(make: Make) -> None:
    with pytest.raises(AuthFailed, match="API key not valid"):
        make(api_key="wrong").fetch(["united"], None)


def test_comments_disabled_is_a_problem_once(fake_youtube: FakeYouTube, make: Make) -> None:
    fake_youtube.load_sample()
    fake_youtube.comments_disabled.add(WATCHED)
    connector = make(watch_video_ids=lambda: [WATCHED])
    first = connector.fetch([], None)
    assert [m.source_id for m in first.mentions] == [WATCHED]  # statistics still read
    assert len(first.problems) == 1
    assert "comments of video watched0001" in first.problems[0]
    assert "has disabled comments" in first.problems[0]
    assert connector.fetch([], first.cursor).problems == []


@pytest.mark.parametrize("status", [200, 502])
def test_html_page_is_transient(fake_youtube: FakeYouTube, make: Make, status: int) -> None:
    fake_youtube.inject(fake.html_page(status))
    with pytest.raises(TransientError) as caught:
        make().fetch(["united"], None)
    assert f"{fake_youtube.api_url}search" in str(caught.value)


def test_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="YOUTUBE_API_KEY"):
        YouTubeConnector("")
    with pytest.raises(ValueError, match="max_results"):
        YouTubeConnector("k", max_results=51)


# -- engagement refresh (videos.list) ------------------------------------------------------------


def test_refresh_rereads_view_counts_of_videos(fake_youtube: FakeYouTube, make: Make) -> None:
    fake_youtube.load_sample()
    fake_youtube.videos["5YGc4zOqozo"]["statistics"].update(viewCount="900000",
                                                            likeCount="20000")
    fresh = {m.source_id: m for m in make().refresh(
        ["5YGc4zOqozo", "UgzH6wS8Kj0mXj7PqS14AaABAg", "deleted0001"])}
    assert list(fresh) == ["5YGc4zOqozo"]  # comments are not re-read; deleted ones missing
    video = fresh["5YGc4zOqozo"]
    assert (video.engagement.score, video.engagement.likes) == (900000, 20000)
    assert [(name, params["id"]) for name, params in fake_youtube.calls()] == \
        [("videos", "5YGc4zOqozo,deleted0001")]
    assert fake_youtube.units_used == 1


def test_refresh_with_an_invalid_key_raises_auth_failed(fake_youtube: FakeYouTube,
                                                        make: Make) -> None:
    with pytest.raises(AuthFailed, match="YOUTUBE_API_KEY"):
        make(api_key="AIzaSy-wrong").refresh(["5YGc4zOqozo"])
