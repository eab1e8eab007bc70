"""SQLite FTS5 full-text index over mentions, and safe MATCH expressions from user input.

``mentions_fts`` is an external-content table: it stores only the index, reads text from
``mentions`` by rowid, and triggers keep it in step. ``content="mentions"`` is written with
double quotes because that is the form Datasette looks for when it detects a table's FTS index.
"""

from __future__ import annotations

from sqlalchemy import Connection

FTS_TABLE = "mentions_fts"

CREATE_STATEMENTS = (
    f"""CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5(
        text, author_handle,
        content="mentions", content_rowid="id",
        tokenize="unicode61 remove_diacritics 2"
    )""",
    f"""CREATE TRIGGER mentions_fts_insert AFTER INSERT ON mentions BEGIN
        INSERT INTO {FTS_TABLE}(rowid, text, author_handle)
        VALUES (new.id, new.text, new.author_handle);
    END""",
    f"""CREATE TRIGGER mentions_fts_delete AFTER DELETE ON mentions BEGIN
        INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, text, author_handle)
        VALUES ('delete', old.id, old.text, old.author_handle);
    END""",
    # Only when indexed columns change: engagement refreshes must not re-index the text.
    f"""CREATE TRIGGER mentions_fts_update AFTER UPDATE OF text, author_handle ON mentions BEGIN
        INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, text, author_handle)
        VALUES ('delete', old.id, old.text, old.author_handle);
        INSERT INTO {FTS_TABLE}(rowid, text, author_handle)
        VALUES (new.id, new.text, new.author_handle);
    END""",
)


def create_fts(connection: Connection) -> None:
    """Create the index and its triggers, and index any mentions already present."""
    for statement in CREATE_STATEMENTS:
        connection.exec_driver_sql(statement)
    connection.exec_driver_sql(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')")


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
