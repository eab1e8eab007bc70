"""Detection: spikes in count series (``spike``) and per-brand complaint volume (``brand``).

May import: the other stages it needs (no circles), ``monitor.config``, ``monitor.signals``,
``monitor.clock``, ``monitor.errors``, ``connectors`` and ``models``. Must not import
``monitor.cli`` or ``monitor.daemon`` (checked by ``lint-imports``); imported by the pipeline,
the daemon and the CLI.
"""

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
