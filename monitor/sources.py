"""Build connectors from the config. Sources not yet available are reported by check-config."""

from __future__ import annotations

from connectors.base import Connector
from monitor.config import Config, RSSSourceConfig
from monitor.errors import ConfigError

# Sources this version can poll. Others are accepted in the config (so a config written for a
# newer Uproar still validates) but refused when enabled.
AVAILABLE = ("rss", "twitter", "reddit", "youtube", "bluesky", "mastodon", "hackernews")

# Credentials each keyed source needs, as (config key, environment variable in config.yaml).
CREDENTIALS = {
    "twitter": [("bearer_token", "TWITTER_BEARER_TOKEN")],
    "reddit": [("client_id", "REDDIT_CLIENT_ID"), ("client_secret", "REDDIT_CLIENT_SECRET")],
    "youtube": [("api_key", "YOUTUBE_API_KEY")],
    "bluesky": [("handle", "BLUESKY_HANDLE"), ("app_password", "BLUESKY_APP_PASSWORD")],
}


def source_problems(config: Config) -> list[str]:
    problems = []
    for name in config.sources.enabled():
        if name not in AVAILABLE:
            problems.append(
                f"sources.{name}.enabled: the {name} source is not available in this version "
                f"of Uproar; set enabled: false (available: {', '.join(AVAILABLE)})"
            )
        for key, env in CREDENTIALS.get(name, []):
            if not getattr(config.sources.enabled()[name], key):
                problems.append(
                    f"sources.{name}.{key}: {name} is enabled but has no {key}; set {env} in "
                    "the environment (or set enabled: false)"
                )
    rss = config.sources.rss
    if rss.enabled and not all_feeds(config):
        problems.append(
            "sources.rss.feeds: rss is enabled but no feeds are configured; add feed URLs "
            "under sources.rss.feeds or a brand's feeds, or set enabled: false"
        )
    return problems


def all_feeds(config: Config) -> list[str]:
    """Global feeds then each brand's feeds, without repeats, in config order."""
    feeds = list(config.sources.rss.feeds)
    for brand in config.brands:
        feeds.extend(brand.feeds)
    return list(dict.fromkeys(feeds))


def build_connector(name: str, config: Config) -> Connector:
    if name == "rss":
        from connectors.rss import RSSConnector

        rss: RSSSourceConfig = config.sources.rss
        return RSSConnector(
            all_feeds(config), timeout=rss.timeout.total_seconds(), max_bytes=rss.max_bytes
        )
    if name == "twitter":
        from connectors.twitter import TwitterConnector

        tw = config.sources.twitter
        return TwitterConnector(
            tw.bearer_token, api_url=tw.api_url, max_pages=tw.max_pages, page_size=tw.page_size,
            timeout=tw.timeout.total_seconds(),
        )
    if name == "reddit":
        from connectors.reddit import RedditConnector

        rd = config.sources.reddit
        return RedditConnector(
            rd.client_id, rd.client_secret, user_agent=rd.user_agent, api_url=rd.api_url,
            auth_url=rd.auth_url, subreddits=rd.subreddits, limit=rd.limit,
            timeout=rd.timeout.total_seconds(),
        )
    if name == "youtube":
        from connectors.youtube import YouTubeConnector

        yt = config.sources.youtube
        return YouTubeConnector(
            yt.api_key, api_url=yt.api_url, daily_quota=yt.daily_quota,
            max_results=yt.max_results, timeout=yt.timeout.total_seconds(),
            channel_ids=yt.channel_ids,
        )
    if name == "bluesky":
        from connectors.bluesky import BlueskyConnector

        bs = config.sources.bluesky
        return BlueskyConnector(
            bs.handle, bs.app_password, api_url=bs.api_url, limit=bs.limit,
            max_pages=bs.max_pages, timeout=bs.timeout.total_seconds(),
        )
    if name == "mastodon":
        from connectors.mastodon import MastodonConnector

        md = config.sources.mastodon
        return MastodonConnector(
            api_url=md.api_url, access_token=md.access_token, hashtags=md.hashtags,
            limit=md.limit, max_pages=md.max_pages, timeout=md.timeout.total_seconds(),
        )
    if name == "hackernews":
        from connectors.hackernews import HackerNewsConnector

        hn = config.sources.hackernews
        return HackerNewsConnector(
            api_url=hn.api_url, overlap=int(hn.overlap.total_seconds()),
            hits_per_page=hn.hits_per_page, max_pages=hn.max_pages,
            timeout=hn.timeout.total_seconds(),
        )
    raise ConfigError(
        [f"sources.{name}: the {name} source is not available in this version of Uproar"]
    )


def enabled_connectors(config: Config, only: str | None = None) -> dict[str, Connector]:
    problems = source_problems(config)
    if problems:
        raise ConfigError(problems)
    names = list(config.sources.enabled())
    if only is not None:
        if only not in type(config.sources).model_fields:
            known = ", ".join(type(config.sources).model_fields)
            raise ConfigError([f"--source {only}: no such source (known: {known})"])
        if only not in names:
            raise ConfigError([f"sources.{only}.enabled: source {only} is disabled in the config"])
        names = [only]
    return {name: build_connector(name, config) for name in names}


def youtube_quota_note(config: Config) -> str | None:
    """What the configured YouTube schedule costs in daily quota units, for check-config."""
    yt = config.sources.youtube
    if not yt.enabled:
        return None
    from connectors.youtube import YouTubeConnector

    searches = len(YouTubeConnector.searches_for(brand_queries(config)))
    units = YouTubeConnector.units_per_day(yt.every, searches)
    verdict = "fits" if units <= yt.daily_quota else "EXCEEDS"
    return (
        f"youtube: {searches} searches every {int(yt.every.total_seconds() // 60)} min cost about "
        f"{units:,} of {yt.daily_quota:,} daily units ({verdict}; search.list costs 100 units)"
    )


def brand_queries(config: Config) -> list[str]:
    return [b.query for b in config.brands]
