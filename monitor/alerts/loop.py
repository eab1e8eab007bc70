"""One round of the daemon's alert loop: read acknowledgements, fire due escalation levels,
deliver the outbox. Everything runs on the injected clock, so tests drive it by moving time."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from monitor.alerts.acks import ReactionAcks
from monitor.alerts.digest import DailyDigest
from monitor.alerts.dispatch import DeliveryReport, Dispatcher
from monitor.alerts.escalation import EscalationEngine
from monitor.alerts.interactive import SlackButtons

log = logging.getLogger(__name__)


class AlertLoop:
    def __init__(
        self,
        dispatcher: Dispatcher,
        escalations: EscalationEngine,
        acks: ReactionAcks | None = None,
        buttons: SlackButtons | None = None,
        others: Sequence[Dispatcher] = (),
        digest: DailyDigest | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.escalations = escalations
        self.acks = acks
        self.buttons = buttons
        self.others = list(others)  # webhooks, email: their own outbox targets
        self.digest = digest

    def start(self) -> None:
        """Start listening for button clicks (Socket Mode), when configured."""
        if self.buttons is not None:
            self.buttons.start()

    def stop(self) -> None:
        if self.buttons is not None:
            self.buttons.stop()
        for other in self.others:
            other.sender.close()

    def tick(self) -> DeliveryReport:
        """Acknowledgements first (so an acknowledged incident does not escalate), then
        escalation, then delivery of everything due."""
        if self.acks is not None:
            self.acks.poll_due()
        self.escalations.tick()
        report = self.dispatcher.deliver_due()
        if report.sent:
            self.escalations.tick()  # start the timers of alerts just posted
        for other in self.others:
            report += other.deliver_due()
        if self.digest is not None:
            self.digest.send_due()
        return report
