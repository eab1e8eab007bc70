"""bench/nabrun.py: pooling NAB scores over sets of files, and leave-one-category-out."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tests.paths import ROOT

ROOT = ROOT


def _load(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


sys.path.insert(0, str(ROOT / "bench"))
nab = _load("nab")
nabrun = _load("nabrun")
N = 1000  # rows per file; warm-up is 150


def _file(name: str, *windows: tuple[int, int]):  # type: ignore[no-untyped-def]
    return nabrun.NabFile(name, Path(name), N, tuple(nab.Window(a, b) for a, b in windows))


def _alerts(*rows: int) -> list[bool]:
    out = [False] * N
    for i in rows:
        out[i] = True
    return out


FILES = [
    _file("artificialNoAnomaly/flat.csv"),
    _file("realTraffic/a.csv", (400, 449)),
    _file("realTraffic/b.csv", (600, 649)),
    _file("realTweets/c.csv", (300, 349), (700, 749)),
]


def _table(alerts: dict[str, list[bool]]):  # type: ignore[no-untyped-def]
    return {f.name: nabrun.score_alerts(f, alerts.get(f.name, _alerts())) for f in FILES}


def test_pooling_sums_raw_scores_over_the_set_and_counts_windows_and_false_alerts() -> None:
    table = _table(
        {"realTraffic/a.csv": _alerts(400), "artificialNoAnomaly/flat.csv": _alerts(500)}
    )
    s = nabrun.summarise(table, FILES)
    assert (s.files, s.found, s.windows, s.false_alerts) == (4, 1, 4, 1)
    # one window earned (1.0), three missed (-3.0), one false alert before any window (-0.11):
    # 100 * (raw + 4) / (4 + 4)
    assert s.standard == pytest.approx(100 * (1.0 - 3.0 - 0.11 + 4) / 8)
    quiet = nabrun.summarise(table, FILES[:1])
    assert quiet.standard is None and quiet.false_alerts == 1


def test_leave_one_category_out_picks_on_the_other_categories_only() -> None:
    # config 0 finds the traffic windows, config 1 the Twitter ones and raises a false alert
    # on the flat series
    traffic = _table({"realTraffic/a.csv": _alerts(400), "realTraffic/b.csv": _alerts(600)})
    tweets = _table(
        {"realTweets/c.csv": _alerts(300, 700), "artificialNoAnomaly/flat.csv": _alerts(500)}
    )
    held, pooled = nabrun.leave_one_category_out([traffic, tweets], FILES)
    picks = {h.category: h.config for h in held}
    assert picks == {"realTraffic": 1, "realTweets": 0}  # each picked without its own files
    assert [h.summary.standard for h in held] == [0.0, 0.0]
    assert pooled.files == 3 and pooled.standard == pytest.approx(0.0)


def test_one_step_configs_move_each_number_both_ways_and_toggle_flags() -> None:
    base = nabrun.settings_for({})
    knobs = nabrun.numeric_knobs()
    number = next(k for k in knobs if type(getattr(base, k)) is float and getattr(base, k) > 0)
    flags = [k for k in knobs if isinstance(getattr(base, k), bool)]
    steps = nabrun.one_step_configs({}, [number, *flags[:1]])
    labels = [(knob, label) for knob, label, _ in steps]
    assert labels[:2] == [(number, "×0.8"), (number, "×1.25")]
    assert labels[2:] == [(flag, "toggled") for flag in flags[:1]]
    assert steps[0][2][number] == pytest.approx(getattr(base, number) * 0.8)
