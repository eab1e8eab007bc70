"""Telling ops once that a source needs a person: a log line, and one Slack message in
``alerts.ops_channel`` when it is set and Slack is configured. Never retried, never raises:
the daemon carries on whatever happens here."""

from __future__ import annotations

import logging

from monitor.alerts.render import mrkdwn
from monitor.alerts.slack import Sender, SlackSender

log = logging.getLogger("uproar.ops")


class OpsNotifier:
    def __init__(self, sender: Sender | None = None, channel: str = "") -> None:
        self.sender = sender
        self.channel = channel

    def notify(self, text: str, *, level: int = logging.ERROR) -> bool:
        """Log ``text`` and post it to the ops channel; True if Slack took it."""
        log.log(level, "%s", text)
        if not self.channel or not isinstance(self.sender, SlackSender):
            return False
        mark = ":warning: " if level >= logging.ERROR else ""
        try:
            self.sender.client.chat_postMessage(
                channel=self.channel,
                text=mark + mrkdwn(text, formatting=False),
                unfurl_links=False, unfurl_media=False,
            )
        except Exception as exc:  # Slack down must not take a source's poll with it
            log.warning("could not tell ops in Slack channel %s: %s", self.channel, exc)
            return False
        return True
