"""`uproar run`: one APScheduler job per source, plus detection and alert delivery.

Jobs never overlap (max_instances=1) and missed runs are coalesced. SIGTERM/SIGINT let the
running jobs finish their batch (each batch is one archive transaction) and then exit.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from connectors.base import Connector
from monitor.config import Config
from monitor.daemon.app import App
from monitor.daemon.health import HealthServer, HealthState, archive_ping
from monitor.daemon.leader import ScaleOut
from monitor.daemon.metrics import Metrics
from monitor.daemon.ops import OpsNotifier
from monitor.daemon.refresh import build_refreshers, schedule_refreshers
from monitor.daemon.runner import PollOutcome, SourceRunner
from monitor.daemon.sources import brand_queries, enabled_connectors
from monitor.daemon.systemd import sd_notify
from monitor.daemon.watchdog import Watchdog
from monitor.durations import format_duration

log = logging.getLogger("uproar")

# How often queued alerts are (re)tried; Slack allows about one message per second per channel.
DELIVERY_EVERY = timedelta(seconds=5)


class Daemon:
    def __init__(self, app: App) -> None:
        self.app = app
        self.stop = threading.Event()
        self.runners = [
            self._runner(name, connector)
            for name, connector in enabled_connectors(app.config, clock=app.clock.now).items()
        ]
        self.refreshers = build_refreshers(app, self.runners)  # engagement of recent complaints
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
        )
        now = app.clock.now()
        self.metrics = Metrics()
        self.health = HealthState(archive_check=archive_ping(app.archive.engine))
        for runner in self.runners:
            self.metrics.add_source(runner.name)
            self.health.add_source(runner.name, runner.every, now)
        self.http = HealthServer(app.config.http.listen, self.health, self.metrics, app.clock)
        self.watchdog = Watchdog.from_environ(self.health, app.clock, os.environ)
        app.pipeline.on_classify = self.metrics.observe_classify
        # PostgreSQL shared by several daemons: who polls what, who alerts (SQLite: all, here).
        self.scaleout = ScaleOut(app, [r.name for r in self.runners], self.health)

    def _runner(self, name: str, connector: Connector) -> SourceRunner:
        app = self.app
        settings = getattr(app.config.sources, name)
        return SourceRunner(
            name, connector, app.pipeline, brand_queries(app.config), app.clock,
            settings.every, settings.lookback,
            ops=OpsNotifier(app.pipeline.dispatcher.sender, app.config.alerts.ops_channel),
        )

    def _schedule_source(self, runner: SourceRunner, now: datetime) -> None:
        source = getattr(self.app.config.sources, runner.name)
        self.scheduler.add_job(
            self._poll,
            IntervalTrigger(
                seconds=source.every.total_seconds(), jitter=source.jitter.total_seconds()
            ),
            args=[runner],
            id=f"poll:{runner.name}",
            name=f"poll {runner.name}",
            next_run_time=now,
        )
        log.info("source %s: polling every %s", runner.name, format_duration(source.every))

    def _poll(self, runner: SourceRunner) -> PollOutcome:
        if not self.scaleout.may_poll(runner.name):  # another process polls it
            return PollOutcome(runner.name, ok=True, skipped=True)
        outcome = runner.poll_once()
        self.scaleout.after_poll(outcome.mentions)
        at = self.app.clock.now()
        self.metrics.record_poll(outcome, failures=runner.failures, at=at)
        self.health.record_poll(outcome, failures=runner.failures, at=at)
        return outcome

    def _detect(self) -> None:
        try:
            if not self.scaleout.lead():  # only the leader detects and alerts
                return
            signals = self.app.pipeline.evaluate()
        except Exception:
            log.exception("detection failed (a bug, please report it)")
            return
        self.metrics.record_signals(signals)
        self.health.record_detection(self.app.clock.now())

    def _deliver(self) -> None:
        if not self.scaleout.is_leader:
            return
        try:
            alerting = self.app.alerting
            report = alerting.tick() if alerting else self.app.pipeline.deliver()
            pending = self.app.pipeline.dispatcher.pending_count()
        except Exception:
            log.exception("alert delivery failed (a bug, please report it)")
            return
        self.metrics.record_delivery(report, self.app.alert_target)
        self.metrics.set_outbox_pending(pending)
        self.health.record_outbox(pending, self.app.clock.now(), sent=report.sent)
        for failure in report.failures:
            log.error("alert for incident %d not delivered: %s", failure.incident_id, failure.error)

    def start(self) -> None:
        self.http.start()
        config = self.app.config
        detection = config.detection
        seeded = self.app.pipeline.warm_up(
            [b.key for b in config.brands], detection.history, detection.bucket
        )
        log.info("baselines warmed from %d archived buckets", seeded)
        now = datetime.now(UTC)
        for runner in self.runners:
            self._schedule_source(runner, now)
        schedule_refreshers(self.scheduler, self.refreshers, now)
        self.scheduler.add_job(
            self._detect, IntervalTrigger(seconds=detection.bucket.total_seconds()), id="detect"
        )
        self.scheduler.add_job(
            self._deliver,
            IntervalTrigger(seconds=DELIVERY_EVERY.total_seconds()),
            id="deliver",
            next_run_time=now,
        )
        self.scaleout.start(self.scheduler)
        self.scheduler.start()
        if self.app.alerting is not None:
            self.app.alerting.start()  # Slack buttons over Socket Mode, when configured
        self.health.set_scheduler_alive(True, self.app.clock.now())
        self.metrics.set_up(True)
        brands = ", ".join(b.name for b in config.brands)
        log.info("uproar running: listening for %s; alerts to %s", brands, self.app.alert_target)
        sd_notify("READY=1\nSTATUS=listening")
        self.health.mark_ready()
        self.watchdog.start()

    def shutdown(self) -> None:
        self.health.mark_ready(False)
        self.watchdog.stop()
        sd_notify("STOPPING=1")
        log.info("stopping: finishing the current batch")
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        for runner in self.runners:
            runner.mark_stopped()
        self.scaleout.close()
        self.health.set_scheduler_alive(False, self.app.clock.now())
        self.metrics.set_up(False)
        self.http.stop()
        for runner in self.runners:
            runner.connector.close()
        if self.app.alerting is not None:
            self.app.alerting.stop()
        self.app.close()
        log.info("stopped cleanly")

    def reload(self, new: Config) -> list[str] | None:
        """Apply ``new`` while running, restarting only the poll (and refresh) jobs of the
        sources whose settings changed; the others keep their schedule, state and connection.
        Returns those sources' names, or None when more than source settings changed (brands,
        alerts, archive, ...: the caller restarts everything). ``logging`` is the caller's: it
        applies a new level or format without restarting anything."""
        old = self.app.config
        same = {"sources", "logging"}
        if old.model_dump(exclude=same) != new.model_dump(exclude=same):
            return None
        if set(old.sources.enabled()) != set(new.sources.enabled()):
            return None
        before, after = old.sources.all(), new.sources.all()
        changed = [name for name in new.sources.enabled() if before[name] != after[name]]
        self.app.config = new
        for name in changed:
            self._restart_source(name)
        return changed

    def _restart_source(self, name: str) -> None:
        old = next(r for r in self.runners if r.name == name)
        for job in (f"poll:{name}", f"refresh:{name}"):
            if self.scheduler.get_job(job) is not None:
                self.scheduler.remove_job(job)
        with old.lock:  # a poll under way finishes first
            old.connector.close()
        connector = enabled_connectors(self.app.config, name, clock=self.app.clock.now)[name]
        runner = self._runner(name, connector)
        self.runners[self.runners.index(old)] = runner
        refreshers = build_refreshers(self.app, [runner])
        self.refreshers = [r for r in self.refreshers if r.name != name] + refreshers
        now = datetime.now(UTC)
        self.health.add_source(name, runner.every, self.app.clock.now())
        self._schedule_source(runner, now)
        schedule_refreshers(self.scheduler, refreshers, now)

    def run_forever(
        self,
        signals: SignalBox | None = None,
        reload: Callable[[], Config | None] | None = None,
    ) -> str:
        """Run until SIGTERM/SIGINT ("stop") or SIGHUP ("reload"); always shuts down cleanly.

        ``reload`` reads the config anew on SIGHUP: None (refused; it logs why) keeps
        everything running as it was; a config that changes only sources' settings restarts
        only their jobs; any other change returns "reload" for the caller to restart all.
        """
        box = signals or SignalBox()
        own = signals is None
        if own:
            box.install()
        try:
            self.start()
            while True:
                box.wait()
                if box.reason != "reload" or reload is None:
                    break
                # Re-arm before the reload's work, not after: a SIGHUP (or SIGTERM) that
                # arrives while this one is handled is then seen by the next wait, not lost.
                if not box.rearm():
                    break
                new = reload()
                if new is not None:
                    changed = self.reload(new)
                    if changed is None:
                        # more than sources changed: the caller restarts everything (unless
                        # a stop arrived meanwhile; then that wins)
                        if not (box.event.is_set() and box.reason == "stop"):
                            box.reason = "reload"
                        break
                    log.info("config reloaded: %s", (
                        "restarted " + ", ".join(f"source {n}" for n in changed)
                        if changed else "nothing changed"))
        finally:
            if own:
                box.restore()
            if box.reason == "reload":
                sd_notify("RELOADING=1")
            self.shutdown()
        return box.reason


class SignalBox:
    """SIGTERM/SIGINT mean stop, SIGHUP means reload; installed once for the process's life, so
    a signal arriving between a reload's shutdown and the next start is never lost."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = "stop"
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._stop)
        self._previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._reload)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def wait(self) -> None:
        # Not a bare Event.wait(): the kernel may deliver SIGTERM/SIGHUP to any of the daemon's
        # threads, and CPython runs the Python handler only when the main thread next runs
        # bytecode; a main thread asleep on a lock with no timeout then never wakes (the
        # intermittent hang in the systemd and SIGHUP tests). Waking twice a second is enough.
        while not self.event.wait(0.5):
            pass

    def rearm(self) -> bool:
        """Ready for the next run; False when a stop arrived meanwhile."""
        if self.reason == "stop" and self.event.is_set():
            return False
        self.event.clear()
        self.reason = "stop"
        return True

    def _stop(self, *_: object) -> None:
        self.reason = "stop"
        self.event.set()

    def _reload(self, *_: object) -> None:
        if self.reason != "stop" or not self.event.is_set():
            self.reason = "reload"
        self.event.set()
