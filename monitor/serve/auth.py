"""Who may read the API: anyone on a loopback address, a bearer-token holder otherwise.

The rule is checked twice: at start (:func:`check_listen` refuses to bind beyond loopback
without a token) and on every ``/api`` request (:class:`BearerToken`, when a token is set).
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from monitor.config.listen import parse_listen
from monitor.errors import UproarError


class ServeError(UproarError):
    """``uproar serve`` cannot start as configured; the message says what to change."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_listen(listen: str, token: str) -> tuple[str, int]:
    """``(host, port)`` to bind; :class:`ServeError` for a bad address or a missing token."""
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        raise ServeError(f"--listen {listen!r}: {exc}") from None
    if not token and not is_loopback(host):
        raise ServeError(
            f"refusing to serve the archive on {listen} without a token: set serve.token in "
            'the config (e.g. token: "${UPROAR_SERVE_TOKEN}") or listen on 127.0.0.1'
        )
    return host, port


# Documents the scheme in /openapi.json; checking is BearerToken's job (401, not 403).
BEARER = HTTPBearer(auto_error=False, description="serve.token from the config")


class BearerToken:
    """FastAPI dependency: 401 unless ``Authorization: Bearer <token>`` matches (if a token is set).

    The comparison takes the same time however much of the token matches.
    """

    def __init__(self, token: str) -> None:
        self._token = token.encode("utf-8")

    def __call__(
        self, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
    ) -> None:
        if not self._token:
            return
        given = credentials.credentials if credentials is not None else ""
        if not hmac.compare_digest(given.strip().encode("utf-8"), self._token):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="missing or wrong bearer token: send Authorization: Bearer <serve.token>",
                headers={"WWW-Authenticate": "Bearer"},
            )
