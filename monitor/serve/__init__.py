"""``uproar serve``: the read-only HTTP API over the archive and the dashboard that uses it.

``api.create_app`` builds the FastAPI application (OpenAPI at ``/openapi.json``); ``auth`` holds
the bearer-token rule; ``reads`` the few queries the analyst code does not already have;
``static/`` the dashboard (plain HTML, JS and CSS shipped in the package: no CDN, no build).

May import: the other stages it needs (no circles), ``monitor.config``, ``monitor.signals``,
``monitor.clock``, ``monitor.errors``, ``connectors`` and ``models``. Must not import
``monitor.cli`` or ``monitor.daemon`` (checked by ``lint-imports``); imported by the pipeline,
the daemon and the CLI.
"""

from __future__ import annotations

from monitor.serve.api import create_app
from monitor.serve.auth import ServeError, check_listen

__all__ = ["ServeError", "check_listen", "create_app"]
