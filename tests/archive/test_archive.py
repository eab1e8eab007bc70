"""The archive on a real SQLite file, and on PostgreSQL when UPROAR_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, inspect, text
from sqlalchemy.engine import make_url

from connectors.base import Author, Engagement, Mention
from models.base import Classification
from monitor.archive import Archive, StoredMention, StoreResult, migrate
from monitor.archive import store as store_module
from monitor.archive.engine import build_engine
from monitor.archive.schema import SCHEMA_VERSION, mention_brands, mentions
from monitor.errors import ArchiveError

POSTGRES_ENV = "UPROAR_TEST_POSTGRES_URL"
T0 = datetime(2009, 7, 7, 3, 0, tzinfo=UTC)
NOW = datetime(2009, 7, 8, 12, 0, tzinfo=UTC)
HOSTILE = [
    '"',
    "NEAR(",
    ") OR (",
    "*",
    "'; DROP TABLE mentions; --",
    'guitar"',
    "a:b",
    "^zq",
    "-",
    "OR",
    "\x00",
]


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def archive_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: a temporary SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'archive' / 'uproar.db'}"
        return
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL archive tests need {POSTGRES_ENV}=postgresql+psycopg://…")
    schema = f"uproar_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def archive(archive_url: str) -> Iterator[Archive]:
    with Archive(archive_url) as opened:
        yield opened


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'uproar.db'}"


def mention(
    source_id: str,
    text_: str = "United broke my guitar",
    *,
    source: str = "twitter",
    created_at: datetime = T0,
    likes: int = 0,
    reposts: int = 0,
    handle: str = "sonsofmaxwell",
) -> Mention:
    return Mention(
        source=source,
        source_id=source_id,
        url=f"https://example.com/{source_id}",
        text=text_,
        created_at=created_at,
        author=Author(handle=handle, name="Dave Carroll", followers=12000),
        engagement=Engagement(likes=likes, reposts=reposts, replies=1, score=0),
        lang="en",
        raw={"kept": [1, 2]},
    )


def stored(
    m: Mention, brands: tuple[str, ...] = ("united",), complaint: float = 0.9
) -> StoredMention:
    classification = Classification(
        sentiment="negative",
        scores={"negative": 0.8, "neutral": 0.15, "positive": 0.05},
        complaint=complaint,
    )
    return StoredMention(m, brands, classification, "minilm-complaints", "1.0")


# -- storing --------------------------------------------------------------------------------


def test_storing_twice_keeps_one_row_and_updates_only_engagement(archive: Archive) -> None:
    first = archive.store([stored(mention("1", likes=1))], fetched_at=NOW)
    assert len(first.inserted) == 1 and first.updated == 0

    changed = replace(
        mention("1"),
        url="https://changed",
        text="edited text",
        created_at=T0 + timedelta(days=1),
        author=Author("other", "Other", 99),
        engagement=Engagement(likes=50, reposts=7, replies=3, score=2),
        lang="fr",
    )
    again = archive.store(
        [StoredMention(changed, ("other-brand",), None, "another-model", "9")],
        fetched_at=NOW + timedelta(hours=1),
    )
    assert again.inserted == [] and again.updated == 1
    assert archive.count_mentions() == 1

    [hit] = archive.search(None)
    assert hit.mention.text == "United broke my guitar"
    assert hit.mention.url == "https://example.com/1"
    assert hit.mention.created_at == T0
    assert hit.mention.author.handle == "sonsofmaxwell"
    assert hit.mention.lang == "en"
    assert hit.brands == ("united",)
    assert hit.classification is not None and hit.classification.complaint == pytest.approx(0.9)
    assert hit.model_name == "minilm-complaints"
    assert hit.fetched_at == NOW
    assert hit.mention.engagement == Engagement(likes=50, reposts=7, replies=3, score=2)
    assert hit.mention.author.followers == 99
    assert hit.mention.raw == {"kept": [1, 2]}


def test_batch_mixes_new_and_known_and_repeats(archive: Archive) -> None:
    archive.store([stored(mention("a"))], fetched_at=NOW)
    batch = [stored(mention("b")), stored(mention("a", likes=5)), stored(mention("b", likes=9))]
    result = archive.store(batch, fetched_at=NOW)
    assert [s.mention.source_id for s in result.inserted] == ["b"]
    assert result.updated == 2
    likes = {h.mention.source_id: h.mention.engagement.likes for h in archive.search(None)}
    assert likes == {"a": 5, "b": 9}


def test_same_source_id_from_two_sources_are_two_mentions(archive: Archive) -> None:
    archive.store([stored(mention("1")), stored(mention("1", source="reddit"))], fetched_at=NOW)
    assert archive.count_mentions() == 2
    assert archive.count_mentions(source="reddit") == 1


def test_known_ids_handles_more_ids_than_one_query_takes(archive: Archive) -> None:
    archive.store([stored(mention(str(i))) for i in range(0, 1200, 2)], fetched_at=NOW)
    asked = [str(i) for i in range(1200)]
    assert archive.known_ids("twitter", asked) == {str(i) for i in range(0, 1200, 2)}
    assert archive.known_ids("reddit", asked) == set()
    assert archive.known_ids("twitter", []) == set()


def test_multiple_brands_per_mention(archive: Archive) -> None:
    archive.store(
        [stored(mention("1"), ("united", "boeing", "united")), stored(mention("2"), ("boeing",))],
        fetched_at=NOW,
    )
    assert archive.count_mentions(brand="united") == 1
    assert archive.count_mentions(brand="boeing") == 2
    hits = {h.mention.source_id: h.brands for h in archive.search(None)}
    assert hits == {"1": ("boeing", "united"), "2": ("boeing",)}
    assert [h.mention.source_id for h in archive.search(None, brand="united")] == ["1"]


def test_unclassified_mention_is_stored_without_classification(archive: Archive) -> None:
    archive.store([StoredMention(mention("1"), ("united",), None, None, None)], fetched_at=NOW)
    [hit] = archive.search(None)
    assert hit.classification is None and hit.model_name is None
    assert archive.complaint_counts("united", T0, NOW, timedelta(hours=1), 0.0) == []


def test_times_come_back_as_the_same_instant_in_utc(archive: Archive) -> None:
    local = datetime(2009, 7, 7, 5, 12, tzinfo=timezone(timedelta(hours=2)))
    archive.store([stored(mention("1", created_at=local))], fetched_at=NOW)
    [hit] = archive.search(None)
    assert hit.mention.created_at == local
    assert hit.mention.created_at.utcoffset() == timedelta(0)
    assert archive.count_mentions(since=datetime(2009, 7, 7, 3, 12, tzinfo=UTC)) == 1
    assert archive.count_mentions(until=datetime(2009, 7, 7, 3, 12, tzinfo=UTC)) == 0


def test_concurrent_writers_store_each_mention_once(archive_url: str) -> None:
    with Archive(archive_url) as archive:

        def write(worker: int) -> StoreResult:
            batch = [stored(mention(str(i), likes=worker)) for i in range(200)]
            if worker % 2:
                batch.reverse()
            return archive.store(batch, source=f"w{worker}", cursor={"n": worker}, fetched_at=NOW)

        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(write, range(4)))
        assert sum(len(r.inserted) for r in results) == 200
        assert sum(r.updated for r in results) == 600
        assert archive.count_mentions() == 200
        assert archive.count_mentions(brand="united") == 200
        assert [archive.cursor(f"w{n}") for n in range(4)] == [{"n": n} for n in range(4)]


# -- cursors and atomicity ------------------------------------------------------------------


def test_cursor_is_saved_with_the_mentions(archive: Archive) -> None:
    assert archive.cursor("twitter") is None
    archive.store(
        [stored(mention("1"))], source="twitter", cursor={"since_id": "1"}, fetched_at=NOW
    )
    assert archive.cursor("twitter") == {"since_id": "1"}
    archive.store([], source="twitter", cursor={"since_id": "2", "etag": 'W/"x"'}, fetched_at=NOW)
    assert archive.cursor("twitter") == {"since_id": "2", "etag": 'W/"x"'}
    assert archive.cursor("reddit") is None


def test_constraint_violation_mid_store_stores_neither_mentions_nor_cursor(
    archive: Archive,
) -> None:
    archive.store(
        [stored(mention("old", likes=1))], source="twitter", cursor={"page": 1}, fetched_at=NOW
    )
    bad_brand = StoredMention(mention("2"), (None,), None, None, None)  # type: ignore[arg-type]
    batch = [stored(mention("1")), stored(mention("old", likes=99)), bad_brand]
    with pytest.raises(ArchiveError, match="nothing was stored"):
        archive.store(batch, source="twitter", cursor={"page": 2}, fetched_at=NOW)
    assert archive.count_mentions() == 1
    [old] = archive.search(None)
    assert old.mention.engagement.likes == 1
    assert archive.cursor("twitter") == {"page": 1}


def test_failure_after_the_mentions_rolls_them_back(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_cursor(connection: Connection, *args: object) -> None:
        connection.execute(text("SELECT 1"))
        raise RuntimeError("simulated crash before the cursor was written")

    monkeypatch.setattr(store_module, "save_cursor", broken_cursor)
    with pytest.raises(RuntimeError, match="simulated"):
        archive.store([stored(mention("1"))], source="twitter", cursor={"page": 2}, fetched_at=NOW)
    assert archive.count_mentions() == 0
    assert archive.known_ids("twitter", ["1"]) == set()


def test_cursor_that_is_not_json_is_refused_before_storing(archive: Archive) -> None:
    with pytest.raises(ArchiveError, match="not JSON-serialisable"):
        archive.store(
            [stored(mention("1"))], source="twitter", cursor={"x": object()}, fetched_at=NOW
        )
    assert archive.count_mentions() == 0


def test_raw_payload_with_odd_values_is_kept(archive: Archive) -> None:
    odd = replace(mention("1"), raw={"when": T0, "tags": {"a"}})
    archive.store([stored(odd)], fetched_at=NOW)
    [hit] = archive.search(None)
    assert hit.mention.raw == {"when": "2009-07-07T03:00:00+00:00", "tags": ["a"]}


# -- reading --------------------------------------------------------------------------------


def test_complaint_counts_per_epoch_aligned_bucket(archive: Archive) -> None:
    minutes = [
        0,
        5,
        14,
        15,
        44,
        61,
    ]  # buckets of 15 minutes: 03:00 x3, 03:15 x1, 03:30 x1, 04:00 x1
    batch = [stored(mention(f"c{m}", created_at=T0 + timedelta(minutes=m))) for m in minutes]
    batch.append(stored(mention("mild", created_at=T0), complaint=0.2))
    batch.append(stored(mention("other", created_at=T0), ("boeing",)))
    batch.append(stored(mention("late", created_at=T0 + timedelta(hours=5))))
    archive.store(batch, fetched_at=NOW)
    counts = archive.complaint_counts(
        "united", T0, T0 + timedelta(hours=2), timedelta(minutes=15), 0.5
    )
    assert counts == [
        (T0, 3),
        (T0 + timedelta(minutes=15), 1),
        (T0 + timedelta(minutes=30), 1),
        (T0 + timedelta(hours=1), 1),
    ]
    hourly = archive.complaint_counts(
        "united", T0, T0 + timedelta(hours=6), timedelta(hours=1), 0.1
    )
    assert hourly == [(T0, 6), (T0 + timedelta(hours=1), 1), (T0 + timedelta(hours=5), 1)]


def test_mentions_for_examples_are_the_most_shared_complaints(archive: Archive) -> None:
    archive.store(
        [
            stored(mention("quiet", likes=1)),
            stored(mention("viral", likes=500, reposts=200)),
            stored(mention("mid", likes=40)),
            stored(mention("mild", likes=9999), complaint=0.1),
            stored(mention("old", likes=9999, created_at=T0 - timedelta(days=2))),
            stored(mention("otherbrand", likes=9999), ("boeing",)),
        ],
        fetched_at=NOW,
    )
    examples = archive.mentions_for_examples("united", T0 - timedelta(hours=1), NOW, 0.5, limit=2)
    assert [e.mention.source_id for e in examples] == ["viral", "mid"]
    assert (
        examples[0].classification is not None
        and examples[0].classification.sentiment == "negative"
    )
    assert examples[0].mention.url == "https://example.com/viral"


def test_search_is_case_insensitive(archive: Archive) -> None:
    archive.store(
        [stored(mention("1", "UNITED Breaks Guitars")), stored(mention("2", "great flight"))],
        fetched_at=NOW,
    )
    assert [h.mention.source_id for h in archive.search("guitars")] == ["1"]
    assert [h.mention.source_id for h in archive.search("breaks UNITED")] == ["1"]
    assert archive.search("guitars flight") == []
    assert [h.mention.source_id for h in archive.search("sonsofmaxwell", limit=1)] in (["1"], ["2"])


def test_search_removes_diacritics(archive: Archive) -> None:
    if not archive.is_sqlite:
        pytest.skip(
            "accent-insensitive search comes with PostgreSQL's tsvector index (later issue)"
        )
    archive.store(
        [stored(mention("1", "Le café était épouvantable")), stored(mention("2", "Uber ist toll"))],
        fetched_at=NOW,
    )
    assert [h.mention.source_id for h in archive.search("cafe")] == ["1"]
    assert [h.mention.source_id for h in archive.search("EPOUVANTABLE")] == ["1"]
    assert [h.mention.source_id for h in archive.search("über")] == ["2"]


def test_search_filters_and_order(archive: Archive) -> None:
    archive.store(
        [
            stored(mention("1", "guitar one", created_at=T0)),
            stored(mention("2", "guitar two", created_at=T0 + timedelta(hours=1), source="reddit")),
            stored(mention("3", "guitar three", created_at=T0 + timedelta(hours=2)), ("boeing",)),
        ],
        fetched_at=NOW,
    )
    assert [h.mention.source_id for h in archive.search("guitar")] == ["3", "2", "1"]
    assert [h.mention.source_id for h in archive.search("guitar", limit=1)] == ["3"]
    assert [h.mention.source_id for h in archive.search("guitar", source="reddit")] == ["2"]
    assert [h.mention.source_id for h in archive.search("guitar", brand="united")] == ["2", "1"]
    window = archive.search(
        "guitar", since=T0 + timedelta(minutes=30), until=T0 + timedelta(hours=2)
    )
    assert [h.mention.source_id for h in window] == ["2"]


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_search_input_neither_breaks_nor_injects(archive: Archive, query: str) -> None:
    archive.store(
        [stored(mention("1", 'my guitar "NEAR( OR mentions --')), stored(mention("2", "fine"))],
        fetched_at=NOW,
    )
    hits = archive.search(query)
    assert {h.mention.source_id for h in hits} <= {"1"}
    assert archive.count_mentions() == 2
    hits = archive.search(f"guitar {query}")
    assert {h.mention.source_id for h in hits} <= {"1"}


def test_quoted_words_are_found_literally(archive: Archive) -> None:
    archive.store(
        [stored(mention("1", "NEAR the gate, they broke it")), stored(mention("2", "fine"))],
        fetched_at=NOW,
    )
    assert [h.mention.source_id for h in archive.search("NEAR(")] == ["1"]
    assert [h.mention.source_id for h in archive.search('"gate,')] == ["1"]


# -- SQLite specifics -----------------------------------------------------------------------


def test_sqlite_pragmas(sqlite_url: str) -> None:
    with Archive(sqlite_url) as archive, archive.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one() > 0


def test_parent_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "uproar.db"
    Archive(f"sqlite:///{path}").close()
    assert path.exists()


def test_fts_index_follows_updates_and_deletes(sqlite_url: str) -> None:
    with Archive(sqlite_url) as archive:
        archive.store(
            [stored(mention("1", "guitar")), stored(mention("2", "bagpipe"))], fetched_at=NOW
        )
        archive.store([stored(mention("1", "ignored", likes=3))], fetched_at=NOW)  # engagement only
        with archive.write() as connection:
            connection.execute(text("UPDATE mentions SET text = 'violin' WHERE source_id = '1'"))
            connection.execute(text("DELETE FROM mentions WHERE source_id = '2'"))
            connection.execute(
                text("INSERT INTO mentions_fts(mentions_fts) VALUES ('integrity-check')")
            )
        assert archive.search("guitar") == []
        assert archive.search("bagpipe") == []
        assert [h.mention.source_id for h in archive.search("violin")] == ["1"]
        with archive.engine.connect() as connection:
            orphans = connection.execute(text("SELECT count(*) FROM mention_brands")).scalar()
        assert orphans == 1  # the deleted mention's brand row went with it (foreign keys on)


def test_stdlib_sqlite3_reads_the_file_and_its_fts_index(sqlite_url: str) -> None:
    with Archive(sqlite_url) as archive:
        archive.store([stored(mention("1", "Le café a cassé ma guitare"))], fetched_at=NOW)
    path = make_url(sqlite_url).database
    assert path is not None
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(
            "SELECT m.source_id, m.text FROM mentions m WHERE m.id IN "
            "(SELECT rowid FROM mentions_fts WHERE mentions_fts MATCH ?)",
            ("cafe",),
        ).fetchall()
        assert rows == [("1", "Le café a cassé ma guitare")]
        # A plain sqlite3 writer (an analyst's script) keeps the index in step through the triggers.
        connection.execute(
            "INSERT INTO mentions (source, source_id, url, text, author_handle, author_name, "
            "created_at, fetched_at, likes, reposts, replies, score) VALUES "
            "('rss', 'x', '', 'guitare', '', '', '2009-07-07 03:00:00.000000', "
            "'2009-07-07 03:00:00.000000', 0, 0, 0, 0)"
        )
        connection.commit()
        count = connection.execute(
            "SELECT count(*) FROM mentions_fts WHERE mentions_fts MATCH 'guitare'"
        )
        assert count.fetchone() == (2,)
        # Datasette's own test for "this table has a full-text index".
        detected = connection.execute(
            "SELECT name FROM sqlite_master WHERE rootpage = 0 AND sql LIKE "
            "'%VIRTUAL TABLE%USING FTS%content=\"mentions\"%'"
        ).fetchall()
        assert detected == [("mentions_fts",)]
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        connection.close()


# -- schema versions and migrations (more in test_migrations.py) ---------------------------


def _version(archive: Archive) -> int:
    with archive.engine.connect() as connection:
        return migrate.stored_revision(connection).version


def test_fresh_archive_records_its_schema_version(archive: Archive) -> None:
    assert _version(archive) == SCHEMA_VERSION == archive.schema_version
    assert archive.revision == migrate.HEAD
    assert archive.previous_version == 0
    tables = set(inspect(archive.engine).get_table_names())
    assert {"mentions", "mention_brands", "cursors", "incidents", "signals", "outbox"} <= tables


def test_reopening_keeps_the_data(archive_url: str) -> None:
    with Archive(archive_url) as archive:
        archive.store([stored(mention("1"))], fetched_at=NOW)
    with Archive.open(archive_url) as archive:
        assert archive.previous_version == SCHEMA_VERSION
        assert not archive.migration.changed
        assert archive.count_mentions() == 1


def test_newer_archive_is_refused(archive_url: str) -> None:
    newer = migrate.revision_id(SCHEMA_VERSION + 1)
    with Archive(archive_url) as archive, archive.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": newer})
    display = make_url(archive_url).render_as_string(hide_password=True)
    expected = (
        f"archive at {display} is schema revision {newer}, "
        f"this Uproar knows up to {migrate.HEAD}: upgrade Uproar"
    )
    with pytest.raises(ArchiveError) as caught:
        Archive(archive_url)
    assert str(caught.value) == expected


def _has_fts_gin_index(connection: Connection) -> bool:
    return bool(
        connection.execute(
            text(
                "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() "
                "AND tablename = 'mentions' AND indexname = 'ix_mentions_fts'"
            )
        ).scalar()
    )


def test_fresh_archive_has_the_full_text_index(archive: Archive) -> None:
    if archive.is_sqlite:
        assert "mentions_fts" in inspect(archive.engine).get_table_names()
    else:
        with archive.engine.connect() as connection:
            assert _has_fts_gin_index(connection)


def test_v1_archive_is_migrated_to_current(archive_url: str) -> None:
    engine = build_engine(archive_url)
    try:
        migrate.upgrade(engine, archive_url, "0001")
        with engine.begin() as connection:  # 0001's tables: what store() wrote then
            connection.execute(mentions.insert().values(
                id=1, source="twitter", source_id="1", url="", text="United broke my guitar",
                author_handle="dave", author_name="", created_at=T0, fetched_at=NOW,
                likes=0, reposts=0, replies=0, score=0, complaint=0.9,
            ))
            connection.execute(mention_brands.insert().values(
                mention_id=1, brand="united", created_at=T0, complaint=0.9
            ))
        if engine.dialect.name == "postgresql":
            with engine.connect() as connection:
                assert not _has_fts_gin_index(connection)
    finally:
        engine.dispose()
    with Archive(archive_url) as archive:
        assert archive.previous_version == 1
        assert _version(archive) == SCHEMA_VERSION
        if not archive.is_sqlite:
            with archive.engine.connect() as connection:
                assert _has_fts_gin_index(connection)
        assert [hit.mention.source_id for hit in archive.search("guitar")] == ["1"]
        indexes = {i["name"] for i in inspect(archive.engine).get_indexes("mention_brands")}
        assert "ix_mention_brands_brand_time_complaint" in indexes
        assert "ix_mention_brands_brand_time" not in indexes
    with Archive(archive_url) as archive:  # and opening it again changes nothing
        assert archive.previous_version == SCHEMA_VERSION


def test_analyst_text_search_uses_the_gin_index(archive: Archive) -> None:
    """The index expression must be the analyst query's, or PostgreSQL never uses it."""
    if archive.is_sqlite:
        pytest.skip("SQLite searches its FTS5 table")
    from monitor.analyst import MentionFilter
    from monitor.analyst.queries import select_mentions

    archive.store([stored(mention(str(i), f"word{i} guitar")) for i in range(50)], fetched_at=NOW)
    with archive.engine.connect() as connection:
        connection.execute(text("ANALYZE mentions"))
        connection.execute(text("SET LOCAL enable_seqscan = off"))
        query = select_mentions(connection, MentionFilter(text="word7", limit=50))
        compiled = query.compile(connection, compile_kwargs={"literal_binds": True})
        plan = "\n".join(row[0] for row in connection.exec_driver_sql(f"EXPLAIN {compiled}"))
    assert "ix_mentions_fts" in plan, plan


# -- opening errors -------------------------------------------------------------------------


def test_url_that_is_not_a_url(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="is not a database URL"):
        Archive("uproar.db")


def test_unsupported_backend_is_named() -> None:
    with pytest.raises(ArchiveError, match=r"'mysql'.*supports sqlite"):
        Archive("mysql://root:hunter2@127.0.0.1/uproar")


def test_unreachable_server_is_one_line_without_the_password() -> None:
    url = "postgresql+psycopg://uproar:hunter2@127.0.0.1:1/uproar?connect_timeout=2"
    with pytest.raises(ArchiveError) as caught:
        Archive(url)
    message = str(caught.value)
    assert "hunter2" not in message and "\n" not in message
    assert message.startswith(
        "cannot open archive at postgresql+psycopg://uproar:***@127.0.0.1:1/uproar"
    )
    assert "check archive.url" in message


def test_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not SQLite\n" * 100)
    with pytest.raises(
        ArchiveError, match=r"cannot open archive at sqlite:///.*notes\.txt: .*not a database"
    ):
        Archive(f"sqlite:///{path}")


def test_foreign_database_with_a_mentions_table_is_refused(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE mentions (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    with pytest.raises(ArchiveError, match="not an Uproar archive"):
        Archive(sqlite_url)


def test_brand_rows_carry_time_and_complaint(archive: Archive) -> None:
    archive.store([stored(mention("1"), complaint=0.75)], fetched_at=NOW)
    with archive.engine.connect() as connection:
        row = connection.execute(mention_brands.select()).one()
    assert row.brand == "united" and row.complaint == pytest.approx(0.75)


def test_newest_first_page_probe_plan_finds_the_same_mentions(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plans picked by word frequency (SQLite: FTS5 probe per row; PostgreSQL: GIN then sort)
    must return what the default plans return."""
    from monitor.analyst import MentionFilter, newest
    from monitor.analyst import queries as analyst_queries

    batch = [
        stored(
            mention(
                str(i),
                f"guitar {'broke' if i % 3 else 'fine'} number{i}",
                created_at=T0 + timedelta(minutes=(i * 7) % 60),
            ),
            brands=("united",) if i % 2 else ("delta",),
        )
        for i in range(60)
    ]
    archive.store(batch, fetched_at=NOW)
    filters = [
        MentionFilter(text="broke", brand="united", limit=5),
        MentionFilter(text="guitar", since=T0 + timedelta(minutes=20), limit=50),
        MentionFilter(text="GUITAR fine", limit=3),
        MentionFilter(text="nowhere", limit=3),
    ]

    def run() -> list[list[str]]:
        with archive.engine.connect() as connection:
            return [
                [hit.mention.source_id for hit in analyst_queries.fetch_mentions(connection, f)]
                for f in filters
            ]

    if not archive.is_sqlite:
        with archive.engine.begin() as connection:
            connection.execute(text("ANALYZE mentions"))
    expected = run()
    assert expected[0] and expected[1] and expected[2] and not expected[3]
    monkeypatch.setattr(analyst_queries, "_PROBE_CUTOFF", 0.0)  # SQLite: probe every word
    monkeypatch.setattr(newest, "PG_RARE_CUTOFF", float("inf"))  # PostgreSQL: GIN every word
    if not archive.is_sqlite:
        with archive.engine.connect() as connection:
            estimate = newest.pg_estimate(connection, "guitar")
            assert estimate is not None and estimate.plan == "all"
    assert run() == expected
    # PostgreSQL: the time floor for every word (SQLite's id floor has its own test, in
    # tests/archive/test_views.py, as has this one on data whose ids and times disagree).
    monkeypatch.setattr(newest, "PG_RARE_CUTOFF", 0.0)
    monkeypatch.setattr(newest, "PG_WALK_CUTOFF", float("inf"))
    if not archive.is_sqlite:
        with archive.engine.connect() as connection:
            estimate = newest.pg_estimate(connection, "guitar")
            assert estimate is not None and estimate.plan == "floor"
    assert run() == expected
