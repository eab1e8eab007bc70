"""Ops integration: /healthz, /readyz and /metrics over real HTTP, the watchdog, sd_notify."""

from __future__ import annotations

import queue
import socket
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.alerts.dispatch import DeliveryFailure, DeliveryReport
from monitor.clock import SimulatedClock
from monitor.daemon.health import HealthServer, HealthState, parse_listen
from monitor.daemon.metrics import Metrics
from monitor.daemon.runner import PollOutcome
from monitor.daemon.systemd import sd_notify, watchdog_interval
from monitor.daemon.watchdog import Watchdog
from monitor.errors import ConfigError
from monitor.signals import Signal

START = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
EVERY = timedelta(minutes=5)
# How long a test waits for a local thread or socket to answer before failing.
ANSWER = 5.0


class Archive:
    """A stand-in for the archive check: reachable until told otherwise."""

    def __init__(self) -> None:
        self.error: Exception | None = None

    def check(self) -> None:
        if self.error is not None:
            raise self.error


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(START)


@pytest.fixture
def archive() -> Archive:
    return Archive()


@pytest.fixture
def state(clock: SimulatedClock, archive: Archive) -> HealthState:
    state = HealthState(archive_check=archive.check)
    state.add_source("rss", EVERY, clock.now())
    state.add_source("reddit", EVERY, clock.now())
    state.set_scheduler_alive(True, clock.now())
    return state


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def server(state: HealthState, metrics: Metrics, clock: SimulatedClock) -> Iterator[HealthServer]:
    with HealthServer("127.0.0.1:0", state, metrics, clock) as server:
        yield server


@pytest.fixture
def http(server: HealthServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=ANSWER) as client:
        yield client


def ok_poll(source: str = "rss", new: int = 3, duplicates: int = 1) -> PollOutcome:
    return PollOutcome(source, ok=True, new=new, duplicates=duplicates, seconds=0.4)


def failed_poll(source: str = "reddit", error: str = "401 Unauthorized") -> PollOutcome:
    return PollOutcome(source, ok=False, errors=1, problems=[error], seconds=0.2)


def fail_polls(state: HealthState, clock: SimulatedClock, times: int) -> None:
    for n in range(1, times + 1):
        clock.advance(timedelta(minutes=1))
        state.record_poll(failed_poll(), failures=n, at=clock.now())


def samples(exposition: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a Prometheus text exposition."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
    }


# -- /metrics -------------------------------------------------------------------------------------


def test_metrics_after_a_poll_a_signal_and_a_delivery(
    http: httpx.Client, metrics: Metrics, clock: SimulatedClock
) -> None:
    metrics.add_source("rss")
    metrics.add_source("reddit")
    metrics.set_up(True)
    metrics.record_poll(ok_poll(), failures=0, at=clock.now())
    metrics.record_poll(failed_poll(), failures=1, at=clock.now())
    metrics.record_poll(PollOutcome("reddit", ok=False, skipped=True), failures=1, at=clock.now())
    signal = Signal(
        brand="united",
        brand_name="United Airlines",
        kind="complaint_volume",
        severity="critical",
        at=clock.now(),
        window=timedelta(hours=1),
        count=40,
        expected=3.0,
        spread=1.5,
        score=8.0,
    )
    metrics.record_signals([signal])
    metrics.record_delivery(
        DeliveryReport(sent=2, failed=1, failures=(DeliveryFailure(7, 3, "channel_not_found"),)),
        "slack",
    )
    metrics.set_outbox_pending(4)
    with metrics.time_classify():
        pass

    response = http.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    got = samples(response.text)
    assert got[("uproar_up", ())] == 1
    assert got[("uproar_mentions_total", (("source", "rss"),))] == 3
    assert got[("uproar_mentions_total", (("source", "reddit"),))] == 0
    assert got[("uproar_duplicates_total", (("source", "rss"),))] == 1
    assert got[("uproar_poll_errors_total", (("source", "reddit"),))] == 1
    assert got[("uproar_poll_errors_total", (("source", "rss"),))] == 0
    assert got[("uproar_polls_total", (("outcome", "ok"), ("source", "rss")))] == 1
    assert got[("uproar_polls_total", (("outcome", "error"), ("source", "reddit")))] == 1
    assert got[("uproar_polls_total", (("outcome", "skipped"), ("source", "reddit")))] == 1
    assert got[("uproar_source_consecutive_failures", (("source", "reddit"),))] == 1
    assert got[("uproar_source_consecutive_failures", (("source", "rss"),))] == 0
    assert got[("uproar_source_last_success_timestamp_seconds", (("source", "rss"),))] == (
        START.timestamp()
    )
    assert got[("uproar_source_last_success_timestamp_seconds", (("source", "reddit"),))] == 0
    assert got[("uproar_signals_total", (("brand", "united"), ("severity", "critical")))] == 1
    assert got[("uproar_alerts_sent_total", (("target", "slack"),))] == 2
    assert got[("uproar_alerts_failed_total", (("target", "slack"),))] == 1
    assert got[("uproar_outbox_pending", ())] == 4
    # skipped polls are not timed: one ok + one error poll
    assert got[("uproar_poll_duration_seconds_count", (("source", "rss"),))] == 1
    assert got[("uproar_poll_duration_seconds_count", (("source", "reddit"),))] == 1
    assert got[("uproar_poll_duration_seconds_sum", (("source", "rss"),))] == pytest.approx(0.4)
    assert got[("uproar_classify_seconds_count", ())] == 1


def test_each_metrics_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.record_poll(ok_poll(), failures=0, at=START)
    assert b'uproar_mentions_total{source="rss"} 3.0' in first.exposition()
    assert b"uproar_mentions_total{" not in second.exposition()


# -- /healthz -------------------------------------------------------------------------------------


def test_healthz_ok_then_degraded_after_three_failed_polls_then_ok(
    http: httpx.Client, state: HealthState, clock: SimulatedClock
) -> None:
    state.record_poll(ok_poll("rss"), failures=0, at=clock.now())
    state.record_poll(ok_poll("reddit"), failures=0, at=clock.now())
    first = http.get("/healthz")
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json"
    assert first.json()["status"] == "ok"
    assert first.json()["reasons"] == []

    fail_polls(state, clock, 2)
    blips = http.get("/healthz").json()
    assert blips["status"] == "ok"  # two blips are not yet a problem for the daemon
    assert blips["sources"]["reddit"]["status"] == "failing"

    fail_polls(state, clock, 3)
    degraded = http.get("/healthz")
    assert degraded.status_code == 200
    body = degraded.json()
    assert body["status"] == "degraded"
    assert body["sources"]["reddit"]["consecutive_failures"] == 3
    assert body["sources"]["reddit"]["last_error"] == "401 Unauthorized"
    assert body["sources"]["rss"]["status"] == "ok"
    assert any("reddit" in reason for reason in body["reasons"])

    clock.advance(timedelta(minutes=1))
    state.record_poll(ok_poll("reddit"), failures=0, at=clock.now())
    state.record_poll(ok_poll("rss"), failures=0, at=clock.now())
    recovered = http.get("/healthz").json()
    assert recovered["status"] == "ok"
    assert recovered["sources"]["reddit"]["last_error"] is None


def test_degraded_when_a_source_has_not_succeeded_for_three_intervals(
    state: HealthState, clock: SimulatedClock
) -> None:
    state.record_poll(ok_poll("reddit"), failures=0, at=clock.now())
    clock.advance(EVERY * 3)
    state.beat(clock.now())
    state.record_poll(ok_poll("reddit"), failures=0, at=clock.now())
    assert state.check(clock.now()).status == "ok"  # rss is exactly at 3 intervals
    clock.advance(timedelta(seconds=1))
    report = state.check(clock.now())
    assert report.status == "degraded"
    assert report.details["sources"]["rss"]["status"] == "stale"
    assert report.details["sources"]["reddit"]["status"] == "ok"


def test_degraded_when_alerts_are_stuck(state: HealthState, clock: SimulatedClock) -> None:
    def sources_ok() -> None:
        for source in ("rss", "reddit"):
            state.record_poll(ok_poll(source), failures=0, at=clock.now())

    sources_ok()
    state.record_outbox(2, clock.now())
    clock.advance(timedelta(minutes=10))
    sources_ok()
    state.record_outbox(3, clock.now(), sent=1)  # progress: the clock restarts
    clock.advance(timedelta(minutes=14))
    sources_ok()
    state.record_outbox(3, clock.now())
    assert state.check(clock.now()).status == "ok"
    clock.advance(timedelta(minutes=2))
    sources_ok()
    state.record_outbox(3, clock.now())
    report = state.check(clock.now())
    assert report.status == "degraded"
    assert report.details["outbox"] == {
        "pending": 3,
        "pending_since": (START + timedelta(minutes=10)).isoformat(),
        "stuck": True,
    }
    state.record_outbox(0, clock.now(), sent=3)
    assert state.check(clock.now()).status == "ok"


def test_failing_503_when_the_archive_check_raises(
    http: httpx.Client, archive: Archive, state: HealthState, clock: SimulatedClock
) -> None:
    state.record_poll(ok_poll("rss"), failures=0, at=clock.now())
    state.record_poll(ok_poll("reddit"), failures=0, at=clock.now())
    archive.error = OSError("database is locked\nfor ever")
    response = http.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "failing"
    assert body["archive"] == {"reachable": False, "error": "OSError: database is locked for ever"}

    archive.error = None
    assert http.get("/healthz").status_code == 200


def test_failing_when_the_scheduler_is_dead_or_stalled(
    state: HealthState, clock: SimulatedClock
) -> None:
    state.record_poll(ok_poll("rss"), failures=0, at=clock.now())
    state.record_poll(ok_poll("reddit"), failures=0, at=clock.now())
    clock.advance(timedelta(minutes=4))
    state.record_outbox(0, clock.now())
    assert state.check(clock.now()).status == "ok"
    clock.advance(timedelta(minutes=6))  # no job finished for 6 minutes: wedged
    report = state.check(clock.now())
    assert report.status == "failing"
    assert report.reasons[0].startswith("scheduler stalled")
    state.set_scheduler_alive(False, clock.now())
    assert state.check(clock.now()).reasons[0] == "scheduler not running"


def test_readyz(http: httpx.Client, state: HealthState) -> None:
    not_yet = http.get("/readyz")
    assert (not_yet.status_code, not_yet.json()) == (503, {"ready": False})
    state.mark_ready()
    ready = http.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})


def test_other_paths_are_404_without_echoing_the_request(http: httpx.Client) -> None:
    for path in ("/", "/healthz/extra", "/<script>alert(1)</script>", "/metrics2"):
        response = http.get(path)
        assert response.status_code == 404
        assert response.text == "not found\n"
    assert http.post("/healthz").status_code == 501
    assert http.get("/metrics?name[]=x").status_code == 200  # a query string is ignored


def test_server_binds_port_zero_and_stops(
    state: HealthState, metrics: Metrics, clock: SimulatedClock
) -> None:
    server = HealthServer("127.0.0.1:0", state, metrics, clock)
    with pytest.raises(RuntimeError):
        _ = server.address
    server.start()
    host, port = server.address
    assert host == "127.0.0.1"
    assert port > 0
    server.stop()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=ANSWER)


def test_server_reports_a_bad_listen_address_as_a_config_error(
    state: HealthState, metrics: Metrics, clock: SimulatedClock
) -> None:
    with pytest.raises(ConfigError, match=r"http\.listen: .*did you mean \"127.0.0.1:9464\""):
        HealthServer("9464", state, metrics, clock)


# -- listen ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("localhost:80", ("localhost", 80)),
        ("[::1]:9464", ("::1", 9464)),
        (":9464", ("0.0.0.0", 9464)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
    ],
)
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        ("9464", "did you mean"),
        ("", "expected"),
        ("127.0.0.1:http", "port must be a number"),
        ("127.0.0.1:70000", "port must be a number"),
        ("::1:9464", "brackets"),
        ("[::1:9464", "missing"),
        ("[nothost]:9464", "not an IPv6 address"),
        ("a b:9464", "not a host name"),
    ],
)
def test_parse_listen_rejects(listen: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_listen(listen)


# -- watchdog -------------------------------------------------------------------------------------


class RecordingNotify:
    """A fake sd_notify: every message in a queue, for tests to wait on."""

    def __init__(self) -> None:
        self.messages: queue.Queue[str] = queue.Queue()

    def __call__(self, message: str) -> bool:
        self.messages.put(message)
        return True

    def next(self) -> str:
        return self.messages.get(timeout=ANSWER)


def test_watchdog_tick_pings_and_reports_status(state: HealthState, clock: SimulatedClock) -> None:
    notify = RecordingNotify()
    watchdog = Watchdog(state, clock, notify, interval=120.0)
    for source in ("rss", "reddit"):
        state.record_poll(ok_poll(source), failures=0, at=clock.now())
    state.record_poll(failed_poll(), failures=1, at=clock.now())
    state.record_outbox(2, clock.now())

    watchdog.tick()

    assert notify.next() == (
        "WATCHDOG=1\nSTATUS=listening: 1 source ok, 1 failing (reddit: 401 Unauthorized); "
        "2 alerts queued"
    )
    assert watchdog.period == 60.0


def test_watchdog_pings_while_healthy_and_stops_while_failing(
    state: HealthState, clock: SimulatedClock, archive: Archive
) -> None:
    notify = RecordingNotify()
    watchdog = Watchdog(state, clock, notify, interval=0.02)
    watchdog.start()
    try:
        assert notify.next().startswith("WATCHDOG=1\nSTATUS=listening")
        assert notify.next().startswith("WATCHDOG=1\n")

        archive.error = ConnectionRefusedError("connection refused")
        # A tick already under way may still ping; from the first failing one on, none do.
        message = notify.next()
        while message.startswith("WATCHDOG=1"):
            message = notify.next()
        assert message.startswith("STATUS=failing: archive unreachable (ConnectionRefusedError")
        for _ in range(3):
            assert "WATCHDOG=1" not in notify.next()

        archive.error = None
        message = notify.next()
        while not message.startswith("WATCHDOG=1"):
            message = notify.next()
        assert "STATUS=listening" in message
    finally:
        watchdog.stop()
    assert watchdog._thread is None


def test_watchdog_without_systemd_does_not_start(state: HealthState, clock: SimulatedClock) -> None:
    notify = RecordingNotify()
    watchdog = Watchdog.from_environ(state, clock, {}, pid=42, notify=notify)
    assert not watchdog.enabled
    watchdog.start()
    watchdog.stop()
    assert notify.messages.empty()


def test_watchdog_from_environ(state: HealthState, clock: SimulatedClock) -> None:
    env = {"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "42", "NOTIFY_SOCKET": "/run/x"}
    watchdog = Watchdog.from_environ(state, clock, env, pid=42)
    assert watchdog.enabled
    assert watchdog.period == 60.0
    other = Watchdog.from_environ(state, clock, env, pid=43)
    assert not other.enabled  # the watchdog is meant for another process
    assert other.period == 60.0  # STATUS= is still kept fresh under systemd


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "120000000"}, 120.0),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "42"}, 0.5),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "7"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(environ, 42) == expected


# -- sd_notify ------------------------------------------------------------------------------------


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    # A short directory: AF_UNIX paths are limited to about 100 bytes.
    with tempfile.TemporaryDirectory(prefix="uproar-") as folder:
        path = str(Path(folder) / "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
            sock.settimeout(ANSWER)
            yield sock, path


def test_sd_notify_sends_to_the_notify_socket(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    assert sd_notify("READY=1\nSTATUS=listening", {"NOTIFY_SOCKET": path}) is True
    assert sock.recv(4096) == b"READY=1\nSTATUS=listening"


def test_watchdog_from_environ_notifies_the_real_socket(
    notify_socket: tuple[socket.socket, str], state: HealthState, clock: SimulatedClock
) -> None:
    sock, path = notify_socket
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "120000000"}
    Watchdog.from_environ(state, clock, env, pid=1).tick()
    assert sock.recv(4096).startswith(b"WATCHDOG=1\nSTATUS=")


def test_sd_notify_without_systemd_is_a_no_op(tmp_path: Path) -> None:
    assert sd_notify("READY=1", {}) is False
    assert sd_notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "missing")}) is False


def test_daemon_still_exports_sd_notify() -> None:
    from monitor.daemon import loop as daemon

    assert callable(daemon.sd_notify)
