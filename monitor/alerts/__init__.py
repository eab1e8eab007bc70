"""Alerting: a Signal becomes an incident, an outbox row, and a Slack thread (or console lines).

``IncidentBook`` records signals into incidents and the outbox in one transaction;
``Dispatcher`` delivers the outbox through a ``Sender`` (``SlackSender`` or ``ConsoleSender``).

May import: the other stages it needs (no circles), ``monitor.config``, ``monitor.signals``,
``monitor.clock``, ``monitor.errors``, ``connectors`` and ``models``. Must not import
``monitor.cli`` or ``monitor.daemon`` (checked by ``lint-imports``); imported by the pipeline,
the daemon and the CLI.
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
