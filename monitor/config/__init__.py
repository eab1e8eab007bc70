"""The one config model. Unknown keys and wrong types fail at load with YAML path + line.

Every key except those DESIGN.md lists is optional, with the default documented in ``config.yaml``.

The package owns reading ``config.yaml``: this model and :func:`load_config`, YAML with line
numbers (``yamlsource``) and listen addresses (``listen``). May import: ``monitor.errors``,
``monitor.durations``, ``monitor.brands`` and ``monitor.alerts.rules`` (the routing section's
model). Must not import the CLI or the daemon; the daemon, the CLI, the spine and the stages may
import it.
"""

from __future__ import annotations

import difflib
import os
import re
import typing
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor.alerts.rules import RoutingConfig
from monitor.config.yamlsource import LoadedYaml, format_path, load_yaml
from monitor.durations import format_duration, parse_duration
from monitor.errors import ConfigError, QueryError

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrandConfig(_Strict):
    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    name: str = Field(min_length=1)
    query: str = Field(min_length=1)
    feeds: list[str] = Field(default_factory=list)  # RSS/Atom feeds about this brand only
    handles: list[str] = Field(default_factory=list)  # the brand's own accounts (@united)

    @field_validator("query")
    @classmethod
    def _query_parses(cls, value: str) -> str:
        from monitor.brands.query import parse_query

        try:
            parse_query(value)
        except QueryError as exc:
            raise ValueError(str(exc)) from exc
        return value


def _retention(value: object) -> timedelta:
    """A retention period: a duration like 90d, or 0 / "forever" to keep for ever."""
    if value in (0, "0", "forever"):
        return timedelta(0)
    return parse_duration(value)


Retention = Annotated[
    timedelta, BeforeValidator(_retention), PlainSerializer(format_duration, return_type=str)
]


class RetentionConfig(_Strict):
    # How long to keep each kind of data; 0 keeps it forever. Hourly volume is always kept.
    raw_payloads: Retention = timedelta(days=90)
    mentions: Retention = timedelta(0)


class ArchiveConfig(_Strict):
    url: str = "sqlite:///uproar.db"
    retention: RetentionConfig = Field(default_factory=RetentionConfig)


class ServeConfig(_Strict):
    listen: str = "127.0.0.1:8080"  # `uproar serve`: the read-only API and dashboard
    token: str = ""  # bearer token; required when listen is not a loopback address
    # The dashboard's address as people reach it (https://uproar.example.com); alerts link to
    # the story there. Empty: no link.
    public_url: str = ""


class ClassifierConfig(_Strict):
    model: str = "default"
    batch_size: int = Field(default=64, ge=1, le=4096)
    complaint_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    # Non-English mentions: classified by this model (a multilingual Hugging Face model id or
    # folder); empty: stored unclassified, never scored by the English model.
    multilingual_model: str = ""
    # A Hugging Face model's output labels (name or index) -> negative/neutral/positive, for
    # models whose label names do not say the sentiment (e.g. {LABEL_0: negative, ...}).
    labels: dict[str, Literal["negative", "neutral", "positive"]] = Field(default_factory=dict)


class DetectionConfig(_Strict):
    bucket: Duration = timedelta(minutes=5)
    window: Duration = timedelta(minutes=30)
    min_count: int = Field(default=5, ge=1)
    cooldown: Duration = timedelta(hours=2)
    history: Duration = timedelta(days=14)  # archive history used to warm baselines at start
    examples: int = Field(default=3, ge=1, le=10)
    story_similarity: float = Field(default=0.35, gt=0, le=1)  # to join a story (0-1)
    high_reach_followers: int = Field(default=100_000, ge=1)  # a complaint from this big an author

    @model_validator(mode="after")
    def _window_fits(self) -> DetectionConfig:
        if self.window < self.bucket:
            raise ValueError("window must be at least one bucket long")
        return self


class SlackConfig(_Strict):
    token: str = ""  # empty: alerts are printed to the console
    app_token: str = ""  # xapp-… app-level token: Socket Mode buttons (ack, resolve, silence)
    channel: str = "#brand-alerts"
    api_url: str = "https://slack.com/api/"
    timeout: Duration = timedelta(seconds=10)

    @field_validator("api_url")
    @classmethod
    def _slash(cls, value: str) -> str:
        _require_http(value)
        return value if value.endswith("/") else value + "/"


class AlertsConfig(RoutingConfig):  # routes, policies, inhibit, silences: monitor/alerts/rules.py
    slack: SlackConfig = Field(default_factory=SlackConfig)
    join_window: Duration = timedelta(hours=6)  # complaints this close join the open incident
    max_attempts: int = Field(default=8, ge=1)
    ops_channel: str = ""  # Slack channel told once when a source's credentials are refused


class HttpConfig(_Strict):
    listen: str = "127.0.0.1:9464"  # /healthz, /readyz, /metrics; ":9464" listens on every address

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        from monitor.config.listen import parse_listen

        parse_listen(value)
        return value


class RefreshConfig(_Strict):
    """Re-reading likes/reposts/replies of recent complaints, so detection sees them spread."""

    enabled: bool = True
    every: Duration = timedelta(minutes=10)
    max_age: Duration = timedelta(hours=48)  # complaints posted longer ago are left alone
    max_items: int = Field(default=500, ge=1, le=100_000)  # per source per refresh


class SourceConfig(_Strict):
    enabled: bool = False
    api_url: str = ""
    every: Duration = timedelta(minutes=5)
    jitter: Duration = timedelta(seconds=30)
    timeout: Duration = timedelta(seconds=20)
    lookback: Duration = timedelta(days=1)  # first poll: keep this much history, alert on none
    refresh: RefreshConfig | None = None  # None: the top-level refresh settings

    @field_validator("every")
    @classmethod
    def _not_too_fast(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=10):
            raise ValueError("polling more often than every 10s gets us banned; use 10s or more")
        return value

    @field_validator("api_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if value:
            _require_http(value)
        return value


class RSSSourceConfig(SourceConfig):
    enabled: bool = True
    feeds: list[str] = Field(default_factory=list)
    max_bytes: int = Field(default=5_000_000, ge=1024)
    concurrency: int = Field(default=8, ge=1, le=64)  # feeds fetched at once, all hosts
    per_host: int = Field(default=2, ge=1, le=16)  # requests at once to one host
    host_interval: Duration = timedelta(seconds=1)  # between request starts to one host

    @field_validator("feeds")
    @classmethod
    def _feeds_http(cls, value: list[str]) -> list[str]:
        for url in value:
            _require_http(url)
        return value


class TwitterSourceConfig(SourceConfig):
    api_url: str = "https://api.twitter.com/"
    bearer_token: str = ""
    max_pages: int = Field(default=10, ge=1, le=100)  # pages of page_size tweets per query per poll
    page_size: int = Field(default=100, ge=10, le=100)


class RedditSourceConfig(SourceConfig):
    api_url: str = "https://oauth.reddit.com/"
    auth_url: str = "https://www.reddit.com/"
    client_id: str = ""
    client_secret: str = ""
    user_agent: str = "python:uproar:0.1 (complaint monitor)"
    subreddits: list[str] = Field(default_factory=list)  # also read these subreddits' new posts
    limit: int = Field(default=100, ge=1, le=1000)


class YouTubeSourceConfig(SourceConfig):
    api_url: str = "https://www.googleapis.com/youtube/v3/"
    api_key: str = ""
    every: Duration = timedelta(minutes=30)
    daily_quota: int = Field(default=10_000, ge=100)  # the Google project's daily units
    max_results: int = Field(default=50, ge=1, le=50)
    channel_ids: list[str] = Field(default_factory=list)  # the brand's own channels (comments)


class BlueskySourceConfig(SourceConfig):
    api_url: str = "https://bsky.social/xrpc/"
    handle: str = ""
    app_password: str = ""
    limit: int = Field(default=100, ge=1, le=100)
    max_pages: int = Field(default=5, ge=1, le=100)


class MastodonSourceConfig(SourceConfig):
    api_url: str = "https://mastodon.social/"
    access_token: str = ""  # without it only hashtag timelines can be read
    hashtags: list[str] = Field(default_factory=list)
    limit: int = Field(default=40, ge=1, le=40)
    max_pages: int = Field(default=5, ge=1, le=100)


class HackerNewsSourceConfig(SourceConfig):
    api_url: str = "https://hn.algolia.com/api/v1/"
    overlap: Duration = timedelta(minutes=10)  # re-read this much before the last poll's newest
    hits_per_page: int = Field(default=100, ge=1, le=1000)
    max_pages: int = Field(default=10, ge=1, le=100)


class PluginSourceConfig(SourceConfig):
    """A source added by a plugin package: the common keys, plus any the plugin reads."""

    model_config = ConfigDict(extra="allow", frozen=True)


class SourcesConfig(_Strict):
    # Other keys are sources of installed plugins (monitor.daemon.sources checks they are
    # installed).
    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, PluginSourceConfig] = Field(init=False)

    rss: RSSSourceConfig = Field(default_factory=RSSSourceConfig)
    twitter: TwitterSourceConfig = Field(default_factory=TwitterSourceConfig)
    reddit: RedditSourceConfig = Field(default_factory=RedditSourceConfig)
    youtube: YouTubeSourceConfig = Field(default_factory=YouTubeSourceConfig)
    bluesky: BlueskySourceConfig = Field(default_factory=BlueskySourceConfig)
    mastodon: MastodonSourceConfig = Field(default_factory=MastodonSourceConfig)
    hackernews: HackerNewsSourceConfig = Field(default_factory=HackerNewsSourceConfig)

    def all(self) -> dict[str, SourceConfig]:
        """Every configured source: the built-in ones, then plugins' in config order."""
        return {
            **{name: getattr(self, name) for name in type(self).model_fields},
            **(self.model_extra or {}),
        }

    def enabled(self) -> dict[str, SourceConfig]:
        return {name: source for name, source in self.all().items() if source.enabled}


class LoggingConfig(_Strict):
    level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    format: str = Field(default="plain", pattern=r"^(plain|json)$")  # json: one object a line


class Config(_Strict):
    brands: list[BrandConfig] = Field(min_length=1)
    archive: ArchiveConfig = Field(default_factory=ArchiveConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    sources: SourcesConfig = Field(default_factory=SourcesConfig)
    refresh: RefreshConfig = Field(default_factory=RefreshConfig)  # a source's refresh: wins
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @field_validator("brands")
    @classmethod
    def _unique_keys(cls, value: list[BrandConfig]) -> list[BrandConfig]:
        seen: set[str] = set()
        for brand in value:
            if brand.key in seen:
                raise ValueError(f"brand key {brand.key!r} is used twice; keys must be unique")
            seen.add(brand.key)
        return value


def _require_http(url: str) -> None:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"expected an http:// or https:// URL, got {url!r}")


class LoadedConfig:
    """A validated config plus where it came from and notes for ``check-config``."""

    def __init__(
        self, config: Config, path: Path, unset_vars: list[str],
        loaded: LoadedYaml | None = None,
    ) -> None:
        self.config = config
        self.path = path
        self.unset_vars = unset_vars
        self.loaded = loaded

    def located(self, problems: list[str]) -> list[str]:
        """``problems`` that start with a config path (``sources.twitter.bearer_token: ...``),
        with the line of that path (or of its closest parent) in the file added."""
        if self.loaded is None:
            return problems
        out = []
        for problem in problems:
            where, sep, rest = problem.partition(": ")
            line = self.loaded.line_of(_parse_path(where)) if sep and " " not in where else None
            out.append(f"{where} (line {line}): {rest}" if line else problem)
        return out


def _parse_path(text: str) -> tuple[str | int, ...]:
    """``brands[0].key`` -> ("brands", 0, "key")."""
    parts: list[str | int] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", text):
        parts.append(int(index) if index else name)
    return tuple(parts)


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """Load and validate a config file; raises :class:`ConfigError` listing every problem."""
    path = Path(path)
    env = os.environ if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(
            [f"no such file; copy the example with: cp config.yaml {path}"], str(path)
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read: {exc}"], str(path)) from exc
    loaded = load_yaml(text, str(path), env)
    return LoadedConfig(parse_config(loaded, str(path)), path, loaded.unset_vars, loaded)


def parse_config(loaded: LoadedYaml, source: str) -> Config:
    if not isinstance(loaded.data, dict):
        raise ConfigError(["line 1: the config must be a mapping of keys (brands:, sources:, ...)"],
                          source)
    try:
        return Config.model_validate(loaded.data)
    except ValidationError as exc:
        raise ConfigError(_problems(exc, loaded), source) from exc


def config_from_dict(data: dict[str, Any]) -> Config:
    """Validate a config built in code (tests, replay defaults)."""
    return parse_config(LoadedYaml(data=data), "config")


def _problems(exc: ValidationError, loaded: LoadedYaml) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        # Errors from a model validator on the model itself carry no field name.
        path = tuple(p for p in loc if isinstance(p, str | int))
        line = loaded.line_of(path)
        where = format_path(path) + (f" (line {line})" if line else "")
        problems.append(f"{where}: {_message(err, path, quoted=path in loaded.quoted)}")
    return problems


_NUMBERS = {"int_parsing": "a whole number like 5", "int_type": "a whole number like 5",
            "float_parsing": "a number like 0.5", "bool_parsing": "true or false"}
_ALTERNATIVES = re.compile(r"^\^\(([\w.-]+(?:\|[\w.-]+)+)\)\$$")


def _message(err: Any, path: tuple[str | int, ...] = (), *, quoted: bool = False) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key" + _did_you_mean(path) + "; check the spelling against config.yaml"
    if kind == "missing":
        return "required key is missing"
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if kind == "string_pattern_mismatch" and "key" in [str(p) for p in err["loc"]][-1:]:
        return "brand key must be lower-case letters, digits, '-' or '_' (like 'united')"
    if kind == "string_pattern_mismatch":
        pattern = str((err.get("ctx") or {}).get("pattern", ""))
        allowed = _ALTERNATIVES.match(pattern)
        if allowed:
            return f"expected one of {', '.join(allowed.group(1).split('|'))}, got {err['input']!r}"
    if kind in _NUMBERS and isinstance(err.get("input"), str):
        if quoted and _unquoted_would_parse(err["input"]):
            return f"{msg} (got {err['input']!r}; remove the quotes if it is a number)"
        return f"expected {_NUMBERS[kind]}, got {err['input']!r}"
    return msg


def _unquoted_would_parse(text: str) -> bool:
    import yaml

    try:
        return not isinstance(yaml.safe_load(text), str)
    except yaml.YAMLError:
        return False


def _did_you_mean(path: tuple[str | int, ...]) -> str:
    """`` (did you mean 'every'?)`` for a misspelled key, from the keys valid at its place."""
    if not path or not isinstance(path[-1], str):
        return ""
    close = difflib.get_close_matches(path[-1], _keys_at(path[:-1]), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _keys_at(path: tuple[str | int, ...]) -> list[str]:
    """The keys the config model accepts under ``path`` (a mapping), or none when unknown."""
    model: Any = Config
    for part in path:
        if isinstance(part, int):
            continue  # an item of a list: the same item model
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        model = _model_of(field.annotation)
        if model is None:
            return []
    return list(model.model_fields) if hasattr(model, "model_fields") else []


def _model_of(annotation: Any) -> Any:
    """The pydantic model inside an annotation (``X``, ``list[X]``, ``X | None``...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
