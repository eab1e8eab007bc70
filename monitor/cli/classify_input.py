"""What ``uproar classify`` accepts as input: UTF-8 text, one text per line, or JSON lines with
a ``"text"`` string. Checked here, at the edge, before anything reaches the model.

- binary data (a NUL byte, bytes that are not UTF-8, mostly control characters) is refused
  with one line naming where it was found;
- blank lines are skipped (they hold no text to classify);
- a JSON object line without a ``"text"`` string is refused, naming the line and its keys;
- a text longer than the model can read is cut, with a note (the model reads only its start);
- a line is read at most ``MAX_LINE_BYTES`` at a time, so one huge line cannot fill memory;
- an input with no text at all says so.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Iterator
from typing import IO

from monitor.errors import UproarError

# The model reads 128 (bundled) to 256 (Hugging Face) tokens from a text's start; 4,096
# characters hold more than that for any tokenizer, so a cut never changes a result.
MAX_TEXT_CHARS = 4096
# Read a line at most this much at a time; the rest of a longer line is skipped unread.
MAX_LINE_BYTES = 1 << 20
# A line in which more than this share of characters are control characters is not text.
MAX_CONTROL_SHARE = 0.1
_TEXT_CONTROLS = frozenset("\t\n\r\f\v\x1b")

Note = Callable[[str], None]


class ClassifyInputError(UproarError):
    """The input is not text ``uproar classify`` can read; the message names the line."""


def input_name(stream: IO[bytes]) -> str:
    name = str(getattr(stream, "name", "stdin"))
    return "stdin" if name in ("<stdin>", "-") else name


def input_lines(stream: IO[bytes], name: str, note: Note) -> Iterator[tuple[str, str]]:
    """``(where, line)`` for every non-blank line, ``where`` as ``file:line``.

    Raises :class:`ClassifyInputError` at the first line that is not text, or at the end when
    there was no text at all.
    """
    number = 0
    texts = 0
    while True:
        raw = stream.readline(MAX_LINE_BYTES)
        if not raw:
            break
        number += 1
        where = f"{name}:{number}"
        complete = raw.endswith(b"\n") or len(raw) < MAX_LINE_BYTES
        if not complete:
            skipped = _skip_rest_of_line(stream)
            note(f"{where}: a line of {len(raw) + skipped:,} bytes: only its first "
                 f"{MAX_LINE_BYTES:,} are read")
        line = _decode(raw, where, final=complete)
        if number == 1:
            line = line.removeprefix("\ufeff")
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        _check_text(line, where)
        texts += 1
        yield where, line
    if not texts:
        what = "is empty" if number == 0 else f"holds only {number} blank lines"
        raise ClassifyInputError(f"{name}: no text to classify: the input {what}")


def parse_line(line: str, where: str = "input", note: Note | None = None) -> str:
    """The text of one input line: the ``"text"`` of a JSON object line, else the line itself,
    cut to ``MAX_TEXT_CHARS`` (with a note)."""
    line = line.rstrip("\r\n")
    text = line
    if line.lstrip().startswith("{"):
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None  # not JSON: a text that starts with a brace
        if isinstance(obj, dict):
            value = obj.get("text")
            if not isinstance(value, str):
                keys = ", ".join(sorted(map(str, obj))[:8]) or "none"
                problem = "no \"text\" key" if value is None else "a \"text\" that is not a string"
                raise ClassifyInputError(
                    f"{where}: a JSON object with {problem} (its keys: {keys}); classify "
                    "reads one text per line, or JSON lines with a \"text\" string"
                )
            text = value
    if len(text) > MAX_TEXT_CHARS:
        if note is not None:
            note(f"{where}: a text of {len(text):,} characters is cut to its first "
                 f"{MAX_TEXT_CHARS:,} (the model reads only a text's start)")
        text = text[:MAX_TEXT_CHARS]
    return text


def _skip_rest_of_line(stream: IO[bytes]) -> int:
    """Read past the rest of a cut line; how many bytes it had (its newline not counted)."""
    skipped = 0
    while True:
        more = stream.readline(MAX_LINE_BYTES)
        skipped += len(more.rstrip(b"\r\n"))
        if not more or more.endswith(b"\n"):
            return skipped


def _decode(raw: bytes, where: str, *, final: bool) -> str:
    if b"\x00" in raw:
        raise ClassifyInputError(
            f"{where}: binary data (a NUL byte at column {raw.index(0) + 1}), not text; "
            "classify reads UTF-8 text, one per line"
        )
    try:
        # Not final (a cut line): an incomplete character at the cut is dropped, not an error.
        return codecs.getincrementaldecoder("utf-8")().decode(raw, final=final)
    except UnicodeDecodeError as exc:
        raise ClassifyInputError(
            f"{where}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
            "classify reads UTF-8 text, one per line"
        ) from exc


def _check_text(line: str, where: str) -> None:
    controls = sum(1 for ch in line if ord(ch) < 32 and ch not in _TEXT_CONTROLS)
    if controls > 1 and controls > MAX_CONTROL_SHARE * len(line):
        raise ClassifyInputError(
            f"{where}: binary data ({controls} control characters in {len(line)}), not text; "
            "classify reads UTF-8 text, one per line"
        )
