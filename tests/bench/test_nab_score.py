"""The NAB scorer in bench/nab.py: sanity checks on synthetic series and on the real data."""

from __future__ import annotations

import importlib.util
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.paths import ROOT

ROOT = ROOT
NAB_DATA = Path(os.environ.get("UPROAR_DATA", ROOT.parent / "shared" / "data")) / "nab"


def _load_nab():
    spec = importlib.util.spec_from_file_location("bench_nab", ROOT / "bench" / "nab.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_nab"] = module
    spec.loader.exec_module(module)
    return module


nab = _load_nab()
STANDARD = nab.PROFILES["standard"]
N = 2000  # warm-up is 300 rows (15%)
WINDOWS = [nab.Window(500, 599), nab.Window(1200, 1299)]


def _alerts(*rows: int) -> list[bool]:
    alerts = [False] * N
    for i in rows:
        alerts[i] = True
    return alerts


def _score(alerts: list[bool], profile=STANDARD) -> float:
    return nab.normalised([nab.score_file(alerts, WINDOWS, profile)], profile)


@pytest.mark.parametrize("profile", list(nab.PROFILES.values()), ids=list(nab.PROFILES))
def test_no_alerts_scores_zero_and_window_starts_score_100(profile) -> None:
    assert _score(_alerts(), profile) == pytest.approx(0.0)
    assert _score(nab.perfect_alerts(N, WINDOWS), profile) == pytest.approx(100.0)


def test_earlier_in_the_window_is_better_and_the_last_row_earns_about_nothing() -> None:
    assert _score(_alerts(500, 1200)) > _score(_alerts(550, 1250)) > _score(_alerts(590, 1290))
    last = nab.score_file(_alerts(599), WINDOWS[:1], STANDARD)
    assert abs(last.tp) < 0.1


def test_each_window_earns_its_best_alert_only() -> None:
    assert _score(_alerts(500, 550, 599, 1200)) == pytest.approx(100.0)


def test_a_false_positive_costs_full_weight_before_the_first_window() -> None:
    fs = nab.score_file(_alerts(400, 500, 1200), WINDOWS, STANDARD)
    assert fs.fp_count == 1 and fs.fp_cost == pytest.approx(0.11)
    assert _score(_alerts(400, 500, 1200)) < 100.0


def test_a_false_positive_just_after_a_window_costs_little_and_far_after_full() -> None:
    near = nab.score_file(_alerts(500, 601, 1200), WINDOWS, STANDARD)
    far = nab.score_file(_alerts(500, 1000, 1200), WINDOWS, STANDARD)  # > 3 widths after
    assert 0.0 < near.fp_cost < 0.02
    assert far.fp_cost == pytest.approx(0.11)
    low_fp = nab.score_file(_alerts(500, 1000, 1200), WINDOWS, nab.PROFILES["reward_low_FP"])
    assert low_fp.fp_cost == pytest.approx(0.22)


def test_warm_up_alerts_are_ignored_and_misses_cost_fn_weight() -> None:
    assert _score(_alerts(10, 299)) == pytest.approx(0.0)
    fs = nab.score_file(_alerts(500), WINDOWS, nab.PROFILES["reward_low_FN"])
    assert fs.fn_cost == pytest.approx(2.0) and fs.detected == 1
    assert nab.warmup_rows(N) == 300 and nab.warmup_rows(100_000) == 750


def test_window_rows_uses_timestamps_inclusively() -> None:
    t0 = datetime(2015, 3, 1)
    stamps = [t0 + timedelta(minutes=5 * i) for i in range(100)]
    [w] = nab.window_rows(stamps, [(stamps[10], stamps[20])])
    assert (w.left, w.right, w.width) == (10, 20, 11)


@pytest.mark.skipif(
    not (NAB_DATA / "windows.json").exists(), reason=f"NAB data not found at {NAB_DATA}"
)
def test_real_data_sanity() -> None:
    spans = nab.load_windows(NAB_DATA / "windows.json")
    present = {name: pairs for name, pairs in spans.items() if (NAB_DATA / name).exists()}
    assert present, f"none of the files in windows.json are under {NAB_DATA}"
    for profile in nab.PROFILES.values():
        nulls, perfects = [], []
        for name, pairs in present.items():
            stamps, values = nab.load_series(NAB_DATA / name)
            windows = nab.window_rows(stamps, pairs)
            assert len(windows) == len(pairs) and len(values) == len(stamps)
            nulls.append(nab.score_file([False] * len(stamps), windows, profile))
            perfects.append(
                nab.score_file(nab.perfect_alerts(len(stamps), windows), windows, profile)
            )
        assert nab.normalised(nulls, profile) == pytest.approx(0.0)
        assert nab.normalised(perfects, profile) == pytest.approx(100.0)
