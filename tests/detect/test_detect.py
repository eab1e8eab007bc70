"""Spike detection: the streaming detector, per-brand complaint volume, and `uproar detect`."""

from __future__ import annotations

import csv
import itertools
import math
import random
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli.detect import detect
from monitor.detect.brand import BrandMonitor, DetectionSettings
from monitor.detect.spike import DAEMON, NAB, PRESETS, SpikeDetector, SpikeSettings
from monitor.signals import Example
from tests.paths import ROOT

T0 = datetime(2015, 3, 2, tzinfo=UTC)
STEP = timedelta(minutes=5)
DAY = 288  # 5-minute rows per day


def _seasonal(days: int, seed: int = 1) -> list[float]:
    """A noisy daily cycle between ~20 and ~60 counts per row."""
    rng = random.Random(seed)
    out = []
    for i in range(days * DAY):
        hour = (i % DAY) / 12
        base = 40 + 20 * (1 if 8 <= hour < 20 else -1)
        out.append(float(max(0, round(rng.gauss(base, base**0.5)))))
    return out


def _run(values: list[float], settings: SpikeSettings = NAB) -> list:
    detector = SpikeDetector(settings)
    return [detector.update(T0 + i * STEP, v) for i, v in enumerate(values)]


def test_decisions_for_a_prefix_do_not_change_when_more_rows_follow() -> None:
    values = _seasonal(4)
    values[3 * DAY : 3 * DAY + 6] = [900.0] * 6
    full = _run(values)
    prefix = _run(values[: 3 * DAY + 3])
    assert prefix == full[: len(prefix)]
    assert full == _run(values)  # deterministic


def test_a_clear_spike_on_a_seasonal_series_alerts_within_a_few_rows() -> None:
    for settings in (NAB, DAEMON):
        values = _seasonal(5)
        start = 4 * DAY + 100
        values[start : start + 12] = [600.0] * 12
        alerts = [i for i, d in enumerate(_run(values, settings)) if d.alert]
        assert alerts and start <= alerts[0] <= start + 3, (settings, alerts)
        assert all(i >= start for i in alerts)


def test_a_flat_noisy_series_stays_quiet() -> None:
    rng = random.Random(7)
    values = [float(max(0, round(rng.gauss(50, 7)))) for _ in range(6 * DAY)]
    for settings in (NAB, DAEMON):
        assert not any(d.alert for d in _run(values, settings))


def test_min_count_keeps_quiet_series_quiet() -> None:
    values = [0.0] * (2 * DAY) + [4.0, 4.0, 4.0] + [0.0] * 20
    assert not any(d.alert for d in _run(values, replace(DAEMON, min_count=5)))
    assert any(d.alert for d in _run(values, replace(DAEMON, min_count=3)))


def test_cooldown_stops_re_alerting_on_one_spike() -> None:
    settings = replace(DAEMON, cooldown=timedelta(hours=2), peak_halflife=timedelta(0))
    values = [10.0] * (2 * DAY) + [200.0] * 60  # five hours of spike
    alerts = [i for i, d in enumerate(_run(values, settings)) if d.alert]
    assert alerts[0] == 2 * DAY
    assert all(b - a >= 24 for a, b in itertools.pairwise(alerts))  # 2 h = 24 rows
    assert len(alerts) <= 3


def _example(n: int, reach: int, at: datetime) -> Example:
    return Example(
        "twitter", str(n), f"https://x.com/i/{n}", f"complaint {n}", f"user{n}", 100, reach, at
    )


def _quiet_history(monitor: BrandMonitor, key: str, days: int = 2) -> datetime:
    """Seed a brand with about one complaint an hour; returns the end of the history."""
    start = T0
    for i in range(days * DAY):
        monitor.seed(key, start + i * STEP, 1 if i % 12 == 0 else 0, brand_name=key.title())
    return start + days * DAY * STEP


def test_brand_monitor_emits_one_signal_with_count_reasons_and_examples_by_reach() -> None:
    monitor = BrandMonitor(DetectionSettings(max_examples=3))
    now = _quiet_history(monitor, "united")
    _quiet_history(monitor, "delta")
    assert monitor.evaluate(now) == []
    signals = []
    for minute in range(30):  # 40 complaints in half an hour
        at = now + timedelta(minutes=minute)
        for k in range(2 if minute % 3 else 1):
            n = minute * 10 + k
            monitor.observe("united", "United Airlines", at, _example(n, reach=n, at=at))
        signals += monitor.evaluate(at)
    signals += monitor.evaluate(now + timedelta(minutes=35))
    assert len(signals) == 1
    [sig] = signals
    assert (
        sig.brand == "united"
        and sig.brand_name == "United Airlines"
        and sig.kind == "complaint_volume"
    )
    assert sig.count >= DetectionSettings().min_count and sig.expected < 3
    assert sig.reasons[0].startswith(f"{sig.count} complaints in 30 min, usual ")
    assert sig.severity in ("warning", "critical")
    reaches = [ex.reach for ex in sig.examples]
    assert len(reaches) == 3 and reaches == sorted(reaches, reverse=True)


def test_brand_monitor_quiet_brand_and_forward_jumps() -> None:
    monitor = BrandMonitor()
    now = _quiet_history(monitor, "ups")
    monitor.observe("ups", "UPS", now + timedelta(minutes=1), _example(1, 0, now))
    # replay: simulated time jumps forward by a day; the buckets in between count as zeros
    assert monitor.evaluate(now + timedelta(days=1)) == []
    later = now + timedelta(days=1, minutes=2)
    for k in range(60):
        monitor.observe("ups", "UPS", later, _example(k, k, later))
    signals = monitor.evaluate(later + timedelta(hours=3))  # one jump, many buckets
    assert len(signals) == 1 and signals[0].count == 60
    assert signals[0].at <= later + timedelta(minutes=10)


def test_late_complaints_count_in_their_own_bucket_and_never_revise_a_decision() -> None:
    # a source delivers a burst 21 minutes late: the alert comes when it arrives, counting it in
    # the window of its own time; a later, bigger burst is reported with the complaints of its
    # own 30 minutes only (what the archive holds for them), not the late ones as well
    monitor = BrandMonitor(DetectionSettings(cooldown=timedelta(minutes=15)))
    now = _quiet_history(monitor, "ups")
    clock = now
    signals = []

    def advance(to: datetime) -> None:
        nonlocal clock
        while clock < to:
            clock += timedelta(minutes=1)
            signals.extend(monitor.evaluate(clock))

    advance(now + timedelta(minutes=22))
    assert signals == []
    late_at = now + timedelta(minutes=1)
    for k in range(20):  # created at now + 1 min, heard at now + 22 min
        monitor.observe("ups", "UPS", late_at, _example(k, k, late_at))
    advance(now + timedelta(minutes=40))
    assert [(s.count, s.at) for s in signals] == [(20, now + timedelta(minutes=25))]
    burst = now + timedelta(minutes=41)
    for k in range(60):
        monitor.observe("ups", "UPS", burst, _example(100 + k, k, burst))
    advance(now + timedelta(minutes=50))
    assert [(s.count, s.at) for s in signals[1:]] == [(60, now + timedelta(minutes=45))]


def _csv(rows: list[tuple[str, float]]) -> str:
    return "timestamp,value\n" + "".join(f"{t},{v:g}\n" for t, v in rows)


def test_cli_rows_in_equal_rows_out_with_header() -> None:
    stamps = [
        (T0.replace(tzinfo=None) + i * STEP).strftime("%Y-%m-%d %H:%M:%S") for i in range(500)
    ]
    text = _csv([(t, 10 + i % 3) for i, t in enumerate(stamps)])
    result = CliRunner().invoke(detect, [], input=text)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "timestamp,value,score,alert"
    assert len(lines) == 501
    assert lines[1].startswith(stamps[0] + ",10,") and lines[1][-1] in "01"


def test_cli_messy_rows_each_get_one_row_and_one_warning_per_kind() -> None:
    stamps = [
        (T0.replace(tzinfo=None) + i * STEP).strftime("%Y-%m-%d %H:%M:%S") for i in range(400)
    ]
    rows = [f"{t},{10 + i % 3}" for i, t in enumerate(stamps)]
    rows[300] = f"{stamps[299]},11"  # repeats the row before
    rows[301] = f"{stamps[250]},12"  # goes back
    rows[302] = f"{stamps[250]},12"  # goes back again: counted, not warned again
    rows[303] = f"{stamps[303]},"  # empty value
    rows[304] = f"{stamps[304]},lots"  # not a number
    rows[305] = f"{stamps[305]},nan"
    rows[306] = f"{stamps[306]},-inf"
    rows[307] = f"{stamps[307]},-4"  # negative: scored as given
    rows[308] = f"yesterday,{10}"  # bad timestamp
    rows[309] = f"{stamps[309]},1,2"  # wrong field count
    del rows[320:330]  # a gap of ten rows: fed as usual
    text = "timestamp,value\n" + "\n".join(rows) + "\n"
    result = CliRunner().invoke(detect, ["-i", "-"], input=text)
    assert result.exit_code == 0, result.output
    out = result.stdout.splitlines()
    assert out[0] == "timestamp,value,score,alert" and len(out) == 1 + len(rows)
    by_line = dict(zip(range(2, len(rows) + 2), out[1:], strict=True))  # input line -> output
    unjudged = [302, 303, 304, 305, 306, 307, 308, 310, 311]
    for line in unjudged:
        assert by_line[line].endswith(",,0"), by_line[line]
    assert by_line[303].startswith(f"{stamps[250]},12,")
    assert by_line[311] == f'{stamps[309]},"1,2",,0'
    assert by_line[309].split(",")[2] != "" and by_line[313].split(",")[2] != ""  # judged
    warnings = [w for w in result.stderr.splitlines() if w.startswith("warning: line ")]
    # line 309 comes 8 steps after the last row fed (line 301): a gap, and a negative value
    assert [int(w.split(":")[1].split()[1]) for w in warnings] == [
        302,
        305,
        307,
        309,
        309,
        310,
        311,
    ], warnings
    summary = [w for w in result.stderr.splitlines() if not w.startswith("warning: line ")]
    assert (
        "warning: 3 rows with a timestamp that repeats or goes back (first at line 302); "
        "they got alert 0 and did not move the baseline"
    ) in summary
    assert any(s.startswith("warning: 2 rows with an empty or non-numeric value") for s in summary)
    assert any(s.startswith("warning: 2 rows with a gap in time") for s in summary)


def test_cli_streams_each_row_on_a_pipe_judged_or_not() -> None:
    # `tail -f counts.csv | uproar detect`: every row's answer comes out before the next row
    # goes in, including rows it cannot judge
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli.detect"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdin is not None and proc.stdout is not None

    def answer(row: str) -> str:
        proc.stdin.write(row + "\n")
        proc.stdin.flush()
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(proc.stdout.readline()))
        reader.start()
        reader.join(timeout=30)
        assert result, f"no output for {row!r} while the input stays open"
        return result[0].rstrip("\n")

    try:
        assert answer("timestamp,value") == "timestamp,value,score,alert"
        assert answer("2015-03-02 00:00:00,10").startswith("2015-03-02 00:00:00,10,")
        assert answer("2015-03-02 00:00:00,12") == "2015-03-02 00:00:00,12,,0"
        assert answer("2015-03-02 00:05:00,x") == "2015-03-02 00:05:00,x,,0"
        assert answer("2015-03-02 00:05:00,11").endswith(",0")
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()
        assert proc.stderr is not None
        stderr = proc.stderr.read()
        proc.stderr.close()
    assert "line 3: timestamp '2015-03-02 00:00:00' repeats or goes back" in stderr


def test_cli_unjudged_rows_do_not_move_the_baseline() -> None:
    # the same series with and without rows it cannot judge: the judged rows score the same
    stamps = [
        (T0.replace(tzinfo=None) + i * STEP).strftime("%Y-%m-%d %H:%M:%S") for i in range(600)
    ]
    clean = [f"{t},{20 + (i * 7) % 5}" for i, t in enumerate(stamps)]
    messy = list(clean)
    for at in (350, 420, 500):
        messy[at:at] = [f"{stamps[at - 200]},900", f"{stamps[at]},nan", f"{stamps[at]},"]

    def scores(rows: list[str]) -> list[str]:
        text = "timestamp,value\n" + "\n".join(rows) + "\n"
        result = CliRunner().invoke(detect, [], input=text)
        assert result.exit_code == 0, result.output
        return [r for r in result.stdout.splitlines()[1:] if not r.endswith(",,0")]

    assert scores(messy) == scores(clean)


def test_cli_bad_header_is_one_line_error_naming_the_input() -> None:
    bad_header = CliRunner().invoke(detect, [], input="time,count\n")
    assert bad_header.exit_code != 0
    assert bad_header.output.strip() == (
        "Error: <stdin>: line 1: expected the header 'timestamp,value', got 'time,count'"
    )


def test_cli_help_has_an_example() -> None:
    result = CliRunner().invoke(detect, ["--help"])
    assert result.exit_code == 0 and "uproar detect --input" in result.output


def test_daemon_preset_does_not_follow_the_nab_defaults() -> None:
    # the NAB preset is the dataclass defaults and gets re-tuned (bench/detect_loso); the
    # daemon's behaviour must not move with it
    assert (
        SpikeSettings(
            threshold=3.5,
            min_count=5.0,
            cooldown=timedelta(hours=2),
            warmup=timedelta(hours=3),
            baseline_halflife=timedelta(days=1),
            spread_halflife=timedelta(days=3),
            seasonality=True,
            season_halflife=timedelta(days=7),
            fast_halflife=timedelta(0),
            clip=3.0,
            min_spread=0.2,
            peak_halflife=timedelta(hours=6),
            peak_ratio=1.0,
            typical_days=0,
            record_margin=0.0,  # the record channel stays off for complaint counts
        )
        == DAEMON
    )
    assert SpikeSettings() == NAB and NAB != DAEMON


def test_a_burst_smaller_than_a_recent_one_stays_quiet() -> None:
    # the NAB preset's recent-peak test: after a big burst, smaller ones in the next days are
    # not news for days (a decayed-max memory: once the memory has decayed to the smaller
    # bursts' own score, an equal burst alerts again)
    rng = random.Random(3)
    values = [float(max(0, round(rng.gauss(30, 5)))) for _ in range(8 * DAY)]
    values[2 * DAY + 50 : 2 * DAY + 53] = [900.0] * 3
    for day in range(3, 8):
        values[day * DAY + 50 : day * DAY + 53] = [300.0] * 3
    alerts = [i for i, d in enumerate(_run(values)) if d.alert]
    assert alerts[0] == 2 * DAY + 50 and all(i >= 5 * DAY for i in alerts[1:]), alerts
    quiet_memory = replace(NAB, peak_halflife=timedelta(0))
    assert len([d for d in _run(values, quiet_memory) if d.alert]) > 1


def test_a_series_with_a_routine_daily_burst_pages_only_for_a_bigger_one() -> None:
    # the NAB preset's typical-day test: once the median of the days' highest scores shows a
    # burst of this size every day, it is not news; a much bigger burst still is. Recent-peak
    # memory off, so this test alone decides. The first weeks are learning: the noise estimate
    # settles over ~2 weeks (5-day half-life), so the blips' scores grow until then.
    rng = random.Random(5)
    days = 40
    values = [float(max(0, round(rng.gauss(50, 7)))) for _ in range(days * DAY)]
    for day in range(days):
        at = day * DAY + rng.randrange(20, DAY - 20)
        values[at : at + 2] = [150.0, 150.0]
    big = 35 * DAY + 10
    values[big : big + 6] = [600.0] * 6
    no_memory = replace(NAB, peak_halflife=timedelta(0))
    alerts = [i for i, d in enumerate(_run(values, no_memory)) if d.alert]
    assert big in alerts or big + 1 in alerts, alerts
    assert [i for i in alerts if i >= 28 * DAY and not big <= i <= big + 1] == [], alerts
    without = replace(no_memory, typical_days=0)
    routine = [i for i, d in enumerate(_run(values, without)) if d.alert and i >= 28 * DAY]
    assert len(routine) >= 5, routine  # without the test the blips page every day or two


# -- behaviour of the default `uproar detect` configuration (the nab preset) on shapes every
# -- brand's series has; written against the public interface only


def _poisson(rng: random.Random, lam: float) -> float:
    """A Poisson draw (Knuth's method for small means, a rounded normal for large ones)."""
    if lam > 30:
        return float(max(0, round(rng.gauss(lam, lam**0.5))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return float(k)


def _alert_rows(values: list[float], start: datetime = T0) -> list[int]:
    detector = SpikeDetector(PRESETS["nab"])
    return [i for i, v in enumerate(values) if detector.update(start + i * STEP, v).alert]


def test_a_long_flat_series_then_one_spike_alerts_once_and_early() -> None:
    rng = random.Random(11)
    values = [_poisson(rng, 40) for _ in range(10 * DAY)]
    spike = 8 * DAY + 123
    values[spike : spike + 6] = [200.0, 260.0, 300.0, 280.0, 220.0, 160.0]
    alerts = _alert_rows(values)
    assert len(alerts) == 1 and spike <= alerts[0] <= spike + 1, alerts


def test_a_level_that_doubles_for_good_alerts_once_then_is_learned_within_a_day() -> None:
    rng = random.Random(12)
    change = 7 * DAY + 100
    values = [_poisson(rng, 40 if i < change else 80) for i in range(11 * DAY)]
    alerts = _alert_rows(values)
    assert len(alerts) == 1 and change <= alerts[0] <= change + 6, alerts
    # (the day after the change and later: nothing, already implied by a single alert; spelled
    # out because it is what the user notices)
    assert [i for i in alerts if i >= change + DAY] == []


def _weekly(rng: random.Random, weeks: int) -> tuple[list[float], datetime]:
    """A day/night cycle, quiet weekends, and a Monday-morning peak (08:00-10:00, ×3)."""
    start = datetime(2015, 3, 2, tzinfo=UTC)  # a Monday
    values = []
    for i in range(weeks * 7 * DAY):
        at = start + i * STEP
        hour = at.hour + at.minute / 60
        level = 30.0 + 25.0 * math.sin(math.pi * (hour - 6) / 12) if 6 <= hour < 18 else 20.0
        if at.weekday() >= 5:
            level *= 0.6
        if at.weekday() == 0 and 8 <= hour < 10:
            level *= 3.0
        values.append(_poisson(rng, level))
    return values, start


def test_a_monday_morning_peak_that_recurs_every_week_is_not_a_spike_after_two_weeks() -> None:
    values, start = _weekly(random.Random(13), weeks=6)
    alerts = _alert_rows(values, start)
    assert [i for i in alerts if i >= 14 * DAY] == [], [str(start + i * STEP) for i in alerts]


def test_a_series_of_small_integers_does_not_alert_on_noise() -> None:
    rng = random.Random(14)
    values = [_poisson(rng, 1.0) for _ in range(21 * DAY)]  # 0-3 per bucket, now and then 4-5
    assert _alert_rows(values) == []


def test_every_nab_file_runs_through_uproar_detect_without_a_stop(shared_data: Path) -> None:
    nab = shared_data / "nab"
    files = sorted(nab.glob("*/*.csv"))
    if not files:
        pytest.skip(f"no NAB files under {nab}")
    stopped, short = [], []
    warned = 0
    for path in files:
        result = CliRunner().invoke(detect, ["-i", str(path)])
        if result.exit_code != 0:
            stopped.append(f"{path.name}: {result.output.strip()[-200:]}")
            continue
        with open(path, newline="") as fh:
            data_rows = sum(1 for row in csv.reader(fh) if row) - 1
        if len(result.stdout.splitlines()) != data_rows + 1:
            short.append(path.name)
        warned += "repeats or goes back" in result.stderr
    assert stopped == [] and short == []
    if len(files) == 53:
        assert warned == 8  # the files whose timestamps repeat or go back (data/README.md)


def test_an_infinite_value_is_judged_not_a_crash() -> None:
    # the record channel's count-series test must not convert inf to an int
    detector = SpikeDetector(NAB)
    for i in range(3 * DAY):
        detector.update(T0 + i * STEP, 5.0)
    decision = detector.update(T0 + 3 * DAY * STEP, float("inf"))
    assert decision.alert and decision.score == float("inf")
