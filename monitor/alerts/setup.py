"""Wire the alert loop from the config: acknowledgements by reaction, escalation, delivery to
Slack (or the console), webhooks and email, and the daily digest."""

from __future__ import annotations

from collections.abc import Mapping

from monitor.alerts.acks import ReactionAcks
from monitor.alerts.digest import DailyDigest
from monitor.alerts.dispatch import Dispatcher
from monitor.alerts.email import EmailSender
from monitor.alerts.escalation import EscalationEngine
from monitor.alerts.incidents import IncidentBook
from monitor.alerts.loop import AlertLoop
from monitor.alerts.rules import RoutingConfig
from monitor.alerts.slack import Sender
from monitor.alerts.webhook import WebhookSender


def build_alert_loop(
    rules: RoutingConfig,
    book: IncidentBook,
    dispatcher: Dispatcher,
    sender: Sender,
    *,
    brands: Mapping[str, str] | None = None,
    slack_channel: str = "",
    complaint_threshold: float = 0.5,
) -> AlertLoop:
    engine, clock = book.engine, book.clock
    acks = ReactionAcks(
        engine, book, sender, clock, reaction=rules.ack_reaction, every=rules.reactions_every
    )
    others: list[Dispatcher] = []
    email: EmailSender | None = None
    if rules.webhooks:
        hooks = WebhookSender(rules.webhooks, clock)
        others.append(
            Dispatcher(engine, hooks, clock, max_attempts=dispatcher.max_attempts, charts=False)
        )
    if rules.smtp.host:
        email = EmailSender(rules.smtp, clock)
        others.append(
            Dispatcher(engine, email, clock, max_attempts=dispatcher.max_attempts, charts=False)
        )
    digest = None
    if rules.digest.enabled:
        digest = DailyDigest(
            engine,
            clock,
            rules.digest,
            brands or {},
            slack=sender,
            slack_channel=slack_channel,
            email=email,
            complaint_threshold=complaint_threshold,
        )
    escalations = EscalationEngine(engine, book, clock)
    return AlertLoop(dispatcher, escalations, acks, others=others, digest=digest)
