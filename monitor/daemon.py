"""`uproar run`: one APScheduler job per source, plus detection and alert delivery.

Jobs never overlap (max_instances=1) and missed runs are coalesced. SIGTERM/SIGINT let the
running jobs finish their batch (each batch is one archive transaction) and then exit.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.app import App
from monitor.durations import format_duration
from monitor.runner import SourceRunner
from monitor.sources import brand_queries, enabled_connectors

log = logging.getLogger("uproar")

# How often queued alerts are (re)tried; Slack allows about one message per second per channel.
DELIVERY_EVERY = timedelta(seconds=5)


def sd_notify(message: str) -> None:
    """Tell systemd about readiness/stopping when run as Type=notify; a no-op otherwise."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.debug("sd_notify failed: %s", exc)


class Daemon:
    def __init__(self, app: App) -> None:
        self.app = app
        self.stop = threading.Event()
        self.runners = [
            SourceRunner(
                name,
                connector,
                app.pipeline,
                brand_queries(app.config),
                app.clock,
                getattr(app.config.sources, name).every,
                getattr(app.config.sources, name).lookback,
            )
            for name, connector in enabled_connectors(app.config).items()
        ]
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
        )

    def _detect(self) -> None:
        try:
            self.app.pipeline.evaluate()
        except Exception:
            log.exception("detection failed (a bug, please report it)")

    def _deliver(self) -> None:
        try:
            report = self.app.pipeline.deliver()
        except Exception:
            log.exception("alert delivery failed (a bug, please report it)")
            return
        for failure in report.failures:
            log.error("alert for incident %d not delivered: %s", failure.incident_id, failure.error)

    def start(self) -> None:
        config = self.app.config
        detection = config.detection
        seeded = self.app.pipeline.warm_up(
            [b.key for b in config.brands], detection.history, detection.bucket
        )
        log.info("baselines warmed from %d archived buckets", seeded)
        now = datetime.now(UTC)
        for runner in self.runners:
            source = getattr(config.sources, runner.name)
            self.scheduler.add_job(
                runner.poll_once,
                IntervalTrigger(
                    seconds=source.every.total_seconds(), jitter=source.jitter.total_seconds()
                ),
                id=f"poll:{runner.name}",
                name=f"poll {runner.name}",
                next_run_time=now,
            )
            log.info("source %s: polling every %s", runner.name, format_duration(source.every))
        self.scheduler.add_job(
            self._detect, IntervalTrigger(seconds=detection.bucket.total_seconds()), id="detect"
        )
        self.scheduler.add_job(
            self._deliver,
            IntervalTrigger(seconds=DELIVERY_EVERY.total_seconds()),
            id="deliver",
            next_run_time=now,
        )
        self.scheduler.start()
        brands = ", ".join(b.name for b in config.brands)
        log.info("uproar running: listening for %s; alerts to %s", brands, self.app.alert_target)
        sd_notify("READY=1\nSTATUS=listening")

    def shutdown(self) -> None:
        sd_notify("STOPPING=1")
        log.info("stopping: finishing the current batch")
        self.scheduler.shutdown(wait=True)
        for runner in self.runners:
            runner.connector.close()
        self.app.close()
        log.info("stopped cleanly")

    def run_forever(self) -> None:
        previous = {
            sig: signal.signal(sig, lambda *_: self.stop.set())
            for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.start()
            self.stop.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.shutdown()
