"""``uproar detect``: run the spike detector over a count series (NAB CSV format), streaming."""

from __future__ import annotations

import csv
import os
import re
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import click

from monitor.detect.spike import PRESETS, SpikeDetector, SpikeSettings
from monitor.errors import UproarError
from monitor.untrusted import displayable

HEADER = ["timestamp", "value"]
# Output is flushed at least this often when reading a regular file (pipes flush every row).
FLUSH_EVERY_ROWS = 1000

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NO_TIME = timedelta(0)


def parse_duration(text: str) -> timedelta:
    """``90s``, ``5m``, ``6h``, ``2d`` → timedelta."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"expected a duration like 90s, 5m, 6h or 2d, got {text!r}")
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


class _Duration(click.ParamType):
    name = "duration"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class DetectInputError(UproarError):
    """The input cannot be read as a ``timestamp,value`` series at all (header, empty input)."""


# Row problems, by kind: (what the summary says the rows had, whether the row was judged).
# A row that is not judged gets ``score`` empty and ``alert`` 0 and is not fed to the detector,
# so its baseline never moves backwards; a judged row is fed as usual.
PROBLEMS: dict[str, tuple[str, bool]] = {
    "fields": ("a wrong number of fields (expected 2: timestamp,value)", False),
    "timestamp": ("a timestamp that cannot be read", False),
    "value": ("an empty or non-numeric value", False),
    "nonfinite": ("a NaN or infinite value", False),
    "order": ("a timestamp that repeats or goes back", False),
    "negative": ("a negative value", True),
    "gap": ("a gap in time (a step over 3 × the series' regular step)", True),
}
# A step longer than this many times the series' regular step (the last step seen twice in a
# row) is reported as a gap; the detector is fed the row as usual and sees the time step.
GAP_FACTOR = 3
# Raw text quoted in a warning is cut to this many characters (it is untrusted input).
_SHOWN_CHARS = 40


@dataclass(slots=True)
class RowProblems:
    """What was wrong with the input, by kind: how many rows and the line of the first one."""

    counts: dict[str, int] = field(default_factory=dict)
    first_line: dict[str, int] = field(default_factory=dict)

    def summary(self) -> list[str]:
        """One line per kind seen, e.g. ``3 rows with a timestamp that repeats or goes back
        (first at line 10151); they got alert 0 and did not move the baseline``."""
        lines = []
        for kind in sorted(self.counts, key=self.first_line.__getitem__):
            what, judged = PROBLEMS[kind]
            n = self.counts[kind]
            rows = "1 row" if n == 1 else f"{n} rows"
            then = (
                "scored as given"
                if judged
                else ("it" if n == 1 else "they") + " got alert 0 and did not move the baseline"
            )
            lines.append(f"{rows} with {what} (first at line {self.first_line[kind]}); {then}")
        return lines


def _shown(text: str) -> str:
    short = text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…"
    return repr(displayable(short, one_line=True))


def _csv_field(text: str) -> str:
    """An unjudged row's raw text as one CSV field, inert on a terminal."""
    text = displayable(text, one_line=True)
    if any(ch in text for ch in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _is_regular_file(stream: IO[str]) -> bool:
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):
        return False  # StringIO in tests, closed streams: flush every row to be safe


def _warn_to_stderr(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def run_detect(
    source: IO[str],
    sink: IO[str],
    settings: SpikeSettings,
    *,
    warn: Callable[[str], None] | None = _warn_to_stderr,
) -> tuple[int, RowProblems]:
    """Read ``timestamp,value`` rows from ``source``, write ``timestamp,value,score,alert``.

    Exactly one output row per input data row (blank lines are not data rows), streaming. A row
    it cannot judge (see :data:`PROBLEMS`) gets an empty score and alert 0 and is not fed to the
    detector; ``warn`` hears the first row of each kind as it happens (``None``: silent).
    Returns the rows written and the problems seen, for a summary. Raises
    :class:`DetectInputError` only when there is no ``timestamp,value`` header.
    """
    flush_every = FLUSH_EVERY_ROWS if _is_regular_file(source) else 1
    reader = csv.reader(source)
    write = sink.write
    try:
        header = next(reader)
    except StopIteration:
        raise DetectInputError("line 1: empty input, expected a header 'timestamp,value'") from None
    if [h.strip().lstrip("\ufeff").lower() for h in header] != HEADER:
        raise DetectInputError(
            f"line 1: expected the header 'timestamp,value', got {_shown(','.join(header))}"
        )
    write("timestamp,value,score,alert\n")
    sink.flush()
    update = SpikeDetector(settings).update
    fromisoformat = datetime.fromisoformat
    problems = RowProblems()
    counts = problems.counts

    def note(kind: str, line: int, detail: str) -> None:
        if kind not in counts:
            counts[kind] = 0
            problems.first_line[kind] = line
            if warn is not None:
                then = (
                    "scored as given" if PROBLEMS[kind][1] else "alert 0, not fed to the detector"
                )
                warn(f"line {line}: {detail}: {then}; more rows like this are counted at the end")
        counts[kind] += 1

    def unjudged(stamp: str, raw: str) -> None:
        write(f"{_csv_field(stamp)},{_csv_field(raw)},,0\n")
        if flush_every == 1:
            sink.flush()

    last: datetime | None = None  # the timestamp of the last row fed to the detector
    previous_step: timedelta | None = None  # the step between the last two rows fed
    cadence: timedelta | None = None  # the last step seen twice in a row
    rows = 0
    for row in reader:
        if not row:
            continue
        rows += 1
        line = reader.line_num
        if len(row) != 2:
            note("fields", line, f"expected 2 fields 'timestamp,value', got {len(row)}")
            stamp, raw = row[0], ",".join(row[1:])
            unjudged(stamp, raw)
            continue
        stamp, raw = row
        try:
            ts = fromisoformat(stamp.strip())
        except ValueError:
            note(
                "timestamp",
                line,
                f"bad timestamp {_shown(stamp)} (expected e.g. 2015-02-26 21:42:53)",
            )
            unjudged(stamp, raw)
            continue
        try:
            value = float(raw)
        except ValueError:
            note("value", line, f"bad value {_shown(raw)} (expected a number)")
            unjudged(stamp, raw)
            continue
        if value - value != 0.0:  # NaN or ±inf
            note("nonfinite", line, f"value {_shown(raw)} is not a finite number")
            unjudged(stamp, raw)
            continue
        if ts.tzinfo is not None:  # mixed naive and aware rows compare as UTC
            ts = ts.astimezone(UTC).replace(tzinfo=None)
        if last is not None:
            step = ts - last
            if step <= _NO_TIME:
                note(
                    "order",
                    line,
                    f"timestamp {_shown(stamp)} repeats or goes back (the latest row fed was "
                    f"{last.isoformat(sep=' ')})",
                )
                unjudged(stamp, raw)
                continue
            if step == previous_step:
                cadence = step  # two equal steps in a row: the series' regular step
            elif cadence is not None and step > GAP_FACTOR * cadence:
                note("gap", line, f"a gap of {step} after the row before")
            previous_step = step
        if value < 0.0:
            note("negative", line, f"negative value {_shown(raw)}")
        last = ts
        decision = update(ts, value)
        write(f"{stamp.strip()},{raw.strip()},{decision.score:.3f},{1 if decision.alert else 0}\n")
        if rows % flush_every == 0:
            sink.flush()
    sink.flush()
    return rows, problems


@click.command(
    "detect",
    epilog="""\b
Example:
  uproar detect --input Twitter_volume_AAPL.csv > scored.csv
  tail -f counts.csv | uproar detect --preset daemon --threshold 5

\b
Messy rows never stop it. A row whose timestamp repeats or goes back, whose
timestamp cannot be read, whose value is empty, not a number, NaN or infinite,
or that has the wrong number of fields gets its output row with an empty score
and alert 0, and is not fed to the detector (the baseline never moves back).
A gap in time and a negative value are scored as given. The first row of each
kind is warned about on stderr with its line number, and a count of each kind
follows at the end.
""",
)
@click.option(
    "--input",
    "-i",
    "input_",
    type=click.File("r", encoding="utf-8", errors="replace"),
    default="-",
    show_default=True,
    help="CSV with header timestamp,value (NAB format); '-' is stdin.",
)
@click.option(
    "--preset",
    type=click.Choice(sorted(PRESETS)),
    default="nab",
    show_default=True,
    help="Starting settings: 'nab' (tuned on NAB's Twitter series) "
    "or 'daemon' (per-brand complaint counts).",
)
@click.option(
    "--threshold",
    type=float,
    default=None,
    help="Alert when the score reaches this (σ above expected).",
)
@click.option("--min-count", type=float, default=None, help="Never alert on a value below this.")
@click.option(
    "--cooldown", type=_Duration(), default=None, help="Quiet time after an alert, e.g. 6h."
)
@click.option(
    "--warmup",
    type=_Duration(),
    default=None,
    help="Learn only, never alert, for this long, e.g. 1d.",
)
def detect(
    input_: IO[str],
    preset: str,
    threshold: float | None,
    min_count: float | None,
    cooldown: timedelta | None,
    warmup: timedelta | None,
) -> None:
    """Score a count series for spikes: writes timestamp,value,score,alert (alert is 0 or 1).

    One output row per input data row, streaming; each row is decided only from the rows
    before and at it.
    """
    overrides: dict[str, Any] = {
        name: value
        for name, value in (
            ("threshold", threshold),
            ("min_count", min_count),
            ("cooldown", cooldown),
            ("warmup", warmup),
        )
        if value is not None
    }
    settings = replace(PRESETS[preset], **overrides)
    name = getattr(input_, "name", "<stdin>")
    # warnings name the file when there is one, so a loop over many files stays readable
    where = "" if name in ("-", "<stdin>") else f"{displayable(str(name), one_line=True)}: "

    def warn(message: str) -> None:
        _warn_to_stderr(where + message)

    try:
        _, problems = run_detect(input_, sys.stdout, settings, warn=warn)
    except DetectInputError as exc:
        raise click.ClickException(f"{name}: {exc}") from None
    except BrokenPipeError:
        # the reader went away (e.g. `| head`); stop quietly like other Unix tools
        sys.stderr.close()
        return
    for line in problems.summary():
        warn(line)


if __name__ == "__main__":
    detect()
