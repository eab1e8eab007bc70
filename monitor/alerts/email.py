"""Email target: each outbox notice (and the daily digest) as a plain-text email over SMTP.

An incident's emails form one thread in a mail client: the first one has the Message-ID
``<uproar-incident-N@host>``, later ones refer to it (In-Reply-To, References). Bodies are the
console rendering (plain text, so post text from the internet cannot inject markup, with bidi,
zero-width and control characters removed); header values are single lines.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, ClassVar

from monitor.alerts.render import plain, render_console
from monitor.alerts.rules import SmtpConfig
from monitor.alerts.slack import PostedMessage, Sender
from monitor.clock import Clock
from monitor.errors import AlertDeliveryError

# SMTP reply codes that a later attempt may fix (4xx: transient by definition).
TRANSIENT_SMTP = range(400, 500)
MAX_SUBJECT = 200


def subject_for(payload: Mapping[str, Any]) -> str:
    brand = " ".join(plain(str(payload.get("brand_name") or payload.get("brand") or "?")).split())
    incident = payload.get("incident_id", "?")
    event = payload.get("event") or "alert"
    if payload.get("kind") == "digest":
        text = f"[Uproar] Daily digest: {brand}"
    elif event == "escalated":
        text = (
            f"[Uproar] ESCALATED: {brand} complaints spiking, unacknowledged for "
            f"{payload.get('minutes', '?')} min (incident #{incident})"
        )
    elif event in ("acknowledged", "resolved", "silenced"):
        who = " ".join(plain(str(payload.get("by") or "someone")).split())
        text = f"[Uproar] {brand}: incident #{incident} {event} by {who}"
    else:
        severity = str(payload.get("severity", "")).upper()
        text = f"[Uproar] {severity} {brand}: complaints spiking (incident #{incident})"
    return text[:MAX_SUBJECT]


class EmailSender(Sender):
    target: ClassVar[str] = "email"

    def __init__(self, smtp: SmtpConfig, clock: Clock) -> None:
        self.smtp = smtp
        self.clock = clock
        self.domain = smtp.sender.rsplit("@", 1)[-1] or "localhost"

    def message(self, payload: Mapping[str, Any], to: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.smtp.sender
        message["To"] = to
        message["Subject"] = subject_for(payload)
        message["Date"] = format_datetime(self.clock.now())
        incident = payload.get("incident_id")
        thread = f"<uproar-incident-{incident}@{self.domain}>"
        if payload.get("kind") == "digest" or not isinstance(incident, int):
            message["Message-ID"] = make_msgid("uproar-digest", self.domain)
        elif payload.get("event", "alert") == "alert":
            message["Message-ID"] = thread
        else:
            message["Message-ID"] = make_msgid(f"uproar-{incident}", self.domain)
            message["In-Reply-To"] = thread
            message["References"] = thread
        body = plain(str(payload.get("text"))) if payload.get("kind") == "digest" else (
            render_console(payload)
        )
        message.set_content(body)
        return message

    def post(
        self,
        payload: Mapping[str, Any],
        *,
        thread_ts: str | None = None,
        channel: str | None = None,
    ) -> PostedMessage:
        to = str(channel or payload.get("deliver_to") or "")
        message = self.message(payload, to)
        try:
            self._send(message)
        except smtplib.SMTPResponseException as exc:
            raise AlertDeliveryError(
                f"mail server refused the email to {to}: {exc.smtp_code} {_text(exc.smtp_error)}",
                retryable=exc.smtp_code in TRANSIENT_SMTP,
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise AlertDeliveryError(
                f"mail server refused the recipient {to}", retryable=False
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:  # timeouts are OSErrors
            raise AlertDeliveryError(
                f"mail server {self.smtp.host}:{self.smtp.port} unreachable: {exc}",
                retryable=True,
            ) from exc
        return PostedMessage(channel=to, ts=str(message["Message-ID"]))

    def _send(self, message: EmailMessage) -> None:
        smtp = self.smtp
        timeout = smtp.timeout.total_seconds()
        client: smtplib.SMTP
        if smtp.security == "ssl":
            client = smtplib.SMTP_SSL(
                smtp.host, smtp.port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=timeout)
        with client:
            if smtp.security == "starttls":
                client.starttls(context=ssl.create_default_context())
            if smtp.username:
                client.login(smtp.username, smtp.password)
            client.send_message(message)

    def update(self, ts: str, payload: Mapping[str, Any], *, channel: str | None = None) -> None:
        """A sent email cannot be edited; the next email carries the new state."""


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
