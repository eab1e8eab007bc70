"""Running the real `uproar` CLI as a subprocess for fault tests: start, watch its log, kill.

The log goes to a file (not a pipe), so a process killed with SIGKILL never blocks on a full
pipe and the test can read the log after the fact.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# How long one wait for the daemon (model load included, on a busy machine) may take.
ANSWER = 180.0
# How often a waiting test looks again (an Event wait, so a stop ends it at once).
LOOK_EVERY = 0.02


class Uproar:
    """One `uproar` subprocess with its stderr in ``log``."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._handle = log.open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=self._handle,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float = ANSWER) -> None:
        """Wait until ``ready()``; fails (with the log) if the process dies or time runs out."""
        stop = threading.Event()
        waited = 0.0
        while not ready():
            if self.proc.poll() is not None and not ready():
                raise AssertionError(f"uproar exited ({self.proc.returncode}) before {what}:\n"
                                     + self.text()[-4000:])
            if waited > timeout:
                raise AssertionError(f"timed out waiting for {what}:\n" + self.text()[-4000:])
            stop.wait(LOOK_EVERY)
            waited += LOOK_EVERY

    def wait_for_log(self, text: str, count: int = 1) -> None:
        self.wait_until(lambda: self.text().count(text) >= count, repr(text))

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush, no goodbye."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=ANSWER)
        self._handle.close()

    def terminate(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=ANSWER)
        self._handle.close()
        return code

    def finish(self) -> int:
        code = self.proc.wait(timeout=ANSWER * 2)
        self._handle.close()
        return code


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def rows(db: Path, sql: str, *args: object) -> list[tuple]:
    with sqlite3.connect(db, timeout=30) as conn:
        return list(conn.execute(sql, args).fetchall())
