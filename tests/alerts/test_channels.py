"""Other alert channels: a signed JSON webhook (a recording HTTP server on 127.0.0.1), email over
SMTP (aiosmtpd on 127.0.0.1), and the daily digest per brand — all on the injected clock."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from connectors.base import Author, Engagement, Mention
from models.base import Classification
from monitor.alerts import Dispatcher, IncidentBook, SlackSender
from monitor.alerts.rules import Router
from monitor.alerts.setup import build_alert_loop
from monitor.archive import Archive, StoredMention, schema
from monitor.clock import SimulatedClock
from monitor.config import AlertsConfig
from tests.alerts.test_alerts import all_texts, signal
from tests.alerts.test_escalation import T0, Rig, run_stamped
from tests.fakes import slack as fakeslack
from tests.fakes.slack import CHANNEL_ID, FakeSlack

aiosmtpd_controller = pytest.importorskip(
    "aiosmtpd.controller", reason="needs aiosmtpd (pip install -e .[dev])"
)

fake_slack = fakeslack.fake_slack
SECRET = "s3cret-shared-with-the-receiver"


# -- a webhook receiver ---------------------------------------------------------------------------


class HookServer:
    """Records POSTs; answers with the statuses queued in ``answers`` (then 200)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[tuple[int, dict[str, str]]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status, headers = hook.answers.pop(0) if hook.answers else (200, {})
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/uproar"

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]


@pytest.fixture
def hook_server() -> Iterator[HookServer]:
    server = HookServer()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


# -- an SMTP server -------------------------------------------------------------------------------


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []
        self.refuse: int | None = None  # answer DATA with this code (e.g. 550)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return f"{self.refuse} 5.7.1 refused by policy"
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = aiosmtpd_controller.Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


# -- the rig --------------------------------------------------------------------------------------


def rig_for(tmp_path: Any, slack: FakeSlack, rules: dict[str, Any], clock: SimulatedClock) -> Rig:
    config = AlertsConfig.model_validate(rules)
    archive = Archive(f"sqlite:///{tmp_path / 'uproar.db'}")
    sender = SlackSender(slack.token, "#brand-alerts", slack.url)
    book = IncidentBook(archive.engine, clock, router=Router(config, "#brand-alerts"))
    dispatcher = Dispatcher(archive.engine, sender, clock, charts=False)
    loop = build_alert_loop(
        config, book, dispatcher, sender,
        brands={"united": "United Airlines", "acme": "Acme"}, slack_channel="#brand-alerts",
    )
    return Rig(archive, book, loop, clock)


def test_webhook_gets_signed_alerts_escalations_and_the_ack(
    tmp_path: Any, fake_slack: FakeSlack, hook_server: HookServer
) -> None:
    rules = {
        "webhooks": {"ops": {"url": hook_server.url, "secret": SECRET}},
        "policies": {"pr": {"levels": [{"webhook": ["ops"]},
                                       {"after": "15m", "webhook": ["ops"]}]}},
        "routes": [{"policy": "pr"}],
    }
    rig = rig_for(tmp_path, fake_slack, rules, SimulatedClock(T0))
    hook_server.answers = [(500, {}), (429, {"Retry-After": "45"})]
    recorded = rig.book.record(signal(T0))
    for _ in range(8):  # the daemon's loop every 15 s for two minutes
        rig.loop.tick()
        rig.clock.advance(timedelta(seconds=15))
    run_stamped(rig, fake_slack, T0 + timedelta(minutes=20))
    rig.book.acknowledge(recorded.incident_id, "U0DAVE")
    run_stamped(rig, fake_slack, T0 + timedelta(minutes=25))
    rig.archive.close()

    events = hook_server.events()
    # 500 (retried after 30 s), then 429 (retried after Retry-After: 45 s), then delivered.
    assert [e["event"] for e in events] == ["alert", "alert", "alert", "escalated", "acknowledged"]
    alert = events[2]
    assert alert["version"] == 1 and alert["incident_id"] == recorded.incident_id
    assert alert["brand"] == "united" and alert["severity"] == "warning"
    assert alert["examples"][0]["author_handle"] == "sonsofmaxwell"
    assert events[3]["level"] == 2 and events[3]["minutes"] == 15
    assert events[4]["by"] == "U0DAVE" and events[4]["status"] == "acknowledged"
    for headers, body in hook_server.requests:
        timestamp = headers["x-uproar-timestamp"]
        expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
        assert headers["x-uproar-signature"] == "sha256=" + expected.hexdigest()
        assert headers["content-type"] == "application/json"
    stamps = [int(h["x-uproar-timestamp"]) - int(T0.timestamp()) for h, _ in hook_server.requests]
    assert stamps[:3] == [0, 30, 75]  # the clock's time: backoff, then Retry-After honoured
    assert {h["x-uproar-delivery"] for h, _ in hook_server.requests[:3]} == {
        hook_server.requests[0][0]["x-uproar-delivery"]
    }  # the same delivery id on each retry, so a receiver can drop repeats
    assert not any(k in alert for k in ("deliver_to", "outbox_id", "mentions"))


def test_a_webhook_that_refuses_is_reported_not_retried_forever(
    tmp_path: Any, fake_slack: FakeSlack, hook_server: HookServer
) -> None:
    rules = {
        "webhooks": {"ops": {"url": hook_server.url, "secret": SECRET}},
        "policies": {"pr": {"levels": [{"webhook": ["ops"]}]}},
        "routes": [{"policy": "pr"}],
    }
    rig = rig_for(tmp_path, fake_slack, rules, SimulatedClock(T0))
    hook_server.answers = [(401, {})]
    rig.book.record(signal(T0))
    reports = [rig.loop.tick() for _ in range(3)]
    rig.archive.close()
    assert len(hook_server.requests) == 1
    [failure] = [f for r in reports for f in r.failures]
    assert "webhook ops refused the alert (HTTP 401); check its url and secret" in failure.error
    assert len(fake_slack.messages) == 1  # Slack got its alert all the same


def test_email_alerts_form_one_thread_per_incident(
    tmp_path: Any, fake_slack: FakeSlack, mailbox: tuple[Mailbox, int]
) -> None:
    box, port = mailbox
    rules = {
        "smtp": {"host": "127.0.0.1", "port": port, "security": "none",
                 "from": "uproar@example.com"},
        "policies": {"pr": {"levels": [{"email": ["pr@example.com"]},
                                       {"after": "15m", "email": ["vp@example.com"]}]}},
        "routes": [{"policy": "pr"}],
    }
    rig = rig_for(tmp_path, fake_slack, rules, SimulatedClock(T0))
    hostile = "<script>x</script> United lost my bag\r\nBcc: everyone@example.com"
    rig.book.record(signal(T0, brand_name="United Airlines", reasons=(hostile,)))
    run_stamped(rig, fake_slack, T0 + timedelta(minutes=16))
    rig.archive.close()

    [(to1, first), (to2, second)] = box.messages
    assert to1 == ["pr@example.com"] and to2 == ["vp@example.com"]
    assert first["Subject"] == "[Uproar] WARNING United Airlines: complaints spiking (incident #1)"
    assert first["Message-ID"] == "<uproar-incident-1@example.com>"
    assert second["Subject"].startswith("[Uproar] ESCALATED: United Airlines complaints spiking")
    assert second["In-Reply-To"] == first["Message-ID"]
    assert second["Bcc"] is None and first["Bcc"] is None  # no header injection from a post
    body = first.get_payload(decode=True).decode()
    assert "United broke my guitar" in body and "@sonsofmaxwell" in body


def test_email_refused_by_the_server_fails_for_good(
    tmp_path: Any, fake_slack: FakeSlack, mailbox: tuple[Mailbox, int]
) -> None:
    box, port = mailbox
    box.refuse = 550
    rules = {
        "smtp": {"host": "127.0.0.1", "port": port, "security": "none"},
        "policies": {"pr": {"levels": [{"email": ["pr@example.com"]}]}},
        "routes": [{"policy": "pr"}],
    }
    rig = rig_for(tmp_path, fake_slack, rules, SimulatedClock(T0))
    rig.book.record(signal(T0))
    [failure] = rig.loop.tick().failures
    rig.archive.close()
    assert "mail server refused the email to pr@example.com: 550" in failure.error


# -- the daily digest -----------------------------------------------------------------------------


def mentions(day_start: datetime, n: int, complaints: int) -> list[StoredMention]:
    stored = []
    for i in range(n):
        mention = Mention(
            source="twitter", source_id=f"d{i}", url=f"https://x.example/{i}",
            text=f"united flight {i}", created_at=day_start + timedelta(minutes=10 * i),
            author=Author(handle="someone", name="Someone", followers=10),
            engagement=Engagement(), lang="en", raw={},
        )
        score = 0.9 if i < complaints else 0.1
        classification = Classification(
            sentiment="negative", scores={"negative": 0.8, "neutral": 0.1, "positive": 0.1},
            complaint=score,
        )
        stored.append(StoredMention(mention, ("united",), classification, "m", "1"))
    return stored


def test_daily_digest_goes_out_once_a_day_at_its_local_time(
    tmp_path: Any, fake_slack: FakeSlack, mailbox: tuple[Mailbox, int]
) -> None:
    box, port = mailbox
    rules = {
        "smtp": {"host": "127.0.0.1", "port": port, "security": "none"},
        "digest": {"enabled": True, "at": "08:00", "timezone": "Europe/Berlin",
                   "email": ["pr@example.com"]},
    }
    start = datetime(2009, 7, 7, 5, 30, tzinfo=UTC)  # 07:30 in Berlin (CEST)
    clock = SimulatedClock(start)
    rig = rig_for(tmp_path, fake_slack, rules, clock)
    rig.archive.store(mentions(start - timedelta(hours=20), 40, 12), fetched_at=start)
    rig.book.record(signal(start - timedelta(hours=3), severity="critical", count=90))
    clock.set(start)
    run_stamped(rig, fake_slack, start + timedelta(hours=1))
    rig.archive.close()

    digests = [m for m in fake_slack.in_channel(CHANNEL_ID) if "Daily digest" in m["text"]]
    assert [m for m in digests] and len(digests) == 2  # United and Acme, once each
    united = next(m for m in digests if "United" in m["blocks"][0]["text"]["text"])
    text = " ".join(all_texts(united["blocks"]))
    assert "40 mentions, 12 complaints (30%)" in text
    assert "#1 critical" in text and "peak 90 complaints" in text
    eight_in_berlin = datetime(2009, 7, 7, 6, 0, tzinfo=UTC)
    assert [m["minute"] for m in digests] == [(eight_in_berlin - T0).total_seconds() / 60] * 2
    assert sorted(m["Subject"] for _, m in box.messages) == [
        "[Uproar] Daily digest: Acme", "[Uproar] Daily digest: United Airlines"
    ]

    # A restart the same day sends nothing again; the next day's digest comes at 08:00 again.
    again = rig_for(tmp_path, fake_slack, rules, clock)
    again.loop.tick()
    clock.set(datetime(2009, 7, 8, 6, 0, tzinfo=UTC))
    again.loop.tick()
    with again.engine.connect() as conn:
        days = sorted(set(conn.execute(select(schema.digests.c.day)).scalars()))
    again.archive.close()
    assert days == ["2009-07-07", "2009-07-08"]
    assert len([m for m in fake_slack.messages if "Daily digest" in m["text"]]) == 4
