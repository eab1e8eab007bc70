"""``uproar detect``: run the spike detector over a count series (NAB CSV format), streaming."""

from __future__ import annotations

import csv
import math
import os
import re
import stat
import sys
from dataclasses import replace
from datetime import datetime, timedelta
from typing import IO

import click

from monitor.detect.spike import PRESETS, SpikeDetector, SpikeSettings

HEADER = ["timestamp", "value"]
# Output is flushed at least this often when reading a regular file (pipes flush every row).
FLUSH_EVERY_ROWS = 1000

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


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


def _is_regular_file(stream: IO[str]) -> bool:
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):
        return False  # StringIO in tests, closed streams: flush every row to be safe


def run_detect(source: IO[str], sink: IO[str], settings: SpikeSettings) -> int:
    """Read ``timestamp,value`` rows from ``source``, write ``timestamp,value,score,alert``.

    Returns the number of rows written. Raises ``click.ClickException`` on the first bad line.
    """
    flush_every = FLUSH_EVERY_ROWS if _is_regular_file(source) else 1
    reader = csv.reader(source)
    write = sink.write
    try:
        header = next(reader)
    except StopIteration:
        raise click.ClickException(
            "line 1: empty input, expected a header 'timestamp,value'"
        ) from None
    if [h.strip().lower() for h in header] != HEADER:
        raise click.ClickException(
            f"line 1: expected the header 'timestamp,value', got {','.join(header)!r}"
        )
    write("timestamp,value,score,alert\n")
    detector = SpikeDetector(settings)
    update = detector.update
    previous: datetime | None = None
    rows = 0
    for row in reader:
        if not row:
            continue
        line = reader.line_num
        if len(row) != 2:
            raise click.ClickException(
                f"line {line}: expected 2 fields 'timestamp,value', got {','.join(row)!r}"
            )
        stamp, raw = row
        try:
            ts = datetime.fromisoformat(stamp.strip())
        except ValueError:
            raise click.ClickException(
                f"line {line}: bad timestamp {stamp!r} (expected e.g. 2015-02-26 21:42:53)"
            ) from None
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise click.ClickException(f"line {line}: bad value {raw!r} (expected a number)")
        if previous is not None and ts < previous:
            raise click.ClickException(
                f"line {line}: timestamp {stamp!r} is earlier than the row before it"
            )
        previous = ts
        decision = update(ts, value)
        write(f"{stamp},{raw},{decision.score:.3f},{1 if decision.alert else 0}\n")
        rows += 1
        if rows % flush_every == 0:
            sink.flush()
    sink.flush()
    return rows


@click.command(
    "detect",
    epilog="""\b
Example:
  uproar detect --input Twitter_volume_AAPL.csv > scored.csv
  tail -f counts.csv | uproar detect --preset daemon --threshold 5
""",
)
@click.option(
    "--input",
    "input_",
    type=click.File("r"),
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

    One output row per input row, streaming; each row is decided only from the rows before
    and at it.
    """
    overrides = {
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
    try:
        run_detect(input_, sys.stdout, settings)
    except BrokenPipeError:
        # the reader went away (e.g. `| head`); stop quietly like other Unix tools
        sys.stderr.close()


if __name__ == "__main__":
    detect()
