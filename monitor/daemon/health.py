"""Is the daemon well? ``HealthState`` collects the facts, ``HealthServer`` answers ops over HTTP.

The rule (``HealthState.check``):

* **failing** — the scheduler is not running (or no scheduled job has finished for
  ``stall_after``: it is wedged), or the archive does not answer. Nothing useful can happen;
  /healthz answers 503 and the systemd watchdog stops being fed, so systemd restarts us.
* **degraded** — a source failed ``FAILURES_DEGRADED`` polls in a row or has not succeeded for
  ``SILENT_INTERVALS`` of its intervals, or alerts are stuck (pending with no delivery for
  ``stuck_after``). Uproar still listens; ops should look. /healthz answers 200.
* **ok** — otherwise.

``HealthServer`` is a small stdlib HTTP server in a daemon thread: ``GET /healthz`` (the report as
JSON), ``GET /readyz`` (200 once the daemon said it is ready) and ``GET /metrics`` (Prometheus
text format); anything else is 404. It binds ``http.listen``; ``":9464"`` binds every
interface, which exposes source error texts and metrics to the network — prefer 127.0.0.1 and
a reverse proxy.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from sqlalchemy import Engine, text

from monitor.clock import Clock
from monitor.config.listen import parse_listen  # re-exported: monitor.daemon.health's own
from monitor.daemon.metrics import Metrics
from monitor.errors import ConfigError, UproarError

if TYPE_CHECKING:
    from monitor.daemon.runner import PollOutcome

log = logging.getLogger("monitor.health")  # its name before the move: log lines unchanged

Status = Literal["ok", "degraded", "failing"]

# A source this many failed polls in a row is degraded (one or two blips are normal on the web).
FAILURES_DEGRADED = 3
# ... or one that has not succeeded for this many of its intervals (it may be silently skipped).
SILENT_INTERVALS = 3
# Alerts pending this long without any delivery are stuck (Slack down, token revoked, a bug).
STUCK_AFTER = timedelta(minutes=15)
# The delivery job runs every few seconds; no job at all finishing for this long means the
# scheduler is wedged, which a restart fixes.
STALL_AFTER = timedelta(minutes=5)
# Error texts are for a glance in /healthz and `systemctl status`, not for a full traceback.
MAX_ERROR_CHARS = 200


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _one_line(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(slots=True)
class SourceHealth:
    name: str
    every: timedelta
    since: datetime  # registered at: the "has not succeeded" grace period starts here
    failures: int = 0
    last_success: datetime | None = None
    last_failure: datetime | None = None
    last_error: str | None = None
    standby: bool = False  # scale-out: another process polls it (``monitor.daemon.leader``)


@dataclass(frozen=True, slots=True)
class HealthReport:
    status: Status
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def http_status(self) -> int:
        return 503 if self.status == "failing" else 200

    @property
    def reasons(self) -> list[str]:
        return list(self.details.get("reasons", []))

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, **self.details}

    def summary(self) -> str:
        """One line for systemd's STATUS=, e.g.
        ``listening: 3 sources ok, 1 failing (reddit: 401); 2 alerts queued``."""
        if self.status == "failing":
            head = "failing: " + "; ".join(self.reasons)
        else:
            head = "listening" if self.status == "ok" else "degraded"
        sources: dict[str, dict[str, Any]] = self.details.get("sources", {})
        ok = sum(1 for s in sources.values() if s["status"] == "ok")
        failing = [
            f"{name}: {_one_line(s['last_error'] or 'error', 40)}"
            for name, s in sources.items()
            if s["status"] == "failing"
        ]
        stale = [name for name, s in sources.items() if s["status"] == "stale"]
        parts = [f"{ok} source{'s' if ok != 1 else ''} ok"]
        if failing:
            parts.append(f"{len(failing)} failing ({', '.join(failing)})")
        if stale:
            parts.append(f"{len(stale)} silent ({', '.join(stale)})")
        line = f"{head}: {', '.join(parts)}"
        pending = self.details.get("outbox", {}).get("pending", 0)
        if pending:
            line += f"; {pending} alert{'s' if pending != 1 else ''} queued"
            if self.details["outbox"].get("stuck"):
                line += " (stuck)"
        return _one_line(line, 400)


class HealthState:
    """Thread-safe facts about the running daemon, updated by its jobs and read by /healthz.

    ``archive_check`` is called on every check; it should be quick (``SELECT 1``) and raise or
    return False when the archive is unreachable.
    """

    def __init__(
        self,
        *,
        archive_check: Callable[[], object] | None = None,
        stall_after: timedelta = STALL_AFTER,
        stuck_after: timedelta = STUCK_AFTER,
    ) -> None:
        self.archive_check = archive_check
        self.stall_after = stall_after
        self.stuck_after = stuck_after
        self._lock = threading.Lock()
        self._sources: dict[str, SourceHealth] = {}
        self._scheduler_alive = False
        self._last_beat: datetime | None = None
        self._last_detection: datetime | None = None
        self._pending = 0
        self._pending_since: datetime | None = None
        self._ready = False

    # -- updates (called from the daemon's jobs) ---------------------------------------------

    def add_source(self, name: str, every: timedelta, at: datetime) -> None:
        with self._lock:
            self._sources[name] = SourceHealth(name, every, at)

    def set_standby(self, name: str, standby: bool, at: datetime) -> None:
        """Scale-out: ``name`` is polled by another process (True) or by this one again."""
        with self._lock:
            source = self._sources.get(name)
            if source is None or source.standby == standby:
                return
            source.standby = standby
            if not standby:
                source.since = at  # a fresh grace period for the source just taken over

    def record_poll(self, outcome: PollOutcome, *, failures: int, at: datetime) -> None:
        """One finished poll; ``failures`` is the runner's consecutive-failure count after it."""
        with self._lock:
            self._last_beat = at
            if outcome.skipped:
                return
            source = self._sources.get(outcome.source)
            if source is None:
                source = self._sources[outcome.source] = SourceHealth(
                    outcome.source, timedelta(minutes=5), at
                )
            source.failures = failures
            if outcome.ok:
                source.last_success = at
                source.last_error = None
            else:
                source.last_failure = at
                problem = outcome.problems[0] if outcome.problems else "poll failed"
                source.last_error = _one_line(problem)

    def record_detection(self, at: datetime) -> None:
        with self._lock:
            self._last_detection = at
            self._last_beat = at

    def record_outbox(self, pending: int, at: datetime, *, sent: int = 0) -> None:
        """After a delivery round: ``pending`` rows wait, ``sent`` went out in this round.

        Alerts count as stuck when rows have been pending for ``stuck_after`` without a single
        one being delivered in between.
        """
        with self._lock:
            self._last_beat = at
            self._pending = pending
            if pending == 0:
                self._pending_since = None
            elif self._pending_since is None or sent > 0:
                self._pending_since = at

    def beat(self, at: datetime) -> None:
        """A scheduled job finished: the scheduler is not wedged."""
        with self._lock:
            self._last_beat = at

    def set_scheduler_alive(self, alive: bool, at: datetime) -> None:
        with self._lock:
            self._scheduler_alive = alive
            if alive:
                self._last_beat = at

    def mark_ready(self, ready: bool = True) -> None:
        with self._lock:
            self._ready = ready

    @property
    def ready(self) -> bool:
        with self._lock:
            return self._ready

    @property
    def outbox_pending(self) -> int:
        with self._lock:
            return self._pending

    # -- the rule ----------------------------------------------------------------------------

    def _archive_reachable(self) -> tuple[bool, str | None]:
        if self.archive_check is None:
            return True, None
        try:
            result = self.archive_check()
        except Exception as exc:
            return False, _one_line(f"{type(exc).__name__}: {exc}")
        if result is False:
            return False, "archive check failed"
        return True, None

    def check(self, now: datetime) -> HealthReport:
        reachable, archive_error = self._archive_reachable()  # outside the lock: it does I/O
        with self._lock:
            failing: list[str] = []
            degraded: list[str] = []
            stalled = (
                self._scheduler_alive
                and self._last_beat is not None
                and now - self._last_beat > self.stall_after
            )
            if not self._scheduler_alive:
                failing.append("scheduler not running")
            elif stalled:
                failing.append(f"scheduler stalled: no job finished since {_iso(self._last_beat)}")
            if not reachable:
                failing.append(f"archive unreachable ({archive_error})")

            sources: dict[str, dict[str, Any]] = {}
            for s in self._sources.values():
                if s.standby:
                    sources[s.name] = {"status": "standby", "consecutive_failures": 0,
                                       "every_seconds": s.every.total_seconds()}
                    continue
                silent_since = max(s.last_success or s.since, s.since)
                # per source: "failing" from the first failed poll; the daemon as a whole is only
                # degraded from FAILURES_DEGRADED on.
                source_status = "failing" if s.failures else "ok"
                if s.failures >= FAILURES_DEGRADED:
                    degraded.append(
                        f"source {s.name}: {s.failures} failed polls in a row ({s.last_error})"
                    )
                elif now - silent_since > s.every * SILENT_INTERVALS:
                    source_status = "failing" if s.failures else "stale"
                    degraded.append(
                        f"source {s.name}: no successful poll since {_iso(silent_since)}"
                    )
                sources[s.name] = {
                    "status": source_status,
                    "consecutive_failures": s.failures,
                    "last_success": _iso(s.last_success),
                    "last_failure": _iso(s.last_failure),
                    "last_error": s.last_error,
                    "every_seconds": s.every.total_seconds(),
                }

            stuck = self._pending_since is not None and now - self._pending_since > self.stuck_after
            if stuck:
                degraded.append(
                    f"alerts stuck: {self._pending} pending, none delivered since "
                    f"{_iso(self._pending_since)}"
                )

            status: Status = "failing" if failing else "degraded" if degraded else "ok"
            details: dict[str, Any] = {
                "reasons": failing + degraded,
                "checked_at": _iso(now),
                "ready": self._ready,
                "scheduler": {
                    "alive": self._scheduler_alive and not stalled,
                    "last_job_at": _iso(self._last_beat),
                },
                "archive": {"reachable": reachable, "error": archive_error},
                "sources": sources,
                "detection": {"last_run": _iso(self._last_detection)},
                "outbox": {
                    "pending": self._pending,
                    "pending_since": _iso(self._pending_since),
                    "stuck": stuck,
                },
            }
        return HealthReport(status, details)


def archive_ping(engine: Engine) -> Callable[[], None]:
    """An ``archive_check`` for :class:`HealthState`: ``SELECT 1`` on a pooled connection."""

    def ping() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    return ping


# -- the HTTP side -------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Bind immediately after a restart even if the old socket lingers in TIME_WAIT.
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], family: socket.AddressFamily, owner: HealthServer
    ) -> None:
        self.address_family = family
        self.owner = owner
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # A client that connects and sends nothing must not hold a thread for ever.
    timeout = 10
    server_version = "uproar"
    sys_version = ""

    def do_GET(self) -> None:
        self._respond(head=False)

    def do_HEAD(self) -> None:
        self._respond(head=True)

    def _respond(self, *, head: bool) -> None:
        owner = self.server.owner
        path = urlsplit(self.path).path
        try:
            if path == "/healthz":
                report = owner.state.check(owner.clock.now())
                body = json.dumps(report.to_json(), indent=2).encode() + b"\n"
                self._send(report.http_status, "application/json", body, head)
            elif path == "/readyz":
                ready = owner.state.ready
                body = json.dumps({"ready": ready}).encode() + b"\n"
                self._send(200 if ready else 503, "application/json", body, head)
            elif path == "/metrics":
                self._send(200, owner.metrics.content_type, owner.metrics.exposition(), head)
            else:
                # The path is not echoed back: nothing a client sends ends up in a response.
                self._send(404, "text/plain; charset=utf-8", b"not found\n", head)
        except Exception:
            log.exception("health endpoint failed (a bug, please report it)")
            self._send(500, "text/plain; charset=utf-8", b"internal error\n", head)

    def _send(self, status: int, content_type: str, body: bytes, head: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class HealthServer:
    """Serves /healthz, /readyz and /metrics on ``listen`` from a daemon thread."""

    def __init__(self, listen: str, state: HealthState, metrics: Metrics, clock: Clock) -> None:
        try:
            self.host, self.port = parse_listen(listen)
        except ValueError as exc:
            raise ConfigError([f"http.listen: {exc}"]) from None
        self.listen = listen
        self.state = state
        self.metrics = metrics
        self.clock = clock
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually bound; the port is real even when ``listen`` asked for 0."""
        if self._server is None:
            raise RuntimeError("HealthServer is not started")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> None:
        if self._server is not None:
            return
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            self._server = _Server((self.host, self.port), family, self)
        except OSError as exc:
            raise UproarError(
                f"cannot listen on {self.listen} for /healthz and /metrics: "
                f"{exc.strerror or exc}; set http.listen to a free address and port"
            ) from exc
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="uproar-http",
            daemon=True,
        )
        self._thread.start()
        log.info("health and metrics on %s (/healthz, /readyz, /metrics)", self.url)

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> HealthServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
