"""Uproar: hears complaints about a brand, notices when one spreads, and tells the PR team."""

from __future__ import annotations

__version__ = "0.1.0"
