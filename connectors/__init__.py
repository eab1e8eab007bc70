"""Sources of mentions. Each connector turns one source's API into :class:`Mention` objects.

Nothing here imports from ``monitor``: the daemon depends on connectors, never the reverse.

May import: ``connectors`` and third-party clients only. Nothing here imports ``monitor``
(checked by ``lint-imports``); ``monitor.daemon`` and the pipeline import it.
"""

from __future__ import annotations

from connectors.base import (
    AuthFailed,
    Author,
    Connector,
    ConnectorError,
    EndpointGone,
    Engagement,
    FetchResult,
    Mention,
    RateLimited,
    TransientError,
)

__all__ = [
    "AuthFailed",
    "Author",
    "Connector",
    "ConnectorError",
    "EndpointGone",
    "Engagement",
    "FetchResult",
    "Mention",
    "RateLimited",
    "TransientError",
]
