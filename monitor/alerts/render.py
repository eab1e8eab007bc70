"""Outbox payloads rendered for people: Slack Block Kit (with a text fallback) and console lines.

Everything that came from outside — post text, author handles, URLs, brand names from the config,
the detector's reasons — is untrusted. In Slack mrkdwn it is escaped (``&``, ``<``, ``>``), so a
post containing ``<!channel>`` pings nobody and ``<https://evil|click>`` links nothing; paired
formatting marks (``*``, ``_``, ``~``, `````) are swapped for look-alikes so a post cannot fake
bold headings; examples are linked only for http(s) URLs, percent-encoded so ``|`` and ``>``
cannot break out. Bidi controls, zero-width and other invisible characters are removed first
(``monitor.untrusted``), so ``"@\u200bchannel"`` or a right-to-left override cannot spoof text,
and ``@channel``, ``@here`` and ``@everyone`` get a look-alike ``＠``. Block Kit limits are
respected: at most 50 blocks, section text at most 3,000 characters, header at most 150; anything
longer is cut with "…".
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from models.base import SEVERITY_LEVELS, severity_words
from monitor.alerts.rules import MENTION, USER_ID, mention_markup
from monitor.detect.stories import text_key
from monitor.untrusted import displayable

# Block Kit limits (https://api.slack.com/reference/block-kit/blocks).
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_TEXT = 2000
# The top-level fallback text: Slack truncates at 40k, but notifications only show a line.
MAX_FALLBACK_TEXT = 3000
# Examples shown under a new alert and under a thread reply.
PARENT_EXAMPLES = 5
REPLY_EXAMPLES = 3
# A quoted post longer than this is cut, so one example cannot crowd out the others.
MAX_QUOTE_CHARS = 600
# Cuts for other untrusted pieces, so together they always fit a 3,000-character section.
MAX_REASON_CHARS = 500
MAX_HANDLE_CHARS = 100
MAX_URL_CHARS = 1000

ELLIPSIS = "…"
# The reaction that acknowledges an alert (alerts.ack_reaction; the name Slack shows for ✅).
ACK_REACTION = "white_check_mark"

SEVERITY_EMOJI = {
    "critical": ":rotating_light:",
    "warning": ":warning:",
    "info": ":information_source:",
}

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# Formatting marks and look-alikes that Slack does not interpret.
_LOOKALIKES = {"*": "\u2217", "_": "\u02cd", "~": "\u223c", "`": "\u02cb"}
# The @ of a broadcast word, given the fullwidth look-alike so no Slack client can ping with it.
_BROADCAST_AT = re.compile(r"@(?=(?:channel|here|everyone)\b)", re.IGNORECASE)
_FULLWIDTH_AT = "\uff20"


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """What ``chat.postMessage`` / ``chat.update`` need: fallback text and blocks."""

    text: str
    blocks: list[dict[str, Any]]


# -- escaping ------------------------------------------------------------------------------------


def escape(text: str) -> str:
    """Escape Slack's three control characters; nothing else is HTML-encoded."""
    return "".join(_ESCAPES.get(ch, ch) for ch in text)


def mrkdwn(text: str, limit: int | None = None, *, formatting: bool = True) -> str:
    """Untrusted text made inert for mrkdwn, cut (before an escape, never inside one) to ``limit``.

    A formatting mark is swapped for its look-alike only when it appears at least twice, since a
    single ``_`` (as in ``dave_carroll``) cannot format anything. ``formatting=False`` only
    escapes (for plain_text objects, where marks mean nothing). Invisible characters are
    removed first (:func:`monitor.untrusted.displayable`).
    """
    text = _BROADCAST_AT.sub(_FULLWIDTH_AT, displayable(text))
    swap = {}
    if formatting:
        swap = {mark: alike for mark, alike in _LOOKALIKES.items() if text.count(mark) >= 2}
    pieces = [_ESCAPES.get(ch) or swap.get(ch) or ch for ch in text]
    out = "".join(pieces)
    if limit is None or len(out) <= limit:
        return out
    kept: list[str] = []
    size = 0
    for piece in pieces:
        if size + len(piece) > limit - len(ELLIPSIS):
            break
        kept.append(piece)
        size += len(piece)
    return "".join(kept).rstrip() + ELLIPSIS


def cut(text: str, limit: int) -> str:
    """Plain text cut to ``limit`` characters with an ellipsis."""
    if len(text) <= limit:
        return text
    return text[: limit - len(ELLIPSIS)].rstrip() + ELLIPSIS


def plain(text: str) -> str:
    """Text for a terminal or an email: no invisible characters; controls (and tabs) are spaces."""
    return displayable(text).replace("\t", " ")


def link(url: str, label: str) -> str:
    """``<url|label>`` for an http(s) URL; only the (escaped) label otherwise."""
    safe_label = mrkdwn(label)
    try:
        parts = urlsplit(url)
    except ValueError:
        return safe_label
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return safe_label
    # Percent-encode anything that could end the link or the label early; keep URL syntax.
    encoded = quote(url, safe=":/?#[]@!$&'()*+,;=%-._~")
    if len(encoded) > MAX_URL_CHARS:
        return safe_label
    return f"<{escape(encoded)}|{safe_label}>"


# -- pieces --------------------------------------------------------------------------------------


def _when(iso: str | None) -> str:
    if not iso:
        return "?"
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M UTC")


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 10 else f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _headline(payload: Mapping[str, Any], safe: Callable[[str], str]) -> str:
    """The one-line story; ``safe`` makes the (untrusted) brand name inert for where it goes."""
    brand = safe(
        " ".join(plain(str(payload.get("brand_name") or payload.get("brand") or "?")).split())
    )
    if payload.get("status") == "resolved":
        return f":white_check_mark: {brand}: complaints spike resolved"
    emoji = SEVERITY_EMOJI.get(str(payload.get("severity")), ":rotating_light:")
    story = payload.get("story_title")
    if story:  # a post's own words, untrusted: made inert like the brand
        return f"{emoji} {brand}: “{safe(plain(str(story)))}”"
    return f"{emoji} {brand}: complaints spiking"


# Signals about one post (monitor.detect.spread): their first reason is the number to show.
_ONE_POST_KINDS = ("engagement_velocity", "high_reach_author")


def _one_post_line(payload: Mapping[str, Any]) -> str | None:
    reasons = payload.get("reasons") or []
    if payload.get("signal_kind") in _ONE_POST_KINDS and reasons:
        return " ".join(plain(str(reasons[0])).split())
    return None


def _usual(payload: Mapping[str, Any]) -> str:
    """What is normal, in words: the baseline (volume) or the window before (a story)."""
    minutes = payload.get("window_minutes", "?")
    expected = float(payload.get("expected") or 0.0)
    if payload.get("signal_kind") == "story_growth":
        return f"{_number(round(expected))} in the {minutes} min before"
    if expected < 0.5:
        return "usually none"
    return f"usually about {_number(round(expected))}"


def _doubling(payload: Mapping[str, Any]) -> str | None:
    """"doubling every 20 min" from the story's hour-over-hour growth (None when not growing)."""
    raw: Any = (payload.get("story") or {}).get("growth_per_hour")
    if raw is None and payload.get("signal_kind") == "story_growth":
        raw = payload.get("score")
    try:
        growth = float(raw)
    except (TypeError, ValueError):
        return None
    if growth < 1.2:
        return None
    minutes = 60 * math.log(2) / math.log(growth)
    return f"doubling every {_number(max(1, round(minutes)))} min"


def plain_numbers(payload: Mapping[str, Any]) -> str:
    """One set of numbers in plain words: "19 complaints in the last 30 min — usually about 1;
    doubling every 20 min" (no σ, no baselines ± spreads)."""
    one_post = _one_post_line(payload)
    if one_post is not None:
        return one_post
    line = (
        f"{_number(payload.get('count', 0))} complaints in the last "
        f"{payload.get('window_minutes', '?')} min — {_usual(payload)}"
    )
    doubling = _doubling(payload)
    return f"{line}; {doubling}" if doubling else line


def severity_reason(payload: Mapping[str, Any]) -> str:
    """Why this severity, in words."""
    count = float(payload.get("count") or 0)
    expected = float(payload.get("expected") or 0.0)
    doubling = _doubling(payload)
    if _one_post_line(payload) is not None:
        return "one post is spreading fast"
    if payload.get("signal_kind") == "story_growth":
        return f"one story is {doubling}" if doubling else "one story is growing fast"
    ratio = count / max(expected, 1.0)
    text = f"{_number(round(ratio))}× the usual number of complaints"
    return f"{text}, {doubling}" if doubling else text


def _numbers(payload: Mapping[str, Any]) -> str:
    one_post = _one_post_line(payload)
    if one_post is not None:
        return f"*{mrkdwn(one_post, MAX_REASON_CHARS)}*"
    return f"*{mrkdwn(plain_numbers(payload))}*"


def changes(payload: Mapping[str, Any]) -> list[str]:
    """What changed since the last message in the thread, in words (for an update)."""
    out = []
    previous = payload.get("previous_count")
    if previous is not None:
        since = _clock_time(payload.get("previous_at")) if payload.get("previous_at") else None
        was = f"was {_number(previous)}" + (f" at {since}" if since else "")
        out.append(f"{_number(payload.get('count', 0))} complaints in the last "
                   f"{payload.get('window_minutes', '?')} min ({was})")
    before = payload.get("previous_severity")
    if before and before != payload.get("severity"):
        out.append(f"severity {before} → {payload.get('severity')}")
    title = payload.get("previous_title")
    if title and payload.get("story_title"):
        out.append(f"the story is now titled “{payload['story_title']}” (was “{title}”)")
    return out


def _reaction(payload: Mapping[str, Any]) -> str:
    name = str(payload.get("ack_reaction") or ACK_REACTION)
    return name if name.replace("_", "").replace("-", "").isalnum() else ACK_REACTION


def who(by: Any) -> str:
    """A person for mrkdwn: a Slack user id becomes a mention, anything else is escaped."""
    text = str(by or "someone")
    if USER_ID.match(text):
        return f"<@{text}>"
    return mrkdwn(text, MAX_HANDLE_CHARS)


def mentions(payload: Mapping[str, Any]) -> str:
    """Mentions from the config (validated ids only; anything else is dropped)."""
    ids = [str(m) for m in payload.get("mentions") or [] if MENTION.match(str(m))]
    return " ".join(mention_markup(m.lstrip("@")) for m in ids)


def _clock_time(iso: Any) -> str:
    try:
        return datetime.fromisoformat(str(iso)).strftime("%H:%M UTC")
    except ValueError:
        return "?"


def _status(payload: Mapping[str, Any]) -> str:
    status = str(payload.get("status", "open"))
    by = payload.get("acknowledged_by")
    if status == "acknowledged" and by:
        at = payload.get("acknowledged_at")
        return f"acknowledged by {who(by)}" + (f" at {_clock_time(at)}" if at else "")
    escalated = payload.get("escalated")
    if status == "open" and isinstance(escalated, Mapping):
        return (
            f"open, escalated to level {_number(escalated.get('level'))} "
            f"after {_number(escalated.get('minutes'))} min unacknowledged"
        )
    return mrkdwn(status)


def shown_reasons(payload: Mapping[str, Any]) -> list[str]:
    """The detector's reasons a person needs: not the numbers already said in words (nor σ,
    "± spread" or growth factors: one set of numbers per message)."""
    out = []
    count = f"{payload.get('count', 0)} complaints in"
    for reason in payload.get("reasons") or []:
        text = str(reason)
        if _JARGON.search(text) or text.startswith(count):
            continue
        out.append(text)
    return out


_JARGON = re.compile(r"σ|±|×\s*the usual|sigma|baseline", re.IGNORECASE)


def _reasons(payload: Mapping[str, Any]) -> list[str]:
    lines = [f"• {mrkdwn(reason, MAX_REASON_CHARS)}" for reason in shown_reasons(payload)]
    url = str(payload.get("story_url") or "")
    if url:
        lines.append(f"• {link(url, 'Open the story on the dashboard')}")
    return lines


def complaint_severity_line(payload: Mapping[str, Any]) -> list[str]:
    """"*Complaints:* mostly accusation (level 3 of 4)" when the quoted posts have a severity."""
    level = payload.get("complaint_severity")
    if not isinstance(level, int) or isinstance(level, bool):
        return []
    if not 0 <= level < len(SEVERITY_LEVELS):
        return []
    top = len(SEVERITY_LEVELS) - 1
    return [f"*Complaints:* mostly {severity_words(level)} (level {level} of {top})"]


def _section(text: str) -> dict[str, Any]:
    # verbatim: no auto-linking of bare URLs, #channel names or @mentions in what we pass.
    body = _cut_rendered(text, MAX_SECTION_TEXT)
    return {"type": "section", "text": {"type": "mrkdwn", "text": body, "verbatim": True}}


def _cut_rendered(rendered: str, limit: int) -> str:
    """Cut escaped text to ``limit`` without splitting an escape like ``&amp;`` or a link."""
    if len(rendered) <= limit:
        return rendered
    head = rendered[: limit - len(ELLIPSIS)]
    amp = head.rfind("&")
    if amp != -1 and ";" not in head[amp:]:
        head = head[:amp]
    opened = head.rfind("<")
    if opened != -1 and ">" not in head[opened:]:
        head = head[:opened]
    return head.rstrip() + ELLIPSIS


def quoted_posts(payload: Mapping[str, Any], limit: int) -> list[Mapping[str, Any]]:
    """The posts to quote: the story's seed (its first complaint) first, always; then up to
    ``limit`` most-shared others, each text once (its reposts are counted, not quoted)."""
    seed = payload.get("seed") or (payload.get("story") or {}).get("seed")
    out: list[Mapping[str, Any]] = []
    seen: set[str] = set()
    for example in ([{**seed, "seed": True}] if seed else []) + list(
        payload.get("examples") or []
    ):
        key = text_key(str(example.get("text", "")))
        if key in seen:
            continue
        seen.add(key)
        out.append(example)
    return out[: max(0, limit) + (1 if seed else 0)]


def _reposts(n: Any) -> str:
    return f"{_number(n)} repost" + ("" if n == 1 else "s")


def reach(example: Mapping[str, Any]) -> int:
    """Reach, everywhere in Uproar: the author's followers + the post's engagement."""
    return int(example.get("author_followers") or 0) + int(example.get("reach") or 0)


def _example_block(example: Mapping[str, Any]) -> dict[str, Any]:
    text = mrkdwn(str(example.get("text", "")), MAX_QUOTE_CHARS)
    quoted = "\n".join(f">{line}" if line else ">" for line in text.splitlines() or [""])
    handle = str(example.get("author_handle") or "unknown")
    who = f"*@{mrkdwn(handle.lstrip('@'), MAX_HANDLE_CHARS)}*"
    followers = example.get("author_followers")
    if followers is not None:
        who += f" · {_number(followers)} followers"
    who += f" · reach {_number(reach(example))}"
    if example.get("reposts"):
        who += f" · and {_reposts(example['reposts'])}"
    label = f"{example.get('source') or 'post'} post"
    first = "*First complaint* " if example.get("seed") else ""
    footer = f"— {first}{who} · {link(str(example.get('url') or ''), label)}"
    return _section(f"{quoted}\n{footer}")


def _context(payload: Mapping[str, Any]) -> dict[str, Any]:
    text = (
        f"Incident #{payload.get('incident_id', '?')} · opened {_when(payload.get('opened_at'))}"
        f" · last signal {_when(payload.get('at'))}"
    )
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": cut(text, MAX_CONTEXT_TEXT)}],
    }


def _with_examples(
    head: list[dict[str, Any]],
    examples: Sequence[Mapping[str, Any]],
    tail: dict[str, Any],
    limit: int,
) -> list[dict[str, Any]]:
    room = MAX_BLOCKS - len(head) - 1
    shown = [_example_block(e) for e in list(examples)[: max(0, min(limit, room))]]
    return [*head, *shown, tail]


# -- messages ------------------------------------------------------------------------------------


# Button action ids, handled over Socket Mode by ``monitor.alerts.interactive``.
ACTION_ACK = "uproar_ack"
ACTION_RESOLVE = "uproar_resolve"
ACTION_SILENCE = "uproar_silence_1h"


def _buttons(payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """Acknowledge / Resolve / Silence 1h, for the states where they mean something."""
    status = payload.get("status")
    incident = str(payload.get("incident_id", ""))
    if status not in ("open", "acknowledged") or not incident.isdigit():
        return None

    def button(text: str, action: str, style: str | None = None) -> dict[str, Any]:
        element: dict[str, Any] = {
            "type": "button",
            "text": {"type": "plain_text", "text": text},
            "action_id": action,
            "value": incident,
        }
        if style:
            element["style"] = style
        return element

    elements = []
    if status == "open":
        elements.append(button("Acknowledge", ACTION_ACK, "primary"))
    elements.append(button("Resolve", ACTION_RESOLVE))
    elements.append(button("Silence 1h", ACTION_SILENCE, "danger"))
    return {"type": "actions", "block_id": "uproar_actions", "elements": elements}


def render_slack(
    payload: Mapping[str, Any], *, max_examples: int | None = None, buttons: bool = False
) -> SlackMessage:
    """The Slack message for an outbox payload: a parent ("open") or a thread reply ("update")."""
    if payload.get("kind") == "notice":
        return render_notice(payload)
    if payload.get("kind") == "digest":
        return render_digest(payload)
    if payload.get("kind") == "update":
        return render_reply(
            payload, max_examples=REPLY_EXAMPLES if max_examples is None else max_examples
        )
    return render_parent(
        payload,
        max_examples=PARENT_EXAMPLES if max_examples is None else max_examples,
        buttons=buttons,
    )


def render_parent(
    payload: Mapping[str, Any], *, max_examples: int = PARENT_EXAMPLES, buttons: bool = False
) -> SlackMessage:
    """The thread's parent message: what the story is, how big, and the most-shared posts."""
    header = _headline(payload, lambda brand: mrkdwn(brand, formatting=False))
    summary = [
        _numbers(payload),
        f"*Severity:* {mrkdwn(str(payload.get('severity', '?')))} — "
        f"{mrkdwn(severity_reason(payload))} · *Status:* {_status(payload)}",
        *complaint_severity_line(payload),
    ]
    peak = payload.get("peak_count")
    if payload.get("signal_count", 1) > 1 and peak and peak != payload.get("count"):
        summary.append(
            f"*Peak so far:* {_number(payload.get('peak_count', 0))} complaints in "
            f"{payload.get('window_minutes', '?')} min"
        )
    summary.extend(_reasons(payload))
    cc = mentions(payload)
    if cc and payload.get("status") == "open":
        summary.append(f"*For:* {cc}")
    actions = _buttons(payload) if buttons else None
    if payload.get("status") == "open" and actions is None:
        summary.append(f"React with :{_reaction(payload)}: to acknowledge.")
    head: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _cut_rendered(header, MAX_HEADER_TEXT),
                "emoji": True,
            },
        },
        _section("\n".join(summary)),
    ]
    examples = quoted_posts(payload, max_examples)
    if examples and max_examples > 0:
        head.append({"type": "divider"})
    if actions is not None:
        head.insert(2, actions)
    blocks = _with_examples(head, examples, _context(payload), len(examples))
    return SlackMessage(text=_fallback(_headline(payload, mrkdwn), payload), blocks=blocks)


def render_reply(payload: Mapping[str, Any], *, max_examples: int = REPLY_EXAMPLES) -> SlackMessage:
    """A thread reply: new numbers, or who acknowledged or resolved the incident."""
    event = payload.get("event", "signal")
    by = who(payload.get("by"))
    if event == "escalated":
        return render_escalation(payload)
    if event == "acknowledged":
        line = f":eyes: Acknowledged by *{by}*"
        return SlackMessage(
            text=_cut_rendered(line, MAX_FALLBACK_TEXT), blocks=[_section(line), _context(payload)]
        )
    if event == "silenced":
        line = (
            f":no_bell: *{by}* silenced {mrkdwn(str(payload.get('brand_name') or '?'))} alerts "
            f"for {_number(payload.get('minutes', '?'))} min; escalation stopped"
        )
        return SlackMessage(
            text=_cut_rendered(line, MAX_FALLBACK_TEXT), blocks=[_section(line), _context(payload)]
        )
    if event in ("merged_into", "merged_from"):
        line = merge_line(payload, mrkdwn)
        return SlackMessage(
            text=_cut_rendered(line, MAX_FALLBACK_TEXT), blocks=[_section(line), _context(payload)]
        )
    if event == "resolved":
        line = f":white_check_mark: Resolved by *{by}*"
        return SlackMessage(
            text=_cut_rendered(line, MAX_FALLBACK_TEXT), blocks=[_section(line), _context(payload)]
        )
    severity = mrkdwn(str(payload.get("severity", "?")))
    previous = payload.get("previous_severity")
    if previous and previous != payload.get("severity"):
        severity = f"{mrkdwn(str(previous))} → {severity}"
    lines = [f":chart_with_upwards_trend: *Update* · severity {severity}", _numbers(payload)]
    told = changes(payload)
    if told:
        lines.append("*Since the last message:* " + mrkdwn("; ".join(told), MAX_REASON_CHARS))
    lines.extend(complaint_severity_line(payload))
    lines.extend(_reasons(payload))
    cc = mentions(payload)
    if cc:
        lines.append(f"*For:* {cc}")
    seed = payload.get("seed")
    newest = [e for e in payload.get("examples") or []
              if not seed or text_key(str(e.get("text", ""))) != text_key(str(seed.get("text")))]
    blocks = _with_examples(
        [_section("\n".join(lines))], quoted_posts({"examples": newest}, max_examples),
        _context(payload), max_examples
    )
    fallback = f"Update: {_plain_numbers(payload, mrkdwn)}"
    return SlackMessage(text=_cut_rendered(fallback, MAX_FALLBACK_TEXT), blocks=blocks)


def merge_line(payload: Mapping[str, Any], safe: Callable[[str], str] = plain) -> str:
    """What a thread says when its story turned out to be part of another (or took one in)."""
    other = _number(payload.get("other_incident", "?"))
    title = safe(plain(str(payload.get("other_title") or "")))
    if payload.get("event") == "merged_into":
        return (f":link: This story is part of incident #{other} “{title}”: it continues in "
                f"that thread (its complaints and signals are counted there now)")
    return (f":link: Incident #{other} turned out to be this same story: its complaints and "
            f"signals are counted here now, and its thread points here")


def render_escalation(payload: Mapping[str, Any]) -> SlackMessage:
    """A thread reply (broadcast to the channel) telling the next level about the incident."""
    cc = mentions(payload) or "the channel"
    line = (
        f":rotating_light: *Still unacknowledged after {_number(payload.get('minutes', '?'))} min*"
        f" — escalating to level {_number(payload.get('level', '?'))}: {cc}\n"
        f"React with :{_reaction(payload)}: on the alert to acknowledge."
    )
    text = (
        f"Escalation (level {payload.get('level', '?')}): incident "
        f"#{payload.get('incident_id', '?')} unacknowledged for {payload.get('minutes', '?')} min"
    )
    return SlackMessage(
        text=_cut_rendered(text, MAX_FALLBACK_TEXT), blocks=[_section(line), _context(payload)]
    )


def render_digest(payload: Mapping[str, Any]) -> SlackMessage:
    """The daily digest of one brand: numbers and incidents of the last 24 hours."""
    brand = " ".join(plain(str(payload.get("brand_name") or "?")).split())
    header = f":newspaper: Daily digest: {mrkdwn(brand, formatting=False)}"
    lines = [mrkdwn(str(line), MAX_REASON_CHARS) for line in payload.get("lines") or []]
    blocks = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _cut_rendered(header, MAX_HEADER_TEXT)},
        },
        _section("\n".join(lines) or "No data."),
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": cut(
                        f"{_when(payload.get('start'))} to {_when(payload.get('end'))}",
                        MAX_CONTEXT_TEXT,
                    ),
                }
            ],
        },
    ]
    text = _cut_rendered(mrkdwn(str(payload.get("text") or header)), MAX_FALLBACK_TEXT)
    return SlackMessage(text=text, blocks=blocks)


def render_notice(payload: Mapping[str, Any]) -> SlackMessage:
    """A DM, or a post in another channel, pointing at the incident's thread."""
    brand = mrkdwn(" ".join(plain(str(payload.get("brand_name") or "?")).split()))
    thread = ""
    channel = str(payload.get("thread_channel") or payload.get("channel") or "")
    if channel.startswith(("C", "G")) and channel.isalnum():
        thread = f" — the thread is in <#{channel}>"
    elif channel.startswith("#"):
        thread = f" — the thread is in {mrkdwn(channel)}"
    if payload.get("event") == "escalated":
        head = (
            f":rotating_light: *{brand}: complaints spiking, unacknowledged for "
            f"{_number(payload.get('minutes', '?'))} min* (level {_number(payload.get('level'))})"
        )
    else:
        emoji = SEVERITY_EMOJI.get(str(payload.get("severity")), "")
        head = f"{emoji} *{brand}: complaints spiking*"
    lines = [head + thread, _numbers(payload)]
    lines.extend(_reasons(payload))
    return SlackMessage(
        text=_cut_rendered(f"{_headline(payload, mrkdwn)} — {_plain_numbers(payload, mrkdwn)}",
                           MAX_FALLBACK_TEXT),
        blocks=[_section("\n".join(lines)), _context(payload)],
    )


def _plain_numbers(payload: Mapping[str, Any], shown: Callable[[str, int], str] = cut) -> str:
    """The numbers in one line; ``shown`` cuts (and, for Slack, escapes) the untrusted reason."""
    one_post = _one_post_line(payload)
    if one_post is not None:
        return (
            f"{shown(one_post, MAX_REASON_CHARS)}, severity {payload.get('severity', '?')}, "
            f"incident #{payload.get('incident_id', '?')}"
        )
    return (
        f"{plain_numbers(payload)}; severity {payload.get('severity', '?')} "
        f"({severity_reason(payload)}), incident #{payload.get('incident_id', '?')}"
    )


def _fallback(headline: str, payload: Mapping[str, Any]) -> str:
    return _cut_rendered(f"{headline} — {_plain_numbers(payload, mrkdwn)}", MAX_FALLBACK_TEXT)


# -- console -------------------------------------------------------------------------------------


def render_console(payload: Mapping[str, Any]) -> str:
    """Plain text lines for a terminal or a log, when no Slack token is configured."""
    if payload.get("kind") == "digest":
        return plain(str(payload.get("text") or ""))
    incident = f"incident #{payload.get('incident_id', '?')}"
    brand = plain(str(payload.get("brand_name") or payload.get("brand") or "?"))
    event = payload.get("event", "signal")
    if payload.get("kind") == "update" and event in ("merged_into", "merged_from"):
        return f"[{incident}] {brand}: {merge_line(payload)}\n"
    if payload.get("kind") == "update" and event in ("acknowledged", "resolved", "silenced"):
        return f"[{incident}] {brand}: {event} by {plain(str(payload.get('by') or 'someone'))}\n"
    if event == "escalated":
        to = " ".join("@" + str(m) for m in payload.get("mentions") or []) or "the channel"
        where = f" (to {plain(str(payload['deliver_to']))})" if payload.get("deliver_to") else ""
        return (
            f"[{incident}] {brand}: unacknowledged for {payload.get('minutes', '?')} min, "
            f"escalating to level {payload.get('level', '?')}: {plain(to)}{where}\n"
        )
    severity = str(payload.get("severity", "?")).upper()
    if payload.get("kind") == "update":
        head = f"[{severity}] {brand}: update on {incident}"
    else:
        status = payload.get("status", "open")
        head = f"[{severity}] {brand}: complaints spiking ({incident}, {status})"
    if payload.get("story_title"):
        head += f": “{plain(str(payload['story_title']))}”"
    lines = [head, "  " + _plain_numbers(payload)]
    lines += ["  " + line.replace("*", "") for line in complaint_severity_line(payload)]
    if payload.get("kind") == "update":
        lines += [f"  since the last message: {plain(c)}" for c in changes(payload)]
    lines += [f"  - {plain(r)}" for r in shown_reasons(payload)]
    if payload.get("story_url"):
        lines.append(f"  - the story on the dashboard: {plain(str(payload['story_url']))}")
    examples = quoted_posts(payload, PARENT_EXAMPLES)
    if examples:
        lines.append("  Most shared:")
    for example in examples:
        text = cut(" ".join(plain(str(example.get("text", ""))).split()), 280)
        who = "@" + plain(str(example.get("author_handle") or "unknown")).lstrip("@")
        followers = example.get("author_followers")
        if followers is not None:
            who += f" ({_number(followers)} followers, reach {_number(reach(example))})"
        if example.get("reposts"):
            who += f", and {_reposts(example['reposts'])}"
        first = "first complaint: " if example.get("seed") else ""
        lines.append(f'    {first}"{text}" — {who}')
        if example.get("url"):
            lines.append(f"      {plain(str(example['url']))}")
    return "\n".join(lines) + "\n"
