"""Alerting: a Signal becomes an incident, an outbox row, and a Slack thread (or console lines).

``IncidentBook`` records signals into incidents and the outbox in one transaction;
``Dispatcher`` delivers the outbox through a ``Sender`` (``SlackSender`` or ``ConsoleSender``).
"""

from __future__ import annotations

from monitor.alerts.dispatch import DeliveryFailure, DeliveryReport, Dispatcher
from monitor.alerts.incidents import IncidentBook, RecordedAlert, UnknownIncident
from monitor.alerts.slack import ConsoleSender, PostedMessage, Sender, SlackSender

__all__ = [
    "ConsoleSender",
    "DeliveryFailure",
    "DeliveryReport",
    "Dispatcher",
    "IncidentBook",
    "PostedMessage",
    "RecordedAlert",
    "Sender",
    "SlackSender",
    "UnknownIncident",
]
