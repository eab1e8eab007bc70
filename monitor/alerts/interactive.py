"""Alert buttons over Slack Socket Mode: Acknowledge, Resolve, Silence 1h.

Socket Mode needs no public URL: slack-sdk's ``SocketModeClient`` (websocket-client) opens a
websocket with the app-level token (``alerts.slack.app_token``, xapp-…, scope
connections:write) and Slack pushes each button click as an envelope. The click is applied
through ``IncidentBook`` and the envelope acknowledged right after (Slack retries
unacknowledged ones), so the archive stays the one place alert state lives: escalation stops, and
the daemon's next delivery round posts the thread reply and updates the parent message.

Everything in a click is untrusted: the incident id must be digits, the user id must look like
a Slack user id (it is shown as a mention), unknown actions are ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from monitor.alerts.incidents import IncidentBook, UnknownIncident
from monitor.alerts.render import ACTION_ACK, ACTION_RESOLVE, ACTION_SILENCE
from monitor.alerts.rules import USER_ID

log = logging.getLogger(__name__)

# What "Silence 1h" means.
SILENCE_FOR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Click:
    action: str
    incident_id: int
    user: str


def clicks(payload: Mapping[str, Any]) -> list[Click]:
    """The button clicks of a ``block_actions`` payload that are ours and well-formed."""
    if payload.get("type") != "block_actions":
        return []
    user = str((payload.get("user") or {}).get("id") or "")
    if not USER_ID.match(user):
        return []
    found = []
    for action in payload.get("actions") or []:
        action_id = str(action.get("action_id") or "")
        value = str(action.get("value") or "")
        if action_id in (ACTION_ACK, ACTION_RESOLVE, ACTION_SILENCE) and value.isdigit():
            found.append(Click(action_id, int(value), user))
    return found


class SlackButtons:
    """Listens for button clicks over Socket Mode while the daemon runs."""

    def __init__(
        self,
        app_token: str,
        bot_token: str,
        api_url: str,
        book: IncidentBook,
        *,
        ping_interval: float = 10,
    ) -> None:
        self.app_token = app_token
        self.book = book
        self.web_client = WebClient(token=bot_token, base_url=api_url, retry_handlers=[])
        self.ping_interval = ping_interval
        self.client: Any = None

    def start(self) -> bool:
        """Connect; on failure log what to fix and return False (reactions still work)."""
        from slack_sdk.socket_mode.websocket_client import SocketModeClient

        client = SocketModeClient(
            app_token=self.app_token,
            web_client=self.web_client,
            auto_reconnect_enabled=True,
            ping_interval=self.ping_interval,
        )
        client.socket_mode_request_listeners.append(self._on_request)
        try:
            client.connect()
        except Exception as exc:  # invalid app token, Slack unreachable: buttons are optional
            log.error(
                "Slack buttons are off: Socket Mode did not connect (%s); check "
                "alerts.slack.app_token (xapp-…, scope connections:write). "
                "A :white_check_mark: reaction still acknowledges.",
                exc,
            )
            client.close()
            return False
        self.client = client
        log.info("Slack buttons on: listening over Socket Mode")
        return True

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def _on_request(self, client: Any, request: SocketModeRequest) -> None:
        """Apply the click, then acknowledge the envelope (always; a click is a short write,
        well inside Slack's 3 seconds, and a click that failed would fail again)."""
        try:
            if request.type == "interactive":
                for click in clicks(request.payload):
                    self._apply_logged(click)
        finally:
            client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))

    def _apply_logged(self, click: Click) -> None:
        try:
            self.apply(click)
        except UnknownIncident:
            log.warning("button %s for unknown incident #%s", click.action, click.incident_id)
        except Exception:  # one bad click must not kill the listener thread
            log.exception("button %s on incident #%s failed", click.action, click.incident_id)

    def apply(self, click: Click) -> bool:
        if click.action == ACTION_ACK:
            done = self.book.acknowledge(click.incident_id, click.user)
        elif click.action == ACTION_RESOLVE:
            done = self.book.resolve(click.incident_id, click.user)
        else:
            self.book.silence(click.incident_id, click.user, SILENCE_FOR)
            done = True
        log.info("incident #%s: %s by %s (button)", click.incident_id, click.action, click.user)
        return done
