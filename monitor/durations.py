"""Durations as people write them in config and on the command line: ``90s``, ``5m``, ``7d``."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_WHOLE = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*(?:ms|s|m|h|d|w)\s*)+$", re.IGNORECASE)


def parse_duration(value: object) -> timedelta:
    """Parse ``90s``, ``5m``, ``2h``, ``7d``, ``1h30m``; raises ``ValueError`` with a hint."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"expected a duration like 90s, 5m, 2h or 7d, got {value!r} (add a unit)")
    if not _WHOLE.match(value):
        raise ValueError(f"expected a duration like 90s, 5m, 2h or 7d, got {value!r}")
    seconds = sum(float(n) * _UNITS[u.lower()] for n, u in _PART.findall(value))
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The shortest exact spelling: ``300s`` -> ``5m``, ``5400s`` -> ``1h30m``."""
    total = int(delta.total_seconds())
    if total == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size:
            parts.append(f"{total // size}{unit}")
            total %= size
    return "".join(parts)
