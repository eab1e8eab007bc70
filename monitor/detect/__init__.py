"""Detection: spikes in count series (``spike``) and per-brand complaint volume (``brand``)."""

from __future__ import annotations

from monitor.detect.brand import BrandMonitor, DetectionSettings
from monitor.detect.spike import DAEMON, NAB, PRESETS, Decision, SpikeDetector, SpikeSettings

__all__ = [
    "DAEMON",
    "NAB",
    "PRESETS",
    "BrandMonitor",
    "Decision",
    "DetectionSettings",
    "SpikeDetector",
    "SpikeSettings",
]
