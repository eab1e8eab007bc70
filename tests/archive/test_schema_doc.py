"""docs/SCHEMA.md stays true: each table documented once (and every table documented), the
`signals.kind` values are the ones the detectors write; a mention without a raw payload is SQL
NULL (not the JSON text 'null'), and revision 0006 fixes rows written the old way."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime

from sqlalchemy import text

from connectors.base import Mention
from monitor.archive import Archive, StoredMention, migrate
from monitor.archive.engine import build_engine
from monitor.archive.schema import mentions, metadata
from tests.paths import ROOT
from tests.sourcekit import archive_url  # noqa: F401  (fixture)

ROOT = ROOT
SCHEMA = (ROOT / "docs" / "SCHEMA.md").read_text()
T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def documented_tables() -> list[str]:
    headings = re.findall(r"^### (.+)$", SCHEMA, flags=re.MULTILINE)
    names: list[str] = []
    for heading in headings:
        title = heading.split(":")[0]
        names += re.findall(r"`(\w+)`", title)
    return names


def test_each_table_is_documented_once() -> None:
    names = documented_tables()
    repeated = sorted({n for n in names if names.count(n) > 1})
    assert repeated == []
    assert sorted(set(metadata.tables) - set(names)) == []


def emitted_kinds() -> set[str]:
    """The ``kind=`` of every ``Signal(...)`` the detectors build."""
    kinds = set()
    for path in (ROOT / "monitor" / "detect").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Signal":
                for keyword in node.keywords:
                    if keyword.arg == "kind" and isinstance(keyword.value, ast.Constant):
                        kinds.add(keyword.value.value)
    return kinds


def test_signal_kinds_are_the_ones_the_detectors_write() -> None:
    section = SCHEMA.split("### `signals`", 1)[1].split("###", 1)[0]
    row = next(line for line in section.splitlines() if line.startswith("| `kind` |"))
    documented = set(re.findall(r"`(\w+)`", row.split("|")[2]))
    assert emitted_kinds() == {"complaint_volume", "story_growth", "engagement_velocity",
                               "high_reach_author"}
    assert documented == emitted_kinds()


def test_a_mention_without_payload_stores_null(archive_url: str) -> None:  # noqa: F811
    plain = Mention(source="rss", source_id="1", url="https://x.example/1", text="lost my bag",
                    created_at=T0)
    with Archive(archive_url) as archive:
        archive.store([StoredMention(plain, ("united",), None, None, None)], fetched_at=T0)
        with archive.engine.connect() as connection:
            nulls = connection.execute(text("SELECT count(*) FROM mentions WHERE raw IS NULL"))
            assert nulls.scalar_one() == 1
        assert archive.search("bag")[0].mention.raw == {}


def test_revision_0006_turns_stored_null_text_into_null(archive_url: str) -> None:  # noqa: F811
    engine = build_engine(archive_url)
    try:
        migrate.upgrade(engine, "test", "0005")
        with engine.begin() as connection:  # as 0005's JSON column wrote None: JSON 'null'
            for i, raw in ((1, "null"), (2, '{"feed": "x"}')):
                connection.execute(mentions.insert().values(
                    id=i, source="rss", source_id=str(i), url="", text="t", author_handle="",
                    author_name="", created_at=T0, fetched_at=T0, likes=0, reposts=0,
                    replies=0, score=0,
                ))
                cast = "CAST(:raw AS json)" if engine.dialect.name == "postgresql" else ":raw"
                connection.execute(text(f"UPDATE mentions SET raw = {cast} WHERE id = :id"),
                                   {"raw": raw, "id": i})
    finally:
        engine.dispose()
    with Archive(archive_url) as archive, archive.engine.connect() as connection:
        assert archive.migration.before.revision == "0005"
        rows = connection.execute(text("SELECT id FROM mentions WHERE raw IS NULL")).all()
        assert [r[0] for r in rows] == [1]  # the real payload is kept
