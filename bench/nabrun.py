"""Run `uproar detect` over the NAB corpus and score it: the library behind ``bench/detect``.

Importable from research scripts (``sys.path.insert(0, "bench")``; ``bench/`` is not a package)::

    import nabrun
    files = nabrun.load_corpus(Path("../shared/data/nab"))
    table = nabrun.score_configs([{}, {"threshold": 3.5}], files)   # overrides of the nab preset
    nabrun.summarise(table[1], files).standard                      # all 53 files, pooled

* :func:`score_configs` runs the detector in process (``monitor.cli.detect.run_detect``, the
  code path of the CLI, on each file's text) for each configuration — a dict of
  ``SpikeSettings`` overrides on ``PRESETS["nab"]`` — over worker processes, and scores each
  file with NAB's three profiles;
* :func:`run_cli` runs ``uproar detect -i FILE`` as a user would, one process per file;
* :func:`summarise` pools a set of files the way NAB does ("normalised over files": the raw
  scores are summed over the set, then normalised by the set's windows);
* :func:`leave_one_category_out` picks, for each category held out, the configuration with the
  best pooled standard score on the other categories and scores the held-out one with it.
"""

from __future__ import annotations

import io
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import nab  # noqa: E402  (bench/ is not a package)

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "nab"
PROFILES = list(nab.PROFILES)  # standard, reward_low_FP, reward_low_FN
CATEGORIES = (
    "artificialNoAnomaly",
    "artificialWithAnomaly",
    "realAWSCloudwatch",
    "realAdExchange",
    "realKnownCause",
    "realTraffic",
    "realTweets",
)
# artificialNoAnomaly has no windows (only false alerts to make): it is always on the training
# side of leave-one-category-out, never held out.
HELD_OUT_CATEGORIES = CATEGORIES[1:]
TWITTER = "realTweets"

Config = Mapping[str, object]  # SpikeSettings overrides on PRESETS["nab"]
FileScores = dict[str, nab.FileScore]  # profile -> score
Table = dict[str, FileScores]  # file name -> its scores


@dataclass(frozen=True, slots=True)
class NabFile:
    name: str  # "realTweets/Twitter_volume_AAPL.csv", as in windows.json
    path: Path
    rows: int
    windows: tuple[nab.Window, ...]

    @property
    def category(self) -> str:
        return self.name.split("/", 1)[0]


@dataclass(frozen=True, slots=True)
class Summary:
    """A set of files pooled: NAB's three scores (None without windows), windows, false alerts."""

    files: int
    standard: float | None
    reward_low_FP: float | None
    reward_low_FN: float | None
    found: int
    windows: int
    false_alerts: int

    def scores(self) -> tuple[float | None, float | None, float | None]:
        return self.standard, self.reward_low_FP, self.reward_low_FN


def load_corpus(data: Path = DEFAULT_DATA) -> list[NabFile]:
    """Every file named in ``windows.json`` that exists under ``data``, with its windows as rows.

    Rows are counted as ``uproar detect`` writes them: one per data row, in file order (a row
    whose timestamp goes back keeps its place), so alerts and windows line up row for row.
    """
    spans = nab.load_windows(data / "windows.json")
    files = []
    for name in sorted(spans):
        path = data / name
        if not path.exists():
            continue
        timestamps, _ = nab.load_series(path)
        windows = tuple(nab.window_rows(timestamps, spans[name]))
        files.append(NabFile(name, path, len(timestamps), windows))
    return files


def score_alerts(file: NabFile, alerts: Sequence[bool]) -> FileScores:
    if len(alerts) != file.rows:
        raise ValueError(f"{file.name}: {len(alerts)} output rows for {file.rows} input rows")
    return {p: nab.score_file(alerts, file.windows, nab.PROFILES[p]) for p in PROFILES}


def summarise(table: Table, files: Iterable[NabFile]) -> Summary:
    """Pool ``files`` (those present in ``table``) NAB's way: raw scores summed, then normalised."""
    names = [f.name for f in files if f.name in table]
    per = [table[n] for n in names]
    scores: list[float | None] = []
    for p in PROFILES:
        pooled = [s[p] for s in per]
        has_windows = sum(s.windows for s in pooled) > 0
        scores.append(nab.normalised(pooled, nab.PROFILES[p]) if has_windows else None)
    std = [s["standard"] for s in per]
    return Summary(
        files=len(names),
        standard=scores[0],
        reward_low_FP=scores[1],
        reward_low_FN=scores[2],
        found=sum(s.detected for s in std),
        windows=sum(s.windows for s in std),
        false_alerts=sum(s.fp_count for s in std),
    )


# -- in process -----------------------------------------------------------------------------


def settings_for(config: Config):  # type: ignore[no-untyped-def]
    """``PRESETS["nab"]`` (the default of `uproar detect`) with ``config``'s overrides."""
    from monitor.detect.spike import PRESETS

    return replace(PRESETS["nab"], **dict(config))


def alerts_in_process(path: Path, config: Config) -> list[bool]:
    """The file's alert column from ``run_detect`` (the CLI's code path), without a process."""
    from monitor.cli.detect import run_detect

    sink = io.StringIO()
    with open(path, encoding="utf-8", errors="replace", newline="") as source:
        run_detect(source, sink, settings_for(config), warn=None)
    return [line.endswith("1") for line in sink.getvalue().splitlines()[1:]]


def _alert_rows(task: tuple[Path, Config]) -> tuple[list[int], float]:
    path, config = task
    cpu = time.process_time()
    alerts = alerts_in_process(path, config)
    return [i for i, a in enumerate(alerts) if a], time.process_time() - cpu


def score_configs(
    configs: Sequence[Config],
    files: Sequence[NabFile],
    *,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> list[Table]:
    """Score each configuration on each file, in process over ``workers`` processes.

    Returns one :data:`Table` per configuration, in order. ``progress(done, total)`` is called
    as (configuration, file) runs finish.
    """
    return score_configs_timed(configs, files, workers=workers, progress=progress)[0]


def score_configs_timed(
    configs: Sequence[Config],
    files: Sequence[NabFile],
    *,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Table], list[float]]:
    """:func:`score_configs`, and the CPU seconds ``run_detect`` took per configuration (all
    files, reading, detecting and writing CSV; scoring not included)."""
    tasks = [(f.path, dict(c)) for c in configs for f in files]
    tables: list[Table] = [{} for _ in configs]
    cpu = [0.0 for _ in configs]
    n, total = len(files), len(tasks)

    def collect(results: Iterable[tuple[list[int], float]]) -> tuple[list[Table], list[float]]:
        for k, (rows, seconds) in enumerate(results):
            file = files[k % n]
            alerts = [False] * file.rows
            for i in rows:
                alerts[i] = True
            tables[k // n][file.name] = score_alerts(file, alerts)
            cpu[k // n] += seconds
            if progress is not None:
                progress(k + 1, total)
        return tables, cpu

    if workers <= 1:
        return collect(map(_alert_rows, tasks))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return collect(pool.map(_alert_rows, tasks, chunksize=1))


def tuning_grid() -> tuple[list[dict[str, object]], bool]:
    """``monitor.detect.spike.TUNING_GRID`` if the detector exposes one; else ``[{}]`` (the
    preset alone). The flag says whether a grid was found."""
    from monitor.detect import spike

    grid = getattr(spike, "TUNING_GRID", None)
    if not grid:
        return [{}], False
    return [dict(c) for c in grid], True


# -- leave one category out -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeldOut:
    category: str
    config: int  # index of the configuration picked on the other categories
    train_standard: float  # its pooled standard score there
    summary: Summary  # the held-out category scored with it


def leave_one_category_out(
    tables: Sequence[Table], files: Sequence[NabFile]
) -> tuple[list[HeldOut], Summary]:
    """For each category with windows, pick the configuration with the best pooled standard
    score on every other category (artificialNoAnomaly's false alerts count there), and score
    the held-out category with it. Returns each held-out result and all of them pooled."""
    held: list[HeldOut] = []
    pooled: Table = {}
    present = {f.category for f in files}
    for category in HELD_OUT_CATEGORIES:
        if category not in present:
            continue
        train = [f for f in files if f.category != category]
        test = [f for f in files if f.category == category]
        train_scores = [summarise(t, train).standard for t in tables]
        best = max(range(len(tables)), key=lambda i: (train_scores[i] or -math.inf, -i))
        held.append(
            HeldOut(category, best, train_scores[best] or 0.0, summarise(tables[best], test))
        )
        for f in test:
            pooled[f.name] = tables[best][f.name]
    return held, summarise(pooled, [f for f in files if f.name in pooled])


# -- sensitivity ----------------------------------------------------------------------------


def one_step_configs(
    base: Config, knobs: Iterable[str]
) -> list[tuple[str, str, dict[str, object]]]:
    """For each knob: ×0.8 and ×1.25 for numbers and durations, a toggle for booleans.

    Returns (knob, step label, config) for each step that makes a valid, different setting.
    """
    from datetime import timedelta

    settings = settings_for(base)
    out = []
    for knob in knobs:
        value = getattr(settings, knob, None)
        steps: list[tuple[str, object]] = []
        if isinstance(value, bool):
            steps = [("toggled", not value)]
        elif isinstance(value, timedelta):
            steps = [(f"×{f:g}", value * f) for f in (0.8, 1.25)]
        elif isinstance(value, int):
            steps = [(f"×{f:g}", max(0, round(value * f))) for f in (0.8, 1.25)]
        elif isinstance(value, float):
            steps = [(f"×{f:g}", value * f) for f in (0.8, 1.25)]
        for label, new in steps:
            if new == value:
                continue
            config = {**dict(base), knob: new}
            try:
                settings_for(config)
            except (ValueError, TypeError):
                continue
            out.append((knob, label, config))
    return out


def numeric_knobs() -> list[str]:
    """Every SpikeSettings field that is a number, a duration or a flag."""
    from dataclasses import fields
    from datetime import timedelta

    settings = settings_for({})
    return [
        f.name
        for f in fields(settings)
        if isinstance(getattr(settings, f.name), int | float | bool | timedelta)
    ]


# -- the CLI, as a user runs it -------------------------------------------------------------


def detect_command() -> list[str]:
    """``uproar detect`` from the running interpreter's environment (else ``python -m``)."""
    script = Path(sys.executable).with_name("uproar")
    if script.exists():
        return [str(script), "detect"]
    found = shutil.which("uproar")
    if found:
        return [found, "detect"]
    return [sys.executable, "-m", "monitor.cli.detect"]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True, slots=True)
class CliRun:
    alerts: dict[str, list[bool]]  # file name -> alert column
    stderr: dict[str, str]  # file name -> what `uproar detect` said on stderr
    wall_seconds: float
    cpu_seconds: float  # CPU time of all detect processes, start-up included
    startup_cpu_seconds: float  # CPU time of one `uproar detect` on a header-only input


def run_cli(
    files: Sequence[NabFile],
    extra: Sequence[str] = (),
    *,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> CliRun:
    """Run ``uproar detect -i FILE [extra]`` on each file, ``workers`` at a time.

    Raises ``RuntimeError`` if a run fails or writes a different number of rows.
    """
    command = [*detect_command()]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def one(file: NabFile) -> tuple[list[bool], str]:
        proc = subprocess.run(
            [*command, "-i", str(file.path), *extra],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"uproar detect stopped on {file.name}: {proc.stderr.strip()}")
        lines = proc.stdout.splitlines()[1:]
        if len(lines) != file.rows:
            raise RuntimeError(f"{file.name}: {len(lines)} output rows for {file.rows} input rows")
        return [line.endswith("1") for line in lines], proc.stderr

    startup = _startup_cpu(command, env)
    cpu = _children_cpu()
    start = time.perf_counter()
    alerts: dict[str, list[bool]] = {}
    stderr: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for k, (file, (column, said)) in enumerate(zip(files, pool.map(one, files), strict=True)):
            alerts[file.name] = column
            stderr[file.name] = said
            if progress is not None:
                progress(k + 1, len(files))
    wall = time.perf_counter() - start
    return CliRun(alerts, stderr, wall, _children_cpu() - cpu, startup)


def _startup_cpu(command: list[str], env: dict[str, str], runs: int = 3) -> float:
    """The least CPU time of ``uproar detect`` on a header-only input (its start-up cost)."""
    best = math.inf
    for _ in range(runs):
        before = _children_cpu()
        subprocess.run(
            [*command, "-i", "-"],
            input="timestamp,value\n",
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        best = min(best, _children_cpu() - before)
    return best
