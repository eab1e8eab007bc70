"""What `uproar check-config` prints when the config is valid."""

from __future__ import annotations

from monitor.config import LoadedConfig
from monitor.daemon.sources import all_feeds, registered_connectors, youtube_quota_note
from monitor.durations import format_duration


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


def summarize(loaded: LoadedConfig) -> list[str]:
    c = loaded.config
    lines = [f"{loaded.path}: OK", "", f"brands ({len(c.brands)}):"]
    for b in c.brands:
        feeds = f"  [{len(b.feeds)} own feeds]" if b.feeds else ""
        lines.append(f"  {b.key:<12} {b.name}: {b.query}{feeds}")
    lines.append("")
    lines.append("sources:")
    installed = registered_connectors()
    for name, s in c.sources.all().items():
        if not s.enabled:
            lines.append(f"  {name:<11} off")
            continue
        extra = ""
        if name == "rss":
            extra = f", {len(all_feeds(c))} feeds"
        avail = "" if name in installed else "  (NOT INSTALLED)"
        lines.append(
            f"  {name:<11} every {format_duration(s.every)} "
            f"(jitter {format_duration(s.jitter)}){extra}{avail}"
        )
    note = youtube_quota_note(c)
    if note:
        lines.append(f"  {note}")
    lines.append("")
    slack = c.alerts.slack
    if slack.token:
        lines.append(f"alerts: Slack channel {slack.channel} via {slack.api_url}")
    else:
        why = ""
        if "SLACK_BOT_TOKEN" in loaded.unset_vars:
            line = loaded.loaded.var_lines.get("SLACK_BOT_TOKEN") if loaded.loaded else None
            why = " (SLACK_BOT_TOKEN is not set" + (f"; used on line {line})" if line else ")")
        lines.append(f"alerts: printed to the console{why}; set alerts.slack.token for Slack")
    a = c.alerts
    lines.append(
        f"alert routing: {len(a.routes)} routes, {len(a.policies)} policies, "
        f"{len(a.silences)} config silences, {len(a.webhooks)} webhooks, "
        f"email {'on' if a.smtp.host else 'off'}, digest {'on' if a.digest.enabled else 'off'}"
        " (try --explain brand=KEY,severity=warning)"
    )
    d = c.detection
    lines.append(
        f"detection: complaints (p >= {c.classifier.complaint_threshold}) per "
        f"{format_duration(d.bucket)}, window {format_duration(d.window)}, "
        f"at least {d.min_count}, cooldown {format_duration(d.cooldown)}"
    )
    lines.append(f"classifier: {c.classifier.model}")
    lines.append(f"archive: {_redact(c.archive.url)}")
    unset = [v for v in loaded.unset_vars if v != "SLACK_BOT_TOKEN"]
    if unset:
        lines.append("")
        lines.append("note: these environment variables are not set: "
                     + ", ".join(_unset(loaded, unset)))
    return lines


def _unset(loaded: LoadedConfig, names: list[str]) -> list[str]:
    """``VAR (line 12)``: where the file uses each unset variable."""
    if loaded.loaded is None:
        return names
    return loaded.loaded.unset_with_lines(names)
