"""Build connectors from the config; find installed connectors through entry points.

Connectors are plugins: every package may declare classes in the ``uproar.connectors``
entry-point group (``name = "package.module:Class"``), Uproar's own seven among them (see
``pyproject.toml``). A plugin's source is configured under ``sources.<name>`` with the common
keys (``enabled``, ``api_url``, ``every``...) plus any of its own, and is built with
:meth:`connectors.base.Connector.from_config`. When Uproar's own package metadata is missing
(run from a source tree that was never installed), the built-in table below is used instead.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import entry_points
from typing import Any

from connectors.base import Connector
from monitor.config import Config, RefreshConfig, RSSSourceConfig, SourceConfig
from monitor.errors import ConfigError

log = logging.getLogger("monitor.sources")  # its name before the move: log lines unchanged

# The entry-point group a package declares its connectors in.
ENTRY_POINT_GROUP = "uproar.connectors"

# Uproar's own connectors, as declared in pyproject.toml: the fallback when the package metadata
# is missing, and the sources whose settings are typed in monitor.config.
BUILTIN: dict[str, str] = {
    "rss": "connectors.rss:RSSConnector",
    "twitter": "connectors.twitter:TwitterConnector",
    "reddit": "connectors.reddit:RedditConnector",
    "youtube": "connectors.youtube:YouTubeConnector",
    "bluesky": "connectors.bluesky:BlueskyConnector",
    "mastodon": "connectors.mastodon:MastodonConnector",
    "hackernews": "connectors.hackernews:HackerNewsConnector",
}
AVAILABLE = tuple(BUILTIN)

# Credentials each keyed source needs, as (config key, environment variable in config.yaml).
CREDENTIALS = {
    "twitter": [("bearer_token", "TWITTER_BEARER_TOKEN")],
    "reddit": [("client_id", "REDDIT_CLIENT_ID"), ("client_secret", "REDDIT_CLIENT_SECRET")],
    "youtube": [("api_key", "YOUTUBE_API_KEY")],
    "bluesky": [("handle", "BLUESKY_HANDLE"), ("app_password", "BLUESKY_APP_PASSWORD")],
}

# Keys of every source that belong to the scheduler, not to the connector.
_SCHEDULER_KEYS = frozenset({"enabled", "every", "jitter", "lookback", "refresh"})


@dataclass(frozen=True, slots=True)
class RegisteredConnector:
    """One installed connector: its source name, ``module:Class`` and the package that has it."""

    name: str
    target: str
    package: str | None = None

    def load(self) -> type[Connector]:
        """Import the connector class; raises :class:`ConfigError` saying what to install."""
        module_name, _, attr = self.target.partition(":")
        where = f"sources.{self.name}"
        try:
            found: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                found = getattr(found, part)
        except ImportError as exc:
            raise ConfigError([f"{where}: the {self.name} connector cannot be loaded: {exc}"]
                              ) from exc
        except AttributeError as exc:
            raise ConfigError([f"{where}: {self.target} (from {self.package or 'unknown'}) "
                               f"does not exist: {exc}"]) from exc
        if not (isinstance(found, type) and issubclass(found, Connector)):
            raise ConfigError([f"{where}: {self.target} (from {self.package or 'unknown'}) is "
                               "not a connectors.base.Connector subclass"])
        return found


def registered_connectors() -> dict[str, RegisteredConnector]:
    """Every installed connector by source name: entry points of :data:`ENTRY_POINT_GROUP`,
    with the built-in table filling in what the metadata does not declare. A built-in name
    always means the built-in connector (a plugin cannot replace it silently)."""
    found: dict[str, RegisteredConnector] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        package = ep.dist.name if ep.dist is not None else None
        if ep.name in BUILTIN and ep.value != BUILTIN[ep.name]:
            log.warning("ignoring connector %r from %s: %s is built in", ep.name,
                        package or "an unknown package", ep.name)
            continue
        found.setdefault(ep.name, RegisteredConnector(ep.name, ep.value, package))
    for name, target in BUILTIN.items():
        found.setdefault(name, RegisteredConnector(name, target, "uproar"))
    return found


def refresh_settings(config: Config, name: str) -> RefreshConfig:
    """A source's engagement-refresh settings: its own ``refresh:``, else the top-level one."""
    source = config.sources.all().get(name)
    own = source.refresh if source is not None else None
    return own if own is not None else config.refresh


def source_problems(config: Config) -> list[str]:
    problems = []
    installed = registered_connectors()
    for name in config.sources.all():
        if name not in installed:
            problems.append(
                f"sources.{name}: no connector called {name!r} is installed (installed: "
                f"{', '.join(installed)}); check the spelling, or install the package that "
                "provides it"
            )
    for name in config.sources.enabled():
        if name in installed:
            try:
                installed[name].load()
            except ConfigError as exc:
                problems.extend(exc.problems)
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


def build_connector(
    name: str, config: Config, clock: Callable[[], datetime] | None = None
) -> Connector:
    """The connector of source ``name``; ``clock`` (the daemon's) is handed to the built-in
    connectors that read the time (first-poll lookback, rate-limit resets)."""
    if name not in BUILTIN:
        return build_plugin(name, config)
    timed: dict[str, Any] = {} if clock is None else {"clock": clock}
    if name == "rss":
        from connectors.rss import RSSConnector

        rss: RSSSourceConfig = config.sources.rss
        return RSSConnector(
            all_feeds(config), timeout=rss.timeout.total_seconds(), max_bytes=rss.max_bytes,
            concurrency=rss.concurrency, per_host=rss.per_host,
            host_interval=rss.host_interval.total_seconds(), **timed,
        )
    if name == "twitter":
        from connectors.twitter import TwitterConnector

        tw = config.sources.twitter
        return TwitterConnector(
            tw.bearer_token, api_url=tw.api_url, max_pages=tw.max_pages, page_size=tw.page_size,
            timeout=tw.timeout.total_seconds(),
            **timed,
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
            **timed,
        )
    if name == "bluesky":
        from connectors.bluesky import BlueskyConnector

        bs = config.sources.bluesky
        return BlueskyConnector(
            bs.handle, bs.app_password, api_url=bs.api_url, limit=bs.limit,
            max_pages=bs.max_pages, timeout=bs.timeout.total_seconds(),
            **timed,
        )
    if name == "mastodon":
        from connectors.mastodon import MastodonConnector

        md = config.sources.mastodon
        return MastodonConnector(
            api_url=md.api_url, access_token=md.access_token, hashtags=md.hashtags,
            limit=md.limit, max_pages=md.max_pages, timeout=md.timeout.total_seconds(),
            **timed,
        )
    if name == "hackernews":
        from connectors.hackernews import HackerNewsConnector

        hn = config.sources.hackernews
        return HackerNewsConnector(
            api_url=hn.api_url, overlap=int(hn.overlap.total_seconds()),
            hits_per_page=hn.hits_per_page, max_pages=hn.max_pages,
            timeout=hn.timeout.total_seconds(),
            **timed,
        )
    raise ConfigError(  # pragma: no cover - every BUILTIN name is handled above
        [f"sources.{name}: the {name} source is not available in this version of Uproar"]
    )


def build_plugin(name: str, config: Config) -> Connector:
    """A plugin's connector, built by its class from the ``sources.<name>`` section."""
    registered = registered_connectors().get(name)
    if registered is None:
        raise ConfigError([f"sources.{name}: no connector called {name!r} is installed"])
    cls = registered.load()
    section: SourceConfig = config.sources.all()[name]
    settings = {k: v for k, v in section.model_dump().items() if k not in _SCHEDULER_KEYS}
    settings["timeout"] = section.timeout.total_seconds()
    try:
        return cls.from_config(settings)
    except (TypeError, ValueError) as exc:
        raise ConfigError([f"sources.{name}: the {name} connector ({registered.target}) "
                           f"refused its settings: {exc}"]) from exc


def enabled_connectors(
    config: Config, only: str | None = None, clock: Callable[[], datetime] | None = None
) -> dict[str, Connector]:
    problems = source_problems(config)
    if problems:
        raise ConfigError(problems)
    names = list(config.sources.enabled())
    if only is not None:
        known = config.sources.all()
        if only not in known:
            raise ConfigError([f"--source {only}: no such source (known: {', '.join(known)})"])
        if only not in names:
            raise ConfigError([f"sources.{only}.enabled: source {only} is disabled in the config"])
        names = [only]
    return {name: build_connector(name, config, clock) for name in names}


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
