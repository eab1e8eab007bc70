"""Who hears about an alert, and when: routes, escalation policies, inhibition, silences,
quiet hours. Modelled on Prometheus Alertmanager (routes with matchers, ``continue``,
inhibition, silences, time intervals) and PagerDuty (escalation levels with timeouts, repeat).

The ``alerts:`` section of the config holds these models (``monitor.config.AlertsConfig``);
``Router`` answers, for one alert's facts at one moment, which routes and policies it takes,
whether it is muted, and until when quiet hours hold it back. It reads nothing but its inputs:
silences from the archive are passed in by the caller.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from models.base import parse_severity, severity_words
from monitor.durations import format_duration, parse_duration
from monitor.signals import SEVERITY_RANK

RuleDuration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
SeverityName = Literal["info", "warning", "critical"]

# What a matcher may look at; "source" matches when any quoted post came from that source.
MATCH_KEYS = ("brand", "severity", "signal", "source")
# The alert's complaint severity (0-4, models.base.SEVERITY_LEVELS): the median level of the
# complaints it quotes; ``complaint_severity_min: 3`` (or ``accusation``) routes on it.
FACT_KEYS = (*MATCH_KEYS, "complaint_severity")
# Slack user ids (U…/W…), user group ids (S…), or the special mentions here/channel.
MENTION = re.compile(r"^(@?(here|channel)|[UWS][A-Z0-9]{2,30})$")
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")
EMAIL = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")
# The implicit route and policy when the config names none.
DEFAULT_NAME = "default"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _critical() -> list[SeverityName]:
    return ["critical"]


def _below_critical() -> list[SeverityName]:
    return ["warning", "info"]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


MatchValues = Annotated[list[str], BeforeValidator(_as_list)]


class Matchers(_Rule):
    """Each key given must match (a value or any of a list); keys not given match anything."""

    brand: MatchValues | None = None
    severity: MatchValues | None = None
    signal: MatchValues | None = None
    source: MatchValues | None = None
    # Complaint severity from this level up (0-4 or its words: disapproval, accusation, blame).
    complaint_severity_min: int | None = None

    @field_validator("complaint_severity_min", mode="before")
    @classmethod
    def _complaint_level(cls, value: Any) -> int | None:
        return None if value is None else parse_severity(value)

    @field_validator("severity")
    @classmethod
    def _severities(cls, value: list[str] | None) -> list[str] | None:
        for item in value or []:
            if item not in SEVERITY_RANK:
                raise ValueError(f"severity must be info, warning or critical, got {item!r}")
        return value

    def matches(self, facts: AlertFacts) -> bool:
        for key in MATCH_KEYS:
            wanted = getattr(self, key)
            if wanted is None:
                continue
            if key == "source":
                if not set(wanted) & set(facts.sources):
                    return False
            elif getattr(facts, key) not in wanted:
                return False
        if self.complaint_severity_min is not None:
            level = facts.complaint_severity
            if level is None or level < self.complaint_severity_min:
                return False
        return True

    def describe(self) -> str:
        parts = [
            f"{key}={'|'.join(getattr(self, key))}"
            for key in MATCH_KEYS
            if getattr(self, key) is not None
        ]
        if self.complaint_severity_min is not None:
            level = self.complaint_severity_min
            parts.append(f"complaint_severity>={level} ({severity_words(level)})")
        return ", ".join(parts) or "anything"


class QuietHours(_Rule):
    """Hold back alerts between ``start`` and ``end`` local time (crossing midnight is fine) in
    ``timezone`` (IANA name); severities in ``except`` (default critical) are never held."""

    start: time
    end: time
    timezone: str = "UTC"
    days: list[str] = Field(default_factory=list)  # the days a quiet period starts; [] = every day
    except_: list[SeverityName] = Field(default_factory=_critical, alias="except")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name like Europe/Berlin"
            ) from exc
        return value

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        days = [d.lower()[:3] for d in value]
        for day in days:
            if day not in WEEKDAYS:
                raise ValueError(f"days are mon, tue, wed, thu, fri, sat, sun; got {day!r}")
        return days

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet_hours start and end are the same time")
        return self

    def holds_until(self, now: datetime, severity: str) -> datetime | None:
        """The end of the quiet period ``now`` falls in (UTC), or None if it is not quiet."""
        if severity in self.except_:
            return None
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone)
        for offset in (0, -1):
            day = local.date() + timedelta(days=offset)
            if self.days and WEEKDAYS[day.weekday()] not in self.days:
                continue
            begins = _local(day, self.start, zone)
            end_day = day if self.end > self.start else day + timedelta(days=1)
            ends = _local(end_day, self.end, zone)
            if begins <= local < ends:
                return ends.astimezone(UTC)
        return None


def _local(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone)


class Level(_Rule):
    """One escalation level: ``after`` this long unacknowledged, tell these people."""

    after: RuleDuration = timedelta(0)
    channel: str | None = None  # level 0: where the thread lives; later: also posted there
    mention: list[str] = Field(default_factory=list)  # U…/W… users, S… user groups, here
    dm: list[str] = Field(default_factory=list)  # U… users, sent a direct message
    webhook: list[str] = Field(default_factory=list)  # names under alerts.webhooks
    email: list[str] = Field(default_factory=list)  # addresses, sent through alerts.smtp

    @field_validator("email")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for item in value:
            if not EMAIL.match(item):
                raise ValueError(f"email {item!r} is not an address like pr@example.com")
        return value

    @field_validator("mention")
    @classmethod
    def _mentions(cls, value: list[str]) -> list[str]:
        for item in value:
            if not MENTION.match(item):
                raise ValueError(
                    f"mention {item!r} is not a Slack id: use a user id like U024BE7LH, a user "
                    "group id like S0614TZR7, or 'here' (names change, ids do not)"
                )
        return [item.lstrip("@") for item in value]

    @field_validator("dm")
    @classmethod
    def _users(cls, value: list[str]) -> list[str]:
        for item in value:
            if not USER_ID.match(item):
                raise ValueError(f"dm {item!r} is not a Slack user id like U024BE7LH")
        return value


class Policy(_Rule):
    """Ordered levels; after the last, start again from the first ``repeat`` more times,
    ``repeat_interval`` after the last level fired."""

    levels: list[Level] = Field(min_length=1)
    repeat: int = Field(default=0, ge=0, le=20)
    repeat_interval: RuleDuration = timedelta(minutes=30)

    @model_validator(mode="after")
    def _ordered(self) -> Policy:
        if self.levels[0].after:
            raise ValueError("the first level is the alert itself: its after must be 0")
        for earlier, later in zip(self.levels, self.levels[1:], strict=False):
            if later.after <= earlier.after:
                raise ValueError("levels must have increasing after values (like 0, 15m, 45m)")
        if self.repeat and self.repeat_interval <= timedelta(0):
            raise ValueError("repeat_interval must be more than 0 when repeat is set")
        return self

    def offset(self, loop: int, level: int) -> timedelta:
        """When (level, loop) fires, counted from the alert's first post."""
        cycle = self.levels[-1].after + self.repeat_interval
        return cycle * loop + self.levels[level].after


class Route(_Rule):
    name: str = ""
    match: Matchers = Field(default_factory=Matchers)
    policy: str = DEFAULT_NAME
    continue_: bool = Field(default=False, alias="continue")
    quiet_hours: QuietHours | None = None


class InhibitRule(_Rule):
    """An open incident of severity ``when`` for a brand mutes new alerts of ``mutes`` for it."""

    when: SeverityName = "critical"
    mutes: list[SeverityName] = Field(default_factory=_below_critical)


class SilenceRule(_Rule):
    """A silence written in the config (the CLI stores others in the archive)."""

    match: Matchers = Field(default_factory=Matchers)
    until: datetime
    reason: str = Field(min_length=1)

    @field_validator("until")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class WebhookTarget(_Rule):
    """A generic JSON webhook, signed: ``X-Uproar-Signature: sha256=HMAC(secret, ts.body)``."""

    url: str
    secret: str = Field(min_length=16)  # shared with the receiver; from the environment
    timeout: RuleDuration = timedelta(seconds=10)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value


class SmtpConfig(_Rule):
    """The mail server for email targets and digests; empty ``host``: no email."""

    host: str = ""
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str = ""
    password: str = ""
    sender: str = Field(default="uproar@localhost", alias="from")
    timeout: RuleDuration = timedelta(seconds=20)


class DigestConfig(_Rule):
    """Once a day per brand, at ``at`` local time: the last 24 hours in numbers."""

    enabled: bool = False
    at: time = time(8, 0)
    timezone: str = "UTC"
    channel: str | None = None  # default: alerts.slack.channel
    email: list[str] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return QuietHours._zone(value)

    @field_validator("email")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        return Level._addresses(value)


class RoutingConfig(_Rule):
    """The rule keys of ``alerts:`` (mixed into ``AlertsConfig``)."""

    routes: list[Route] = Field(default_factory=list)
    policies: dict[str, Policy] = Field(default_factory=dict)
    inhibit: list[InhibitRule] = Field(default_factory=lambda: [InhibitRule()])
    silences: list[SilenceRule] = Field(default_factory=list)
    ack_reaction: str = "white_check_mark"  # a reaction of this name acknowledges
    reactions_every: RuleDuration = timedelta(seconds=30)  # how often reactions are read
    channel_interval: RuleDuration = timedelta(seconds=1)  # at most one post per channel per this
    webhooks: dict[str, WebhookTarget] = Field(default_factory=dict)
    smtp: SmtpConfig = Field(default_factory=SmtpConfig)
    digest: DigestConfig = Field(default_factory=DigestConfig)

    @model_validator(mode="after")
    def _known_policies(self) -> RoutingConfig:
        for index, route in enumerate(self.routes):
            if route.policy != DEFAULT_NAME and route.policy not in self.policies:
                known = ", ".join(sorted(self.policies)) or "none defined"
                raise ValueError(
                    f"routes[{index}] uses policy {route.policy!r}, which is not under "
                    f"alerts.policies (known: {known})"
                )
        for name, policy in self.policies.items():
            for number, level in enumerate(policy.levels, 1):
                for hook in level.webhook:
                    if hook not in self.webhooks:
                        raise ValueError(
                            f"policy {name!r} level {number} sends to webhook {hook!r}, which "
                            "is not under alerts.webhooks"
                        )
                if level.email and not self.smtp.host:
                    raise ValueError(
                        f"policy {name!r} level {number} sends email: set alerts.smtp.host"
                    )
        if self.digest.enabled and self.digest.email and not self.smtp.host:
            raise ValueError("alerts.digest sends email: set alerts.smtp.host")
        return self


# -- deciding ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertFacts:
    """What routes match on."""

    brand: str
    severity: str
    signal: str
    sources: tuple[str, ...] = ()
    complaint_severity: int | None = None  # 0-4; None when the classifier gives none

    @classmethod
    def parse(cls, text: str) -> AlertFacts:
        """``brand=acme,severity=warning,signal=volume,source=twitter,complaint_severity=3``
        (for --explain)."""
        values: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            if not sep or key.strip() not in FACT_KEYS:
                raise ValueError(
                    f"{part!r}: expected key=value with key one of {', '.join(FACT_KEYS)}"
                )
            values[key.strip()] = value.strip()
        severity = values.get("severity", "warning")
        if severity not in SEVERITY_RANK:
            raise ValueError(f"severity must be info, warning or critical, got {severity!r}")
        return cls(
            brand=values.get("brand", ""),
            severity=severity,
            signal=values.get("signal", "complaint_volume"),
            sources=tuple(filter(None, values.get("source", "").split("|"))),
            complaint_severity=(
                parse_severity(values["complaint_severity"])
                if "complaint_severity" in values
                else None
            ),
        )


@dataclass(frozen=True, slots=True)
class ActiveSilence:
    id: int | None  # None: from the config
    matchers: Matchers
    until: datetime
    reason: str

    def describe(self) -> str:
        where = f"silence #{self.id}" if self.id is not None else "config silence"
        return f"{where} until {self.until:%Y-%m-%d %H:%M} UTC ({self.reason})"


@dataclass(frozen=True, slots=True)
class MatchedRoute:
    index: int  # -1 for the implicit default route
    name: str
    policy_name: str
    policy: Policy
    quiet_hours: QuietHours | None


@dataclass(frozen=True, slots=True)
class Decision:
    """Where an alert goes now: the routes it takes, the thread's channel, and why it waits."""

    routes: tuple[MatchedRoute, ...]
    channel: str
    silenced_by: ActiveSilence | None = None
    quiet_until: datetime | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def muted(self) -> bool:
        return self.silenced_by is not None


class Router:
    """Matches alert facts against the configured routes (first match wins unless continue)."""

    def __init__(self, rules: RoutingConfig, default_channel: str) -> None:
        self.rules = rules
        self.default_channel = default_channel
        default_policy = rules.policies.get(DEFAULT_NAME) or Policy(
            levels=[Level(channel=default_channel)]
        )
        self.policies: dict[str, Policy] = {**rules.policies, DEFAULT_NAME: default_policy}

    def match(self, facts: AlertFacts) -> list[MatchedRoute]:
        matched: list[MatchedRoute] = []
        for index, route in enumerate(self.rules.routes):
            if not route.match.matches(facts):
                continue
            matched.append(
                MatchedRoute(
                    index,
                    route.name or f"routes[{index}]",
                    route.policy,
                    self.policies[route.policy],
                    route.quiet_hours,
                )
            )
            if not route.continue_:
                break
        if not matched:
            matched.append(
                MatchedRoute(-1, DEFAULT_NAME, DEFAULT_NAME, self.policies[DEFAULT_NAME], None)
            )
        return matched

    def silence_for(
        self, facts: AlertFacts, now: datetime, stored: Iterable[ActiveSilence] = ()
    ) -> ActiveSilence | None:
        from_config = (
            ActiveSilence(None, s.match, s.until, s.reason) for s in self.rules.silences
        )
        for silence in (*from_config, *stored):
            if silence.until > now and silence.matchers.matches(facts):
                return silence
        return None

    def inhibits(self, severity: str, open_severities: Sequence[str]) -> bool:
        """Whether an open incident of one of ``open_severities`` mutes a new ``severity``."""
        return any(
            severity in rule.mutes and rule.when in open_severities for rule in self.rules.inhibit
        )

    def decide(
        self, facts: AlertFacts, now: datetime, silences: Iterable[ActiveSilence] = ()
    ) -> Decision:
        routes = tuple(self.match(facts))
        channel = routes[0].policy.levels[0].channel or self.default_channel
        quiet = [r.quiet_hours.holds_until(now, facts.severity) for r in routes if r.quiet_hours]
        # Quiet hours of the route that owns the thread decide: a continue route cannot hold
        # back the first route's message.
        quiet_until = quiet[0] if quiet and routes[0].quiet_hours else None
        return Decision(routes, channel, self.silence_for(facts, now, silences), quiet_until)

    def explain(
        self, facts: AlertFacts, now: datetime, silences: Iterable[ActiveSilence] = ()
    ) -> list[str]:
        """Lines saying how an alert with ``facts`` would be routed at ``now``."""
        lines = [
            f"alert: brand={facts.brand or '?'}, severity={facts.severity}, "
            f"signal={facts.signal}, source={'|'.join(facts.sources) or '?'}"
        ]
        if not self.rules.routes:
            lines.append("no routes configured: the default route takes every alert")
        matched = False
        for index, route in enumerate(self.rules.routes):
            label = route.name or f"routes[{index}]"
            if route.match.matches(facts):
                more = "; continue: the next routes are checked too" if route.continue_ else ""
                lines.append(
                    f"  routes[{index}] {label}: MATCHES ({route.match.describe()}) "
                    f"-> policy {route.policy}{more}"
                )
                matched = True
                if not route.continue_:
                    remaining = len(self.rules.routes) - index - 1
                    if remaining:
                        lines.append(f"  (first match wins: {remaining} later routes not checked)")
                    break
            else:
                lines.append(f"  routes[{index}] {label}: no match ({route.match.describe()})")
        decision = self.decide(facts, now, silences)
        if not matched and self.rules.routes:
            lines.append("  no route matched: the default route takes it")
        lines.append(f"thread in {decision.channel}")
        for taken in decision.routes:
            lines.append(f"policy {taken.policy_name} (route {taken.name}):")
            lines.extend("  " + line for line in describe_policy(taken.policy))
            if taken.quiet_hours:
                q = taken.quiet_hours
                held = q.holds_until(now, facts.severity)
                state = (
                    f"quiet now: held until {held:%Y-%m-%d %H:%M} UTC"
                    if held
                    else "not quiet now"
                    if facts.severity not in q.except_
                    else f"{facts.severity} is exempt"
                )
                lines.append(
                    f"  quiet hours {q.start:%H:%M}-{q.end:%H:%M} {q.timezone}"
                    f" (except {', '.join(q.except_) or 'nothing'}): {state}"
                )
        if decision.silenced_by:
            lines.append(f"SILENCED by {decision.silenced_by.describe()}: nothing is sent")
        mutes = [r for r in self.rules.inhibit if facts.severity in r.mutes]
        for rule in mutes:
            lines.append(
                f"inhibited while {facts.brand or 'the brand'} has an open {rule.when} incident"
            )
        return lines


def describe_policy(policy: Policy) -> list[str]:
    lines = []
    for index, level in enumerate(policy.levels):
        who = [f"@{m}" for m in level.mention] + [f"DM {u}" for u in level.dm]
        who += [f"webhook {w}" for w in level.webhook] + [f"email {e}" for e in level.email]
        where = f" in {level.channel}" if level.channel else ""
        when = "at once" if index == 0 else f"after {format_duration(level.after)} unacknowledged"
        lines.append(f"level {index + 1} {when}{where}: {', '.join(who) or 'the channel'}")
    if policy.repeat:
        lines.append(
            f"then again from level 1, {policy.repeat} more time(s), "
            f"{format_duration(policy.repeat_interval)} after the last level"
        )
    return lines


def mention_markup(mention: str) -> str:
    """Slack markup for a validated mention id (never untrusted input)."""
    if mention in ("here", "channel"):
        return f"<!{mention}>"
    if mention.startswith("S"):
        return f"<!subteam^{mention}>"
    return f"<@{mention}>"


def policy_snapshot(policy: Policy) -> dict[str, Any]:
    """The policy as JSON, stored with an escalation so a config reload cannot change it."""
    return policy.model_dump(mode="json", by_alias=True)


def policy_from_snapshot(data: Mapping[str, Any]) -> Policy:
    return Policy.model_validate(data)
