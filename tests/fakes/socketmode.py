"""A fake Slack Socket Mode websocket server on 127.0.0.1, for tests.

Socket Mode: the app calls ``apps.connections.open`` with its app-level token (xapp-…) and gets a
``wss://`` URL (here ``ws://127.0.0.1:PORT/link/?ticket=…``); on connecting it receives
``{"type": "hello"}``; each event arrives as an envelope ``{"envelope_id", "type", "payload",
"accepts_response_payload"}`` that the app must acknowledge by sending ``{"envelope_id": …}``.
This server speaks RFC 6455 itself (handshake, masked client frames, ping/pong, close), so the
real slack-sdk ``SocketModeClient`` (websocket-client) talks to it unchanged.

    with FakeSocketMode(fake_slack) as socket:     # also answers apps.connections.open
        ...
        envelope_id = socket.click("uproar_ack", "12", user="U0DAVE", message_ts=ts)
        assert socket.wait_acked(envelope_id)
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import struct
import threading
import uuid
from typing import Any

from tests.fakes.slack import CHANNEL_ID, FakeSlack

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class FakeSocketMode:
    def __init__(self, slack: FakeSlack) -> None:
        self.slack = slack
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(4)
        self._listener.settimeout(0.05)  # so stop() is noticed quickly
        self._clients: list[socket.socket] = []
        self._lock = threading.Lock()
        self._connected = threading.Condition(self._lock)
        self._acked: dict[str, threading.Event] = {}
        self.received: list[dict[str, Any]] = []  # every JSON message the app sent
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        port = self._listener.getsockname()[1]
        return f"ws://127.0.0.1:{port}/link/?ticket={uuid.uuid4().hex}"

    def start(self) -> FakeSocketMode:
        self.slack.socket_url = self.url
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            for client in self._clients:
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> FakeSocketMode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests do ---------------------------------------------------------------------------

    def wait_connected(self, timeout: float = 10) -> bool:
        with self._connected:
            return self._connected.wait_for(lambda: bool(self._clients), timeout=timeout)

    def click(
        self,
        action_id: str,
        value: str,
        *,
        user: str = "U0DAVE",
        message_ts: str = "",
        channel: str = CHANNEL_ID,
    ) -> str:
        """Someone clicks a button: a ``block_actions`` envelope; returns its envelope id."""
        envelope_id = uuid.uuid4().hex
        payload = {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T0"},
            "api_app_id": "A0UPROAR",
            "token": "verification-token-unused",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
            "channel": {"id": channel, "name": "brand-alerts"},
            "message": {"type": "message", "ts": message_ts},
            "response_url": "https://hooks.slack.invalid/actions/T0/1/x",
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "uproar_actions",
                    "value": value,
                    "action_ts": "1700000000.000001",
                }
            ],
        }
        self.send(
            {
                "envelope_id": envelope_id,
                "type": "interactive",
                "accepts_response_payload": False,
                "payload": payload,
            }
        )
        self._acked.setdefault(envelope_id, threading.Event())
        return envelope_id

    def wait_acked(self, envelope_id: str, timeout: float = 10) -> bool:
        return self._acked.setdefault(envelope_id, threading.Event()).wait(timeout)

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode()
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            with contextlib.suppress(OSError):
                client.sendall(_frame(0x1, data))

    # -- the websocket side ----------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if not self._handshake(conn):
                conn.close()
                return
            with self._connected:
                self._clients.append(conn)
                self._connected.notify_all()
            conn.sendall(_frame(0x1, json.dumps({
                "type": "hello",
                "num_connections": 1,
                "debug_info": {"host": "fake-socketmode", "approximate_connection_time": 3600},
                "connection_info": {"app_id": "A0UPROAR"},
            }).encode()))
            while not self._stopped.is_set():
                opcode, data = _read_frame(conn)
                if opcode == 0x8:  # close
                    conn.sendall(_frame(0x8, data[:2]))
                    break
                if opcode == 0x9:  # ping
                    conn.sendall(_frame(0xA, data))
                elif opcode == 0x1:
                    message = json.loads(data)
                    self.received.append(message)
                    envelope_id = message.get("envelope_id")
                    if envelope_id:
                        self._acked.setdefault(envelope_id, threading.Event()).set()
        except (OSError, ConnectionError, ValueError):
            pass
        finally:
            with self._lock:
                if conn in self._clients:
                    self._clients.remove(conn)
            conn.close()

    def _handshake(self, conn: socket.socket) -> bool:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = conn.recv(4096)
            if not chunk:
                return False
            request += chunk
        headers = {}
        for line in request.decode("latin-1").split("\r\n")[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        key = headers.get("sec-websocket-key")
        if not key or headers.get("upgrade", "").lower() != "websocket":
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return False
        accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
        conn.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        return True


def _frame(opcode: int, data: bytes) -> bytes:
    """A server frame: FIN set, never masked."""
    head = bytes([0x80 | opcode])
    if len(data) < 126:
        head += bytes([len(data)])
    elif len(data) < 1 << 16:
        head += bytes([126]) + struct.pack("!H", len(data))
    else:
        head += bytes([127]) + struct.pack("!Q", len(data))
    return head + data


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("client went away")
        data += chunk
    return data


def _read_frame(conn: socket.socket) -> tuple[int, bytes]:
    """One client frame (clients MUST mask); continuation frames are joined."""
    payload = b""
    while True:
        first, second = _recv_exactly(conn, 2)
        opcode, fin = first & 0x0F, first & 0x80
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", _recv_exactly(conn, 2))[0]
        elif size == 127:
            size = struct.unpack("!Q", _recv_exactly(conn, 8))[0]
        mask = _recv_exactly(conn, 4) if second & 0x80 else b"\0\0\0\0"
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(_recv_exactly(conn, size)))
        payload += data
        if opcode >= 0x8 or fin:
            return (opcode or 0x1), payload
