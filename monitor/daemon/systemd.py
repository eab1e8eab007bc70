"""The systemd notify protocol: readiness, status and watchdog pings over ``NOTIFY_SOCKET``.

The single implementation of ``sd_notify`` (``monitor.daemon.loop`` re-exports it). The environment
is passed in so tests can point it at a socket of their own; by default it is ``os.environ``.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("monitor.systemd")  # its name before the move: log lines unchanged


def sd_notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``message`` ("READY=1", "STATUS=…", "WATCHDOG=1", …) to systemd.

    A no-op returning False when not run under systemd (no ``NOTIFY_SOCKET``) or when the send
    fails; it never raises, so a notify problem cannot take the daemon down.
    """
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract-namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.debug("sd_notify failed: %s", exc)
        return False
    return True


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """The watchdog timeout in seconds that systemd asked for, or None if it is off.

    ``WATCHDOG_USEC`` is set by ``WatchdogSec=``; if ``WATCHDOG_PID`` is set too, the watchdog
    is meant for that process only (not for a child that inherited the environment).
    """
    usec = environ.get("WATCHDOG_USEC", "").strip()
    if not usec:
        return None
    watch_pid = environ.get("WATCHDOG_PID", "").strip()
    if watch_pid:
        try:
            if int(watch_pid) != pid:
                return None
        except ValueError:
            log.warning("ignoring WATCHDOG_PID=%r: not a process id", watch_pid)
            return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("ignoring WATCHDOG_USEC=%r: not a number of microseconds", usec)
        return None
    if value <= 0:
        return None
    return value / 1_000_000
