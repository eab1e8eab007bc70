"""Senders: where outbox payloads go. Slack through the Web API, or the console without a token.

A sender renders a payload itself (blocks for Slack, lines for a terminal) and either returns the
posted message's channel and ``ts`` or raises ``AlertDeliveryError`` saying whether a retry may
help. Senders never retry: ``monitor.alerts.dispatch`` owns retries and backoff, so slack_sdk's
own retry handlers are switched off.
"""

from __future__ import annotations

import http.client
import itertools
import sys
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TextIO

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from monitor.alerts.render import render_console, render_parent, render_slack
from monitor.errors import AlertDeliveryError

# Slack error codes that a later attempt may fix by itself.
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
# When a 429 comes without Retry-After (it should not), wait this long.
DEFAULT_RETRY_AFTER = 60.0
# The name the volume chart gets in Slack.
CHART_FILENAME = "uproar-volume.png"
# Message metadata marking each post with its outbox row, so a retry after a timeout can find
# the message Slack did post instead of posting it twice.
METADATA_EVENT = "uproar_alert"
# How many messages back a reconciliation looks.
RECONCILE_LIMIT = 200


@dataclass(frozen=True, slots=True)
class PostedMessage:
    """Where a message landed: channel id (``chat.update`` needs the id, not the name) and ts."""

    channel: str
    ts: str


class Sender(ABC):
    """Delivers one rendered outbox payload.

    Implementations MUST raise ``AlertDeliveryError`` (never anything else) on failure, with
    ``retryable`` telling whether trying the same message later may help, and MUST NOT retry.
    """

    #: The outbox ``target`` this sender delivers.
    target: ClassVar[str]

    @abstractmethod
    def post(
        self,
        payload: Mapping[str, Any],
        *,
        thread_ts: str | None = None,
        channel: str | None = None,
    ) -> PostedMessage:
        """Post a payload (a parent, or a reply in the thread ``thread_ts``)."""

    @abstractmethod
    def update(self, ts: str, payload: Mapping[str, Any], *, channel: str | None = None) -> None:
        """Replace the parent message ``ts`` with the incident's current state (``payload``)."""

    #: Whether ``upload_chart`` shows the image anywhere; the dispatcher draws no chart if not.
    shows_charts: ClassVar[bool] = False

    def upload_chart(self, png: bytes, *, thread_ts: str, channel: str, title: str) -> None:
        """Attach a PNG chart to the thread ``thread_ts`` in ``channel`` (a channel id).

        Same contract as ``post``: ``AlertDeliveryError`` on failure, no retries. The default
        does nothing, for senders that cannot show images (``shows_charts`` is False).
        """
        return None  # deliberately not abstract: a sender without images needs no override

    def close(self) -> None:
        """Release connections (the daemon calls it at shutdown)."""
        return None  # deliberately not abstract: most senders hold nothing open

    #: Whether ``reactions`` can read anything (the console cannot).
    reads_reactions: ClassVar[bool] = False

    def reactions(self, ts: str, *, channel: str | None = None) -> dict[str, list[str]]:
        """Reaction name -> user ids who reacted to message ``ts``; same error contract."""
        return {}

    #: Whether ``find_posted`` can look anything up; the dispatcher skips it if not.
    reconciles: ClassVar[bool] = False

    def find_posted(
        self, outbox_id: int, *, channel: str, thread_ts: str | None, oldest: float
    ) -> PostedMessage | None:
        """The message an earlier, unanswered attempt of outbox row ``outbox_id`` posted after
        ``oldest`` (Unix seconds), or None. Same error contract as ``post``."""
        return None


class SlackSender(Sender):
    """Posts Block Kit messages with slack_sdk's ``WebClient`` (postMessage, update), and
    uploads charts into threads (``files_upload_v2``)."""

    target: ClassVar[str] = "slack"

    def __init__(
        self,
        token: str,
        channel: str,
        api_url: str = "https://slack.com/api/",
        *,
        timeout: float = 10,
        buttons: bool = False,
        ack_reaction: str = "white_check_mark",
    ) -> None:
        self.channel = channel
        self.ack_reaction = ack_reaction.strip(":")  # named in the alert's hint
        self.buttons = buttons  # Socket Mode is on: parents get Acknowledge/Resolve/Silence
        self.client = WebClient(
            token=token,
            base_url=api_url if api_url.endswith("/") else api_url + "/",
            timeout=timeout,  # type: ignore[arg-type]  # urllib takes float seconds
            retry_handlers=[],
        )
        self._ids: dict[str, str] = {}  # channel name (no #) -> id, learned from Slack

    def post(
        self,
        payload: Mapping[str, Any],
        *,
        thread_ts: str | None = None,
        channel: str | None = None,
    ) -> PostedMessage:
        message = render_slack({**payload, "ack_reaction": self.ack_reaction}, buttons=self.buttons)
        where = channel or self.channel
        extra: dict[str, Any] = {"thread_ts": thread_ts} if thread_ts else {}
        if thread_ts and payload.get("broadcast"):
            extra["reply_broadcast"] = True  # escalations show in the channel too
        if isinstance(payload.get("outbox_id"), int):
            extra["metadata"] = {
                "event_type": METADATA_EVENT,
                "event_payload": {"outbox_id": payload["outbox_id"]},
            }
        try:
            response = self.client.chat_postMessage(
                channel=where,
                text=message.text,
                blocks=message.blocks,
                unfurl_links=False,
                unfurl_media=False,
                **extra,
            )
        except Exception as exc:
            raise self._delivery_error(exc, "chat.postMessage", where) from exc
        posted = PostedMessage(str(response.get("channel") or where), str(response["ts"]))
        if where != posted.channel:
            self._ids[where.lstrip("#")] = posted.channel
        return posted

    reconciles: ClassVar[bool] = True

    def find_posted(
        self, outbox_id: int, *, channel: str, thread_ts: str | None, oldest: float
    ) -> PostedMessage | None:
        """``conversations.history`` (or ``.replies`` in a thread) with metadata; needs the
        channels:history scope (groups:history for a private channel)."""
        channel_id = self._channel_id(channel)
        if channel_id is None:
            return None
        method = "conversations.replies" if thread_ts else "conversations.history"
        args: dict[str, Any] = {
            "channel": channel_id,
            "oldest": f"{oldest:.6f}",
            "include_all_metadata": True,
            "limit": RECONCILE_LIMIT,
        }
        try:
            if thread_ts:
                response = self.client.conversations_replies(ts=thread_ts, **args)
            else:
                response = self.client.conversations_history(**args)
        except Exception as exc:
            raise self._delivery_error(exc, method, channel) from exc
        for message in response.get("messages") or []:
            metadata = message.get("metadata") or {}
            marker = metadata.get("event_payload") or {}
            ours = metadata.get("event_type") == METADATA_EVENT
            if ours and marker.get("outbox_id") == outbox_id:
                return PostedMessage(channel=channel_id, ts=str(message["ts"]))
        return None

    def _channel_id(self, channel: str) -> str | None:
        """A channel id for a name (``conversations.list``, cached); ids and DMs pass through."""
        name = channel.lstrip("#")
        if name in self._ids:
            return self._ids[name]
        if not channel.startswith("#") and name[:1] in ("C", "G", "D") and name.isalnum():
            return name
        if name[:1] in ("U", "W") and name.isalnum():
            return None  # a DM not yet posted: nothing to reconcile against
        if name not in self._ids:
            try:
                response = self.client.conversations_list(
                    types="public_channel,private_channel", exclude_archived=True, limit=1000
                )
            except Exception as exc:
                raise self._delivery_error(exc, "conversations.list", channel) from exc
            for item in response.get("channels") or []:
                self._ids[str(item.get("name"))] = str(item.get("id"))
        return self._ids.get(name)

    def update(self, ts: str, payload: Mapping[str, Any], *, channel: str | None = None) -> None:
        shown = {**payload, "ack_reaction": self.ack_reaction}
        message = render_parent(shown, buttons=self.buttons)
        where = channel or self.channel
        try:
            self.client.chat_update(channel=where, ts=ts, text=message.text, blocks=message.blocks)
        except Exception as exc:
            raise self._delivery_error(exc, "chat.update", where) from exc

    shows_charts: ClassVar[bool] = True

    def upload_chart(self, png: bytes, *, thread_ts: str, channel: str, title: str) -> None:
        """``files_upload_v2``: ``files.getUploadURLExternal``, a POST of the bytes to the URL it
        returns, then ``files.completeUploadExternal`` sharing the file into the thread.

        Needs the ``files:write`` scope. ``channel`` must be the id (completeUploadExternal
        takes no names), as returned in ``PostedMessage.channel``.
        """
        try:
            self.client.files_upload_v2(
                channel=channel,
                thread_ts=thread_ts,
                file=png,
                filename=CHART_FILENAME,
                title=title,
                initial_comment=None,
            )
        except Exception as exc:
            # Name the step that failed (files.getUploadURLExternal or files.completeUploadExternal)
            # when Slack answered; the POST of the bytes in between fails as a client error.
            api_url = str(getattr(getattr(exc, "response", None), "api_url", "") or "")
            method = api_url.rsplit("/", 1)[-1] or "files_upload_v2"
            raise self._delivery_error(exc, method, channel) from exc

    reads_reactions: ClassVar[bool] = True

    def reactions(self, ts: str, *, channel: str | None = None) -> dict[str, list[str]]:
        """``reactions.get`` (scope reactions:read) on the message ``ts``."""
        where = channel or self.channel
        try:
            response = self.client.reactions_get(channel=where, timestamp=ts, full=True)
        except Exception as exc:
            raise self._delivery_error(exc, "reactions.get", where) from exc
        message = response.get("message") or {}
        return {
            str(r.get("name")): [str(u) for u in r.get("users") or []]
            for r in message.get("reactions") or []
        }

    def check(self) -> str:
        """``auth.test``: the bot's user name, or ``AlertDeliveryError`` saying what to fix."""
        try:
            response = self.client.auth_test()
        except Exception as exc:
            raise self._delivery_error(exc, "auth.test", self.channel) from exc
        return str(response.get("user") or "")

    def _delivery_error(self, exc: Exception, method: str, channel: str) -> AlertDeliveryError:
        return delivery_error(exc, method=method, channel=channel)


def delivery_error(exc: Exception, *, method: str, channel: str) -> AlertDeliveryError:
    """Map a slack_sdk or network failure to ``AlertDeliveryError`` with a one-line next step."""
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = int(getattr(response, "status_code", 0) or 0)
        data = response.data if isinstance(response.data, dict) else {}
        error = str(data.get("error") or f"HTTP {status}")
        if status == 429 or error == "ratelimited":
            retry_after = _retry_after(response.headers)
            return AlertDeliveryError(
                f"Slack rate-limited {method}; retrying after {retry_after:g}s",
                retryable=True,
                retry_after=retry_after,
            )
        if status >= 500 or error in RETRYABLE_ERRORS:
            return AlertDeliveryError(
                f"Slack {method} failed ({error}); will retry", retryable=True
            )
        return AlertDeliveryError(_advice(error, method, channel), retryable=False)
    if isinstance(exc, (OSError, http.client.HTTPException)):  # URLError, timeouts, resets
        reason = getattr(exc, "reason", None) or exc
        return AlertDeliveryError(f"Slack unreachable for {method}: {reason}", retryable=True)
    if isinstance(exc, SlackClientError):  # e.g. an api_url that is not http(s)
        return AlertDeliveryError(f"Slack {method} could not be sent: {exc}", retryable=False)
    return AlertDeliveryError(f"Slack {method} failed unexpectedly: {exc!r}", retryable=False)


def _retry_after(headers: Mapping[str, Any] | None) -> float:
    for key, value in (headers or {}).items():
        if key.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                break
    return DEFAULT_RETRY_AFTER


def _advice(error: str, method: str, channel: str) -> str:
    name = channel if channel.startswith(("#", "C", "G")) else f"#{channel}"
    advice = {
        "invalid_auth": "Slack rejected the bot token (invalid_auth): set alerts.slack.token "
        "to the app's xoxb- bot token",
        "not_authed": "no Slack token was sent (not_authed): set alerts.slack.token",
        "token_revoked": "the Slack token was revoked (token_revoked): reinstall the app "
        "and set the new xoxb- token",
        "token_expired": "the Slack token expired (token_expired): set a new xoxb- token",
        "account_inactive": "the Slack bot was deactivated (account_inactive): reinstall the app",
        "channel_not_found": f"Slack channel {name} not found (channel_not_found): check "
        f"alerts.slack.channel, or invite the bot to it with /invite @uproar if it is private",
        "not_in_channel": f"the bot is not in {name} (not_in_channel): "
        "invite it with /invite @uproar",
        "is_archived": f"Slack channel {name} is archived (is_archived): unarchive it or set "
        "another alerts.slack.channel",
        "missing_scope": "the Slack app lacks a scope (missing_scope): "
        f"add {'files:write' if method.startswith('files') else 'chat:write'} and reinstall",
        "restricted_action": f"posting to {name} is restricted (restricted_action): ask a "
        "workspace admin to allow the bot",
    }
    return advice.get(error, f"Slack refused {method} ({error})")


class ConsoleSender(Sender):
    """Prints alerts as plain text lines; used when no Slack token is configured.

    It returns synthetic timestamps so threads and updates follow the same path as Slack.
    """

    target: ClassVar[str] = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        # Unique across restarts (the ts is stored), ordered within one run.
        self._run = uuid.uuid4().hex[:8]
        self._seq = itertools.count(1)

    def post(
        self,
        payload: Mapping[str, Any],
        *,
        thread_ts: str | None = None,
        channel: str | None = None,
    ) -> PostedMessage:
        try:
            self.stream.write(render_console(payload))
            self.stream.flush()
        except (OSError, ValueError) as exc:  # a closed stdout, a full disk
            raise AlertDeliveryError(f"console output failed: {exc}", retryable=True) from exc
        return PostedMessage(channel="console", ts=f"console-{self._run}-{next(self._seq)}")

    def update(self, ts: str, payload: Mapping[str, Any], *, channel: str | None = None) -> None:
        """A terminal cannot edit a printed line; the thread reply already told the news."""

    # A terminal cannot show a PNG, and a line like "chart: 31,586 bytes" tells a reader nothing,
    # so the console keeps the inherited no-op ``upload_chart`` and ``shows_charts`` stays False:
    # the dispatcher does not even draw a chart (nor import matplotlib) for console alerts.
