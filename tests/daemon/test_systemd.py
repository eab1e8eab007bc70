"""systemd integration: the unit file as ops install it, and `uproar run` speaking sd_notify.

The notify test plays systemd: it binds an AF_UNIX datagram socket, starts the real daemon with
``NOTIFY_SOCKET`` and ``WATCHDOG_USEC`` pointing at it, and reads what the daemon says.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.feedserver import RSS, FeedServer
from tests.paths import ROOT
from tests.test_e2e import RSS_BODY, demo_config

ROOT = ROOT
UNIT = ROOT / "deploy" / "uproar.service"
# The daemon loads the model before READY=1; this bounds each wait for one notify message.
ANSWER = 120.0
# Watchdog timeout handed to the daemon: it pings every half of this.
WATCHDOG_USEC = 2_000_000


def unit_settings() -> dict[str, list[str]]:
    """Every ``Key=value`` of the [Service] section, repeated keys kept in order."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        if section == "Service":
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_unit_is_a_hardened_notify_service() -> None:
    s = unit_settings()
    one = {key: values[-1] for key, values in s.items()}
    assert one["Type"] == "notify"
    assert one["NotifyAccess"] == "main"
    assert one["Restart"] == "on-failure"
    assert one["WatchdogSec"].endswith("s") and int(one["WatchdogSec"][:-1]) >= 30
    assert int(one["TimeoutStopSec"].rstrip("s")) >= 30
    assert one["DynamicUser"] == "yes"
    assert one["StateDirectory"] == "uproar"
    assert one["ProtectSystem"] == "strict"
    for key in ("ProtectHome", "PrivateTmp", "NoNewPrivileges"):
        assert one[key] in ("yes", "true"), key
    # An empty value drops every capability.
    assert s["CapabilityBoundingSet"] == [""]
    assert s["AmbientCapabilities"] == [""]
    assert one["RestrictAddressFamilies"].split() == ["AF_INET", "AF_INET6", "AF_UNIX"]
    assert one["EnvironmentFile"] == "/etc/uproar/uproar.env"
    assert one["ExecStart"].endswith("uproar run -c /etc/uproar/config.yaml")
    assert one["ExecReload"] == "/bin/kill -HUP $MAINPID"


def test_env_example_holds_no_secret_values() -> None:
    example = (ROOT / "deploy" / "uproar.env.example").read_text().splitlines()
    for line in example:
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            assert value == "", f"{key} must be empty in the example"


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    # verify checks that ExecStart exists: point it at this checkout's uproar.
    bindir = Path(sys.executable).parent
    if not (bindir / "uproar").exists():
        pytest.skip(f"no uproar console script in {bindir}")
    unit = tmp_path / "uproar.service"
    unit.write_text(UNIT.read_text().replace("/opt/uproar/bin/", f"{bindir}/"))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "uproar.service" not in result.stderr, result.stderr


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(ANSWER)
    try:
        yield sock, path
    finally:
        sock.close()


def _read_until(sock: socket.socket, wanted: str, seen: list[str]) -> None:
    while not any(wanted in message.splitlines() for message in seen):
        seen.append(sock.recv(4096).decode())


@pytest.mark.timeout(600)  # a model load on a busy machine, then a clean drain
def test_run_notifies_ready_status_watchdog_then_stopping(
    tmp_path: Path, feed_server: FeedServer, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, path = notify_socket
    url = feed_server.add_route("/news.rss", RSS_BODY.encode(), content_type=RSS)
    config = demo_config(tmp_path, feeds=[url])
    env = {
        **os.environ,
        "NOTIFY_SOCKET": path,
        "WATCHDOG_USEC": str(WATCHDOG_USEC),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("WATCHDOG_PID", None)
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "run", "-c", str(config)],
            cwd=ROOT, env=env, stderr=stderr, stdout=subprocess.DEVNULL,
        )
        seen: list[str] = []
        try:
            _read_until(sock, "READY=1", seen)
            ready = next(m for m in seen if "READY=1" in m.splitlines())
            assert "STATUS=listening" in ready.splitlines()
            # Watchdog pings come from the health check, each with a one-line STATUS=.
            _read_until(sock, "WATCHDOG=1", seen)
            ping = next(m for m in seen if "WATCHDOG=1" in m.splitlines())
            assert any(line.startswith("STATUS=listening") for line in ping.splitlines()), ping
            proc.send_signal(signal.SIGTERM)
            _read_until(sock, "STOPPING=1", seen)
            assert proc.wait(timeout=ANSWER) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "stopped cleanly" in log.read_text()
    # READY comes before any watchdog ping, STOPPING last.
    flat = [line for message in seen for line in message.splitlines()]
    assert flat.index("READY=1") < flat.index("WATCHDOG=1") < flat.index("STOPPING=1")


SECRETS_INSTALL = "sudo install -D -m 0600 deploy/uproar.env.example /etc/uproar/uproar.env"


@pytest.mark.parametrize(
    "path", ["README.md", "deploy/uproar.service", "deploy/uproar.env.example"]
)
def test_one_instruction_for_the_secrets_file(path: str) -> None:
    """Root-only (0600): systemd reads EnvironmentFile= as root; DynamicUser has no lasting
    group. Every place that tells ops how to install the file says the same."""
    text = (ROOT / path).read_text()
    assert SECRETS_INSTALL in text
    for other in ("0640", "root:uproar", "chgrp", "chown"):
        assert other not in text, f"{path} still says {other}"


def test_the_secrets_instruction_makes_a_root_only_file(tmp_path: Path) -> None:
    target = tmp_path / "etc" / "uproar" / "uproar.env"
    command = SECRETS_INSTALL.removeprefix("sudo ").replace("/etc/uproar/uproar.env", str(target))
    subprocess.run(command.split(), cwd=ROOT, check=True)
    assert target.stat().st_mode & 0o777 == 0o600
