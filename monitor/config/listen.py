"""``health.listen`` / ``serve.listen`` addresses: ``"host:port"`` parsed and checked.

Shared by the config's validators, the health server (``monitor.daemon.health``) and the
dashboard (``monitor.serve.auth``), so the stage needs nothing of the daemon for it.
"""

from __future__ import annotations

import ipaddress


def parse_listen(listen: str) -> tuple[str, int]:
    """``"host:port"``, ``"[::1]:port"`` or ``":port"`` (every IPv4 interface) -> (host, port).

    Raises ValueError with a message saying what is expected (pydantic turns it into a config
    error with the key's path when used as a validator).
    """
    expected = 'expected "host:port", "[ipv6-address]:port" or ":port"'
    text = listen.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        hint = f' (did you mean "127.0.0.1:{text}"?)' if text.isdigit() else ""
        raise ValueError(f"{expected}, got {listen!r}{hint}")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"{expected}, got {listen!r}: missing ']'")
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(
                f"{expected}, got {listen!r}: {host!r} is not an IPv6 address"
            ) from None
    elif ":" in host:
        raise ValueError(
            f"{expected}, got {listen!r}: put an IPv6 address in brackets, like [::1]:9464"
        )
    elif host == "":
        host = "0.0.0.0"
    elif any(c.isspace() or c in "/[]@" for c in host):
        raise ValueError(f"{expected}, got {listen!r}: {host!r} is not a host name or address")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{expected}, got {listen!r}: the port must be a number from 0 to 65535")
    return host, int(port_text)
