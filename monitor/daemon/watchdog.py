"""The systemd watchdog: ping ``WATCHDOG=1`` while healthy, and keep ``STATUS=`` up to date.

With ``WatchdogSec=`` in the unit, systemd restarts the service when the pings stop. A thread
pings every half interval, but only while ``HealthState.check`` is not "failing" (scheduler dead
or wedged, archive unreachable): a daemon that cannot do its work gets restarted instead of
sitting there. Each tick also sends a one-line ``STATUS=`` that ``systemctl status`` shows, e.g.
``listening: 3 sources ok, 1 failing (reddit: 401); 2 alerts queued``.

Waiting is ``threading.Event.wait``, so ``stop()`` returns at once.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping

from monitor.clock import Clock
from monitor.daemon.health import HealthReport, HealthState
from monitor.daemon.systemd import sd_notify, watchdog_interval

log = logging.getLogger("monitor.watchdog")  # its name before the move: log lines unchanged

Notify = Callable[[str], object]

# Without a watchdog, STATUS= is still refreshed this often (seconds) when run under systemd.
STATUS_EVERY = 60.0


class Watchdog:
    """Feeds systemd's watchdog from a daemon thread while the daemon is not failing.

    ``interval`` is systemd's watchdog timeout in seconds (None: no watchdog, STATUS only);
    the thread ticks every ``interval / 2``, or every ``status_every`` without a watchdog; with
    neither, ``start()`` does nothing.
    """

    def __init__(
        self,
        state: HealthState,
        clock: Clock,
        notify: Notify,
        *,
        interval: float | None,
        status_every: float | None = STATUS_EVERY,
    ) -> None:
        self.state = state
        self.clock = clock
        self.notify = notify
        self.interval = interval
        self.period = interval / 2 if interval else status_every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_status: str | None = None

    @classmethod
    def from_environ(
        cls,
        state: HealthState,
        clock: Clock,
        environ: Mapping[str, str] | None = None,
        *,
        pid: int | None = None,
        notify: Notify | None = None,
    ) -> Watchdog:
        """Configured from systemd's ``WATCHDOG_USEC``/``WATCHDOG_PID``/``NOTIFY_SOCKET``."""
        env = os.environ if environ is None else environ
        interval = watchdog_interval(env, os.getpid() if pid is None else pid)
        under_systemd = bool(env.get("NOTIFY_SOCKET"))
        return cls(
            state,
            clock,
            notify if notify is not None else (lambda message: sd_notify(message, env)),
            interval=interval,
            status_every=STATUS_EVERY if under_systemd else None,
        )

    @property
    def enabled(self) -> bool:
        """Whether systemd's watchdog is on for this process."""
        return self.interval is not None

    def tick(self) -> HealthReport:
        """Check health once and tell systemd: WATCHDOG=1 unless failing, and STATUS=."""
        report = self.state.check(self.clock.now())
        status = report.summary()
        lines = []
        if self.enabled and report.status != "failing":
            lines.append("WATCHDOG=1")
        lines.append(f"STATUS={status}")
        self.notify("\n".join(lines))
        previous, self._last_status = self._last_status, report.status
        if report.status == "failing" and previous != "failing" and self.enabled:
            log.error(
                "health failing (%s): no more watchdog pings, systemd restarts uproar within %ds"
                " unless it recovers",
                "; ".join(report.reasons),
                int(self.interval or 0),
            )
        elif previous == "failing" and report.status != "failing":
            log.warning("health recovered: %s", status)
        return report

    def _run(self) -> None:
        assert self.period is not None
        while True:
            try:
                self.tick()
            except Exception:  # a bug here must not kill the thread; no ping means a restart
                log.exception("watchdog check failed (a bug, please report it)")
            if self._stop.wait(self.period):
                return

    def start(self) -> None:
        if self.period is None or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="uproar-watchdog", daemon=True)
        self._thread.start()
        if self.enabled:
            log.info("systemd watchdog: pinging every %.1fs while healthy", self.period)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
