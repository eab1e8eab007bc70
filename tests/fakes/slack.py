"""A fake Slack Web API on 127.0.0.1 speaking Slack's wire format, for tests.

It implements ``chat.postMessage``, ``chat.update``, ``auth.test``, ``conversations.info`` and
the three steps of ``files_upload_v2`` (``files.getUploadURLExternal``, a POST of the bytes to
the upload URL it hands out, which points at this server, then ``files.completeUploadExternal``)
minimally: bodies as slack_sdk sends them (JSON for ``chat.*``, form-encoded or query string for
the rest), the bearer token checked (``invalid_auth`` otherwise), Block Kit limits checked
(``invalid_blocks``, as real Slack would reject them). Every request is recorded in order:

    server.requests                   every call, failed ones too
    server.calls("chat.postMessage")  the calls of one method
    server.messages                   the channel as it stands: posted messages, edits applied
    server.files                      files shared by completeUploadExternal, in order: dicts
                                      with id, filename, bytes, channel, thread_ts, title
                                      (kept apart from ``messages``; the upload POST itself is
                                      recorded as method "upload", token None)

Failures are injected for the next N calls: ``fail_next(status=500)``,
``rate_limit_next(retry_after=30)``, ``error_next("channel_not_found")``, ``hang_next()`` (no
answer until the client gives up; the server is released at stop), ``drop_next()`` (close the
connection without an answer).

    def test_it(fake_slack):
        sender = SlackSender(fake_slack.token, "#brand-alerts", fake_slack.url)
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

TOKEN = "xoxb-fake-0000-test"
APP_TOKEN = "xapp-1-fake-0000-test"  # the app-level token apps.connections.open wants
CHANNEL_ID = "C0FAKEALRT"
CHANNEL_NAME = "brand-alerts"
BOT_USER_ID = "U0UPROAR"
BOT_ID = "B0UPROAR"

# Block Kit limits real Slack enforces with invalid_blocks.
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
# Upload URLs handed out by files.getUploadURLExternal: <url>upload/<file id>.
UPLOAD_PATH = "/api/upload/"


@dataclass
class Call:
    """One request as the fake saw it, and what it answered."""

    method: str
    body: dict[str, Any]
    token: str | None
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.response.get("ok"))


@dataclass
class _Fault:
    kind: str  # "status" | "ratelimit" | "error" | "hang" | "drop" | "slow"
    remaining: int
    method: str | None
    status: int = 500
    error: str = ""
    retry_after: int = 0


class FakeSlack:
    """A Slack Web API server in a thread. ``url`` is the base URL (ends with "/")."""

    def __init__(
        self,
        *,
        token: str = TOKEN,
        channel_id: str = CHANNEL_ID,
        channel_name: str = CHANNEL_NAME,
        members: bool = True,
    ) -> None:
        self.token = token
        self.channel_id = channel_id
        self.channel_name = channel_name
        self.members = members  # False: the bot is not in the channel (not_in_channel)
        self.requests: list[Call] = []
        self.messages: list[dict[str, Any]] = []
        self.files: list[dict[str, Any]] = []
        self._uploads: dict[str, dict[str, Any]] = {}  # file id -> pending upload
        self._file_seq = 0
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()  # re-entrant: wait_for predicates may call calls()
        self._changed = threading.Condition(self._lock)  # notified after every request
        self._released = threading.Event()
        self._ts_seq = 0
        self.channels: dict[str, str] = {}  # more channels: name (no #) -> id, see add_channel
        self.app_token = APP_TOKEN
        self.socket_url: str | None = None  # set by tests.fakes.socketmode.FakeSocketMode
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}/api/"

    def start(self) -> FakeSlack:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_channel(self, name: str, channel_id: str) -> None:
        """Another channel the bot is in (``#name`` or the id work where Slack takes either)."""
        self.channels[name.lstrip("#")] = channel_id

    def react(self, ts: str, name: str, user: str) -> None:
        """A person adds reaction ``name`` (e.g. "white_check_mark") to message ``ts``."""
        with self._lock:
            for message in self.messages:
                if message["ts"] == ts:
                    users = message.setdefault("reactions", {}).setdefault(name, [])
                    if user not in users:
                        users.append(user)
                    return
        raise KeyError(ts)

    def in_channel(self, channel_id: str) -> list[dict[str, Any]]:
        """Messages posted in one channel (or a DM's D… id), in order."""
        with self._lock:
            return [m for m in self.messages if m["channel"] == channel_id]

    # -- reading back ----------------------------------------------------------------------------

    def wait_for(self, predicate: Any, timeout: float = 30) -> bool:
        """Block until ``predicate(self)`` holds (checked after each request), or timeout;
        for tests that drive a separate daemon process."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout=timeout)

    def calls(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.requests if c.method == method]

    def thread(self, ts: str) -> list[dict[str, Any]]:
        """The replies in the thread of parent ``ts``, in order."""
        with self._lock:
            return [m for m in self.messages if m.get("thread_ts") == ts]

    # -- failures --------------------------------------------------------------------------------

    def fail_next(self, n: int = 1, *, status: int = 500, method: str | None = None) -> None:
        self._add(_Fault("status", n, method, status=status))

    def rate_limit_next(
        self, n: int = 1, *, retry_after: int = 30, method: str | None = None
    ) -> None:
        self._add(_Fault("ratelimit", n, method, status=429, retry_after=retry_after))

    def error_next(self, error: str, n: int = 1, *, method: str | None = None) -> None:
        self._add(_Fault("error", n, method, error=error))

    def hang_next(self, n: int = 1, *, method: str | None = None) -> None:
        self._add(_Fault("hang", n, method))

    def drop_next(self, n: int = 1, *, method: str | None = None) -> None:
        self._add(_Fault("drop", n, method))

    def slow_next(self, n: int = 1, *, method: str | None = None) -> None:
        """Do the call (a message is posted) but answer only after the client gave up."""
        self._add(_Fault("slow", n, method))

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, method: str) -> _Fault | None:
        for fault in self._faults:
            if fault.remaining > 0 and fault.method in (None, method):
                fault.remaining -= 1
                return fault
        return None

    # -- the API ---------------------------------------------------------------------------------

    def _handle(
        self, method: str, body: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, Any]]:
        if token is None:
            return 200, {"ok": False, "error": "not_authed"}
        if method == "apps.connections.open":  # Socket Mode: only the app-level token works
            if token != self.app_token:
                return 200, {"ok": False, "error": "invalid_auth"}
            if self.socket_url is None:
                return 200, {"ok": False, "error": "internal_error"}
            return 200, {"ok": True, "url": self.socket_url}
        if token != self.token:
            return 200, {"ok": False, "error": "invalid_auth"}
        handler = {
            "auth.test": self._auth_test,
            "conversations.info": self._conversations_info,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "reactions.get": self._reactions_get,
            "conversations.list": self._conversations_list,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "files.getUploadURLExternal": self._get_upload_url,
            "files.completeUploadExternal": self._complete_upload,
        }.get(method)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}
        return 200, handler(body)

    def _auth_test(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake.slack.com/",
            "team": "Fake Team",
            "user": "uproar",
            "team_id": "T0FAKE",
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _channel(self, name: Any) -> str | None:
        name = str(name or "")
        if name in (self.channel_id, self.channel_name, f"#{self.channel_name}"):
            return self.channel_id
        if name.lstrip("#") in self.channels:
            return self.channels[name.lstrip("#")]
        if name in self.channels.values():
            return name
        if name[:1] in ("U", "W") and name[1:].isalnum():  # a user id: the app's DM with them
            return "D" + name[1:]
        return None

    def _known_id(self, channel: Any) -> bool:
        channel = str(channel or "")
        return channel == self.channel_id or channel in self.channels.values() or (
            channel.startswith("D") and any(m["channel"] == channel for m in self.messages)
        )

    def _conversations_list(self, body: dict[str, Any]) -> dict[str, Any]:
        channels = {self.channel_name: self.channel_id, **self.channels}
        return {
            "ok": True,
            "channels": [
                {"id": cid, "name": name, "is_channel": True, "is_member": self.members}
                for name, cid in channels.items()
            ],
            "response_metadata": {"next_cursor": ""},
        }

    def _history_view(self, message: dict[str, Any], metadata: bool) -> dict[str, Any]:
        shown = {k: v for k, v in message.items()
                 if k in ("type", "user", "bot_id", "ts", "text", "thread_ts")}
        if metadata and message.get("metadata"):
            shown["metadata"] = message["metadata"]
        return shown

    def _conversations_history(self, body: dict[str, Any]) -> dict[str, Any]:
        """Channel messages newest first (thread replies only when broadcast)."""
        channel = body.get("channel")
        if not self._known_id(channel):
            return {"ok": False, "error": "channel_not_found"}
        oldest = float(body.get("oldest") or 0)
        metadata = str(body.get("include_all_metadata")).lower() in ("true", "1")
        found = [
            self._history_view(m, metadata)
            for m in reversed(self.messages)
            if m["channel"] == channel and float(m["ts"]) > oldest
            and (not m.get("thread_ts") or m.get("reply_broadcast"))
        ]
        return {"ok": True, "messages": found[: int(body.get("limit") or 100)],
                "has_more": False}

    def _conversations_replies(self, body: dict[str, Any]) -> dict[str, Any]:
        """The parent, then its replies, oldest first."""
        channel, ts = body.get("channel"), body.get("ts")
        if not self._known_id(channel):
            return {"ok": False, "error": "channel_not_found"}
        metadata = str(body.get("include_all_metadata")).lower() in ("true", "1")
        parent = [m for m in self.messages if m["ts"] == ts and m["channel"] == channel]
        if not parent:
            return {"ok": False, "error": "thread_not_found"}
        replies = [m for m in self.messages if m.get("thread_ts") == ts]
        found = [self._history_view(m, metadata) for m in parent + replies]
        return {"ok": True, "messages": found[: int(body.get("limit") or 100)],
                "has_more": False}

    def _reactions_get(self, body: dict[str, Any]) -> dict[str, Any]:
        if not self._known_id(body.get("channel")):  # an id, as for chat.update
            return {"ok": False, "error": "channel_not_found"}
        for message in self.messages:
            if message["ts"] == body.get("timestamp") and message["channel"] == body["channel"]:
                reactions = [
                    {"name": name, "users": list(users), "count": len(users)}
                    for name, users in message.get("reactions", {}).items()
                ]
                shown = {"type": "message", "ts": message["ts"], "text": message["text"]}
                if reactions:
                    shown["reactions"] = reactions
                return {"ok": True, "type": "message", "channel": body["channel"],
                        "message": shown}
        return {"ok": False, "error": "message_not_found"}

    def _conversations_info(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("channel") != self.channel_id:  # real Slack wants the id here
            return {"ok": False, "error": "channel_not_found"}
        return {
            "ok": True,
            "channel": {
                "id": self.channel_id,
                "name": self.channel_name,
                "is_channel": True,
                "is_private": False,
                "is_archived": False,
                "is_member": self.members,
            },
        }

    def _post_message(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(body.get("channel"))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        if not self.members:
            return {"ok": False, "error": "not_in_channel"}
        problem = _check_message(body)
        if problem:
            return {"ok": False, "error": problem}
        thread_ts = body.get("thread_ts")
        if thread_ts and not any(m["ts"] == thread_ts for m in self.messages):
            return {"ok": False, "error": "thread_not_found"}
        self._ts_seq += 100
        message = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "channel": channel,
            # Real Slack's ts is the post time: reconciliation looks back from "now" (oldest=).
            "ts": f"{int(time.time())}.{self._ts_seq:06d}",
            "text": body.get("text", ""),
            "blocks": body.get("blocks", []),
            "edits": 0,
        }
        if isinstance(body.get("metadata"), dict):
            message["metadata"] = body["metadata"]
        if thread_ts:
            message["thread_ts"] = thread_ts
            if body.get("reply_broadcast") in (True, "true", "1"):
                message["reply_broadcast"] = True
        self.messages.append(message)
        shown = {k: v for k, v in message.items() if k not in ("channel", "edits")}
        return {"ok": True, "channel": channel, "ts": message["ts"], "message": shown}

    def _update(self, body: dict[str, Any]) -> dict[str, Any]:
        if not self._known_id(body.get("channel")):  # chat.update wants the id, not the name
            return {"ok": False, "error": "channel_not_found"}
        problem = _check_message(body)
        if problem:
            return {"ok": False, "error": problem}
        for message in self.messages:
            if message["ts"] == body.get("ts"):
                message["text"] = body.get("text", message["text"])
                message["blocks"] = body.get("blocks", message["blocks"])
                message["edits"] += 1
                shown = {"text": message["text"], "blocks": message["blocks"], "user": BOT_USER_ID}
                return {
                    "ok": True,
                    "channel": self.channel_id,
                    "ts": message["ts"],
                    "text": message["text"],
                    "message": shown,
                }
        return {"ok": False, "error": "message_not_found"}

    def _get_upload_url(self, body: dict[str, Any]) -> dict[str, Any]:
        filename = body.get("filename")
        try:
            length = int(body.get("length", ""))
        except ValueError:
            length = 0
        if not filename or length <= 0:
            return {"ok": False, "error": "invalid_arguments"}
        self._file_seq += 1
        file_id = f"F0FAKE{self._file_seq:04d}"
        self._uploads[file_id] = {"filename": filename, "length": length, "bytes": None}
        return {"ok": True, "upload_url": f"{self.url}upload/{file_id}", "file_id": file_id}

    def _receive_upload(self, file_id: str, data: bytes) -> tuple[int, str]:
        """The POST to an upload URL (no token: the URL is the credential)."""
        upload = self._uploads.get(file_id)
        if upload is None:
            return 404, "Not Found"
        upload["bytes"] = data
        return 200, f"OK - {len(data)}"

    def _complete_upload(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            files = json.loads(body.get("files") or "")
        except ValueError:
            return {"ok": False, "error": "invalid_arguments"}
        if not isinstance(files, list) or not files:
            return {"ok": False, "error": "invalid_arguments"}
        channel = body.get("channel_id")
        thread_ts = body.get("thread_ts")
        if channel is not None:
            if channel != self.channel_id:  # an id, as for chat.update
                return {"ok": False, "error": "channel_not_found"}
            if not self.members:
                return {"ok": False, "error": "not_in_channel"}
        if thread_ts and not any(m["ts"] == thread_ts for m in self.messages):
            return {"ok": False, "error": "invalid_thread_ts"}
        for item in files:
            upload = self._uploads.get(str(item.get("id")))
            if upload is None or upload["bytes"] is None:
                return {"ok": False, "error": "file_not_found"}
        shared = []
        for item in files:
            upload = self._uploads.pop(item["id"])
            record = {
                "id": item["id"],
                "filename": upload["filename"],
                "bytes": upload["bytes"],
                "channel": channel,
                "thread_ts": thread_ts,
                "title": item.get("title", upload["filename"]),
                "initial_comment": body.get("initial_comment"),
            }
            self.files.append(record)
            shared.append(
                {"id": record["id"], "name": record["filename"], "title": record["title"]}
            )
        return {"ok": True, "files": shared}

    # -- HTTP ------------------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                if parts.path.startswith(UPLOAD_PATH):
                    self._serve_upload(parts.path[len(UPLOAD_PATH) :])
                    return
                method = parts.path.rsplit("/", 1)[-1]
                body = dict(parse_qsl(parts.query))
                body.update(_parse_body(self))
                token = body.pop("token", None)
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Bearer "):
                    token = auth[len("Bearer ") :]
                call = Call(method=method, body=body, token=token)
                with fake._lock:
                    fake.requests.append(call)
                    fault = fake._take_fault(method)
                    if fault is None or fault.kind == "slow":
                        call.status, call.response = fake._handle(method, body, token)
                with fake._changed:
                    fake._changed.notify_all()
                if fault is not None and fault.kind == "slow":
                    fake._released.wait(timeout=30)  # the client times out first
                    self.close_connection = True
                    return
                if fault is not None:
                    self._fault(call, fault)
                    return
                self._reply(call.status, call.response)

            def _serve_upload(self, file_id: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else b""
                call = Call(
                    method="upload", body={"file_id": file_id, "length": len(data)}, token=None
                )
                with fake._lock:
                    fake.requests.append(call)
                    fault = fake._take_fault("upload")
                    if fault is None:
                        call.status, text = fake._receive_upload(file_id, data)
                        call.response = {"ok": call.status == 200, "text": text}
                if fault is not None:
                    self._fault(call, fault)
                    return
                payload = text.encode()
                self.send_response(call.status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _fault(self, call: Call, fault: _Fault) -> None:
                if fault.kind == "hang":
                    call.status = 0
                    fake._released.wait(timeout=30)
                    self.close_connection = True
                    return
                if fault.kind == "drop":
                    call.status = 0
                    self.close_connection = True
                    return
                if fault.kind == "ratelimit":
                    call.status, call.response = 429, {"ok": False, "error": "ratelimited"}
                    self._reply(429, call.response, {"Retry-After": str(fault.retry_after)})
                    return
                if fault.kind == "error":
                    call.status, call.response = 200, {"ok": False, "error": fault.error}
                    self._reply(200, call.response)
                    return
                call.status = fault.status
                data = b"<html><body>Internal Server Error</body></html>"
                self.send_response(fault.status)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _reply(
                self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler


def _parse_body(handler: BaseHTTPRequestHandler) -> dict[str, Any]:
    length = int(handler.headers.get("Content-Length") or 0)
    raw = handler.rfile.read(length) if length else b""
    if not raw:
        return {}
    content_type = handler.headers.get("Content-Type", "")
    if content_type.startswith("application/json"):
        parsed = json.loads(raw)
        return parsed if isinstance(parsed, dict) else {}
    body: dict[str, Any] = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    for key in ("blocks", "attachments", "metadata"):  # form bodies carry these as JSON strings
        if isinstance(body.get(key), str):
            with contextlib.suppress(ValueError):
                body[key] = json.loads(body[key])
    return body


def _check_message(body: dict[str, Any]) -> str | None:
    """What real Slack would refuse in a message body, as its error code; None if fine."""
    blocks = body.get("blocks")
    if not body.get("text") and not blocks:
        return "no_text"
    if blocks is None:
        return None
    if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
        return "invalid_blocks"
    for block in blocks:
        text = block.get("text") or {}
        if block.get("type") == "header":
            if text.get("type") != "plain_text" or len(text.get("text", "")) > MAX_HEADER_TEXT:
                return "invalid_blocks"
        elif block.get("type") == "section" and (
            not text.get("text") or len(text["text"]) > MAX_SECTION_TEXT
        ):
            return "invalid_blocks"
    return None


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """A running fake Slack: ``fake_slack.url`` is the api_url, ``fake_slack.token`` the token."""
    with FakeSlack() as server:
        yield server
