"""SQLite FTS5 full-text index over mentions, and safe MATCH expressions from user input.

``mentions_fts`` is an external-content table: it stores only the index, reads text from
``mentions`` by rowid, and triggers keep it in step. Revision 0001 creates both
(``migrations/versions/0001_initial.py``).
"""

from __future__ import annotations

FTS_TABLE = "mentions_fts"


def search_words(text: str) -> list[str]:
    """The words of a user's query worth searching for: those with a letter or digit.

    Punctuation-only fragments (``"``, ``*``, ``--``) would tokenize to nothing, so they are
    dropped rather than passed on.
    """
    return [word for word in text.split() if any(ch.isalnum() for ch in word)]


def match_expression(words: list[str]) -> str:
    """An FTS5 MATCH expression requiring every word, each quoted as an FTS5 string.

    Inside a string FTS5 syntax (``NEAR(``, ``OR``, ``*``, ``:``, ``^``) is plain text, so
    hostile input cannot change the query's shape. The result is passed as a bound parameter.
    """
    return " ".join('"' + word.replace('"', '""') + '"' for word in words)
