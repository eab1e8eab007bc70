"""Uproar: hears complaints about a brand, notices when one spreads, and tells the PR team.

The spine (``pipeline``, ``replay``, ``backtest``) and small shared modules sit here beside one
package per role: ``cli`` (top), ``daemon``, ``config``, ``brands``, and the stages ``detect``,
``alerts``, ``archive``, ``analyst``, ``serve``. docs/ARCHITECTURE.md has the allowed directions.
"""

from __future__ import annotations

__version__ = "0.1.0"
