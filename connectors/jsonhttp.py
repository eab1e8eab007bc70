"""What every plain-HTTP JSON API connector shares: one request with network errors mapped to
:class:`TransientError`, and the error for an answer that is not JSON (a proxy, a captive
portal, a maintenance page). Each API keeps its own status-code and error-body handling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from connectors.base import TransientError


def send(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    source: str,
    service: str,
    base_url: str,
    what: str,
    timeout: float,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """One request; a timeout or network failure becomes a ``TransientError`` naming
    ``service`` (and ``what`` was asked, or the ``base_url`` it could not reach)."""
    try:
        return client.request(method, url, params=params, json=json, headers=headers,
                              timeout=timeout)
    except httpx.TimeoutException as exc:
        raise TransientError(source, f"{service} did not answer within {timeout:g}s ({what})"
                             ) from exc
    except httpx.HTTPError as exc:
        raise TransientError(source, f"cannot reach {service} at {base_url} "
                                     f"({type(exc).__name__}: {exc})") from exc


def endpoint(response: httpx.Response) -> str:
    """The answered URL without its query (which may hold an API key)."""
    return str(response.url).split("?")[0]


def not_json(source: str, service: str, response: httpx.Response) -> TransientError:
    kind = response.headers.get("content-type", "no content type").split(";")[0]
    return TransientError(source, f"{service} answered {endpoint(response)} with HTTP "
                                  f"{response.status_code} {kind} instead of JSON (a proxy, "
                                  "captive portal or maintenance page?)")
