"""Build connectors from the config. Sources not yet available are reported by check-config."""

from __future__ import annotations

from connectors.base import Connector
from monitor.config import Config, RSSSourceConfig
from monitor.errors import ConfigError

# Sources this version can poll. Others are accepted in the config (so a config written for a
# newer Uproar still validates) but refused when enabled.
AVAILABLE = ("rss",)


def source_problems(config: Config) -> list[str]:
    problems = []
    for name in config.sources.enabled():
        if name not in AVAILABLE:
            problems.append(
                f"sources.{name}.enabled: the {name} source is not available in this version "
                f"of Uproar; set enabled: false (available: {', '.join(AVAILABLE)})"
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


def brand_queries(config: Config) -> list[str]:
    return [b.query for b in config.brands]
