"""Logging for every command: plain lines or JSON objects on stderr, with secrets redacted.

Redaction happens on the handler's final text, so it covers every logger (ours and third-party
ones), messages built with ``%`` arguments, and formatted tracebacks. Two kinds of secrets:

* the values of the config's secret keys (``alerts.slack.token``, ``sources.*.bearer_token``,
  ``client_secret``, ``api_key``, ``app_password``, ``access_token``) and the password in
  ``archive.url``, whatever they look like;
* anything shaped like a credential: Slack tokens (``xoxb-…``), ``Bearer …``/``Basic …``
  headers, ``user:password@`` in URLs, and ``?token=``/``key=``/``access_token=``-style
  query parameters.

The CLI also passes its one-line error messages through :func:`redact`, so a connector error that
quotes a URL with an API key in it shows ``key=[redacted]``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal, TextIO
from urllib.parse import urlsplit

from pydantic import BaseModel

LogFormat = Literal["plain", "json"]

REDACTED = "[redacted]"
# Config keys whose values are credentials, wherever they appear in the config.
SECRET_KEYS = frozenset(
    {"token", "bearer_token", "client_secret", "api_key", "app_password", "access_token",
     "password", "secret"}
)
# Shorter configured values are not redacted: replacing "ab" everywhere would mangle logs.
MIN_SECRET_CHARS = 6
# Loggers that chat per request at INFO (httpx logs every URL, with its query string).
# Alembic's own INFO lines (dialect, DDL mode, each step) are replaced by one line of ours
# (monitor.archive.migrate) when a migration runs, and none when there is nothing to do.
NOISY_LOGGERS = (
    "apscheduler", "httpx", "httpcore", "urllib3", "slack_sdk", "filelock", "alembic",
)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Slack tokens: bot, user, app, refresh, config and legacy workspace tokens.
    (re.compile(r"\bxox[abporse]-[A-Za-z0-9-]+"), REDACTED),
    (re.compile(r"\bxapp-[A-Za-z0-9-]+"), REDACTED),
    # Authorization headers as they show up in reprs and error bodies.
    (re.compile(r"\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=%-]{6,}", re.IGNORECASE),
     rf"\1 {REDACTED}"),
    # user:password@host in any URL (postgresql://uproar:hunter2@db/uproar).
    (re.compile(r"(?<=://)([^/\s:@]+):[^/\s@]+@"), rf"\1:{REDACTED}@"),
    # Credentials in query strings or form bodies.
    (re.compile(
        r"(?i)\b((?:access_|api_|auth_|bearer_|client_|refresh_)?(?:token|key|secret|password"
        r"|sig|signature)=)[^&\s\"'<>]+"
    ), rf"\1{REDACTED}"),
)


class Redactor:
    """Replaces known secret values and credential-shaped text with ``[redacted]``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        self.set_secrets(secrets)

    def set_secrets(self, secrets: Iterable[str]) -> None:
        unique = {s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}
        with self._lock:
            # Longest first, so a secret containing another is replaced whole.
            self._secrets = tuple(sorted(unique, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


def config_secrets(config: BaseModel) -> list[str]:
    """Every credential in a config: values of secret keys, and passwords inside URLs."""
    found: list[str] = []

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name), name)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item, key)
        elif isinstance(value, str):
            if key in SECRET_KEYS:
                found.append(value)
            elif "://" in value:
                found.extend(_url_password(value))

    walk(config)
    return found


def _url_password(url: str) -> list[str]:
    try:
        password = urlsplit(url).password
    except ValueError:
        return []
    return [password] if password else []


# The redactor the installed handler uses; the CLI's error messages go through it too.
_active = Redactor()


def redact(text: str) -> str:
    """Redact ``text`` with the secrets of the config last passed to :func:`configure`."""
    return _active(text)


class PlainFormatter(logging.Formatter):
    """``2026-03-02T14:07:00Z LEVEL logger: message`` (UTC; no time when the journal adds
    its own), redacted."""

    def __init__(self, redactor: Redactor, *, timestamps: bool) -> None:
        fmt = "%(levelname)s %(name)s: %(message)s"
        super().__init__(("%(asctime)s " + fmt) if timestamps else fmt)
        self.redactor = redactor

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor(super().format(record))


def _to_journal(out: TextIO) -> bool:
    """Whether ``out`` is systemd's journal stream (which timestamps every line itself)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = stream.partition(":")
    try:
        status = os.fstat(out.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return bool(stream) and (str(status.st_dev), str(status.st_ino)) == (device, inode)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC ISO 8601), level, logger, message, exc (if any)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": self.redactor(record.getMessage()),
        }
        if record.exc_info:
            entry["exc"] = self.redactor(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exc"] = self.redactor(record.exc_text)
        return json.dumps(entry, ensure_ascii=False)


def configure(
    level: str = "INFO",
    fmt: LogFormat = "plain",
    secrets: Iterable[str] = (),
    *,
    stream: TextIO | None = None,
) -> None:
    """Install the one stderr handler on the root logger (replacing any), redacting ``secrets``."""
    out = stream if stream is not None else sys.stderr
    _active.set_secrets(secrets)
    handler = logging.StreamHandler(out)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(_active))
    else:
        # The journal timestamps each line itself; everywhere else (a terminal, a file, a
        # pipe) each line carries its UTC time.
        handler.setFormatter(PlainFormatter(_active, timestamps=not _to_journal(out)))
    numeric = getattr(logging, level)
    logging.basicConfig(level=numeric, handlers=[handler], force=True)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, numeric))
