"""Untrusted text (posts, author names, story titles, URLs) made inert for showing to people.

Every renderer — Slack blocks and fallback text, console and email alerts, the CLI tables —
passes such text through :func:`displayable` before it escapes it for its own format. The
archive keeps what was heard; only what is shown is changed.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Anything but printable ASCII, tab and newline is looked at; most text is none of it.
_SUSPECT = re.compile(r"[^\t\n\x20-\x7e]")


def displayable(text: str, *, one_line: bool = False) -> str:
    """``text`` without characters that hide, reorder or control what is shown around it.

    Format characters (Unicode category Cf) are removed: bidi controls (U+202A-202E,
    U+2066-2069, U+200E, U+200F, U+061C), zero-width characters (U+200B-200D, U+2060, U+FEFF),
    soft hyphens and the like. So ``"United \\u202egnp.exe"`` cannot show as "United exe.png" and
    ``"@\\u200bchannel"`` shows as the ``@channel`` a reader sees. Control characters (Cc: ESC,
    BEL, NUL, CR…) become spaces, except newline and tab; with ``one_line`` those too.
    """
    shown = _SUSPECT.sub(_replace, text)
    if one_line:
        shown = shown.replace("\n", " ").replace("\t", " ")
    return shown


def _replace(match: re.Match[str]) -> str:
    return _replacement(match.group())


@lru_cache(maxsize=4096)
def _replacement(ch: str) -> str:
    category = unicodedata.category(ch)
    if category == "Cf":
        return ""
    if category == "Cc":
        return " "
    return ch
