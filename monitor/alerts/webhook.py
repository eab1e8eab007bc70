"""A generic JSON webhook target: each outbox notice is POSTed as JSON, signed with HMAC-SHA256.

Headers (receivers MUST check the signature and SHOULD reject timestamps more than 5 minutes
off, and MAY use the delivery id to drop repeats: a retry after a timeout sends it again)::

    X-Uproar-Timestamp: 1700000000
    X-Uproar-Signature: sha256=<hex of HMAC-SHA256(secret, "<timestamp>." + body)>
    X-Uproar-Delivery:  <outbox id>

The body is the alert as JSON (``webhook_body``): the incident, the numbers, the reasons and the
quoted posts (untrusted text: escape it wherever you show it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from monitor.alerts.rules import WebhookTarget
from monitor.alerts.slack import PostedMessage, Sender
from monitor.clock import Clock
from monitor.errors import AlertDeliveryError

# Payload keys that are ours (routing and delivery), not the receiver's business.
INTERNAL_KEYS = frozenset(
    {"deliver_to", "outbox_id", "broadcast", "channel", "mentions", "kind"}
)
BODY_VERSION = 1


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def webhook_body(payload: Mapping[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in payload.items() if k not in INTERNAL_KEYS}
    body["version"] = BODY_VERSION
    body["event"] = payload.get("event") or "alert"
    return body


class WebhookSender(Sender):
    target: ClassVar[str] = "webhook"

    def __init__(self, hooks: Mapping[str, WebhookTarget], clock: Clock) -> None:
        self.hooks = dict(hooks)
        self.clock = clock
        self.client = httpx.Client(follow_redirects=False)

    def post(
        self,
        payload: Mapping[str, Any],
        *,
        thread_ts: str | None = None,
        channel: str | None = None,
    ) -> PostedMessage:
        name = str(channel or payload.get("deliver_to") or "")
        hook = self.hooks.get(name)
        if hook is None:
            raise AlertDeliveryError(
                f"no webhook {name!r} under alerts.webhooks (removed from the config?)",
                retryable=False,
            )
        delivery = str(payload.get("outbox_id", ""))
        body = json.dumps(webhook_body(payload), ensure_ascii=False, default=str).encode()
        timestamp = str(int(self.clock.now().timestamp()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "uproar-webhook/1",
            "X-Uproar-Timestamp": timestamp,
            "X-Uproar-Signature": signature(hook.secret, timestamp, body),
            "X-Uproar-Delivery": delivery,
        }
        try:
            response = self.client.post(
                hook.url, content=body, headers=headers, timeout=hook.timeout.total_seconds()
            )
        except httpx.HTTPError as exc:
            raise AlertDeliveryError(
                f"webhook {name} unreachable: {exc or type(exc).__name__}", retryable=True
            ) from exc
        status = response.status_code
        if status == 429:
            retry_after = _seconds(response.headers.get("Retry-After"))
            raise AlertDeliveryError(
                f"webhook {name} rate-limited (429)", retryable=True, retry_after=retry_after
            )
        if status >= 500:
            raise AlertDeliveryError(f"webhook {name} failed (HTTP {status})", retryable=True)
        if status >= 300:
            raise AlertDeliveryError(
                f"webhook {name} refused the alert (HTTP {status}); check its url and secret",
                retryable=False,
            )
        return PostedMessage(channel=name, ts=delivery or timestamp)

    def update(self, ts: str, payload: Mapping[str, Any], *, channel: str | None = None) -> None:
        """A webhook call cannot be edited; the next event carries the new state."""

    def close(self) -> None:
        self.client.close()


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
