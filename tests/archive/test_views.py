"""Open SQL: the views, the hourly rollup and docs/SCHEMA.md, on SQLite and PostgreSQL.

The SQLite file is also opened the way an analyst would: with Python's sqlite3 module
read-only, and with the `sqlite3` shell when installed, running every example in SCHEMA.md.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from connectors.base import Author, Mention
from models.base import Classification
from monitor.analyst.filters import MentionFilter
from monitor.analyst.stats import volume
from monitor.archive import Archive, StoredMention
from monitor.archive.retention import sync_brand_accounts
from monitor.archive.schema import incidents, metadata
from monitor.archive.views import VIEW_NAMES
from tests.paths import ROOT
from tests.sourcekit import archive_url  # noqa: F401  (fixture: SQLite, and PostgreSQL when set)

ROOT = ROOT
SCHEMA_DOC = ROOT / "docs" / "SCHEMA.md"
POSTGRES_ENV = "UPROAR_TEST_POSTGRES_URL"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
# Complaint probabilities around the rollup's bin edges (0.05 steps), None = unclassified.
COMPLAINTS = (None, 0.0, 0.049999, 0.05, 0.25, 0.3, 0.4999999, 0.5, 0.5000001, 0.73, 0.95, 1.0)


def _data() -> list[StoredMention]:
    data = []
    for i in range(150):
        complaint = COMPLAINTS[i % len(COMPLAINTS)]
        classification = (
            None if complaint is None
            else Classification("negative", {"negative": 0.9}, complaint=complaint)
        )
        brands = ("united",) if i % 3 else ("united", "larkspur")
        mention = Mention(
            source="twitter",
            source_id=f"m{i}",
            url=f"https://example.com/{i}",
            text=("united broke my guitar" if i % 4 == 0 else "lost luggage refund") + f" n{i}",
            created_at=T0 + timedelta(minutes=37 * i),
            author=Author(f"user{i % 5}", "User"),
        )
        data.append(StoredMention(mention, brands, classification, "m", "1"))
    # The brand's own account replies once before and twice after the incident opens.
    for j, minutes in enumerate((-30, 45, 90)):
        mention = Mention(
            source="twitter", source_id=f"reply{j}", url="https://example.com/r",
            text="@customer we are sorry, DM us", author=Author("@United", "United Airlines"),
            created_at=T0 + timedelta(days=1, minutes=minutes), parent_id="m1",
        )
        data.append(StoredMention(mention, ("united",)))
    return data


DATA = _data()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('views') / 'uproar.db'}"
        return
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL view tests need {POSTGRES_ENV}=postgresql+psycopg://…")
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


@pytest.fixture(scope="module")
def archive(database_url: str) -> Iterator[Archive]:
    with Archive(database_url) as opened:
        opened.store(DATA, fetched_at=T0 + timedelta(days=10))
        opened_at = T0 + timedelta(days=1)
        with opened.write() as connection:
            connection.execute(incidents.insert(), [
                {"brand": "united", "status": "acknowledged", "severity": "high",
                 "title": "Guitars", "opened_at": opened_at, "updated_at": opened_at,
                 "last_signal_at": opened_at, "peak_count": 9,
                 "acknowledged_by": "U1", "acknowledged_at": opened_at + timedelta(minutes=20)},
                {"brand": "larkspur", "status": "open", "severity": "low", "title": "Cellos",
                 "opened_at": opened_at, "updated_at": opened_at,
                 "last_signal_at": opened_at, "peak_count": 3, "acknowledged_by": None,
                 "acknowledged_at": None},
            ])
        sync_brand_accounts(opened, {"united": ["@United", " "], "larkspur": []})
        yield opened


def _python_daily() -> dict[tuple[str, str], tuple[int, int]]:
    counts: Counter[tuple[str, str]] = Counter()
    complaints: Counter[tuple[str, str]] = Counter()
    for item in DATA:
        for brand in item.brands:
            key = (brand, item.mention.created_at.strftime("%Y-%m-%d"))
            counts[key] += 1
            c = item.classification
            complaints[key] += c is not None and c.complaint >= 0.5
    return {key: (counts[key], complaints[key]) for key in counts}


def test_daily_complaint_volume_view(archive: Archive) -> None:
    with archive.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT brand, day, mentions, complaints FROM daily_complaint_volume")
        ).all()
    got = {(r.brand, str(r.day)): (int(r.mentions), int(r.complaints)) for r in rows}
    assert got == _python_daily()


def test_incident_response_times_view(archive: Archive) -> None:
    with archive.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT * FROM incident_response_times ORDER BY incident_id")
        ).all()
    united, larkspur = (row._mapping for row in rows)
    assert united["brand"] == "united" and united["acknowledged_by"] == "U1"
    assert float(united["seconds_to_acknowledge"]) == 20 * 60
    # The reply 30 minutes before the incident opened does not count; the one 45 after does.
    assert float(united["seconds_to_first_public_response"]) == 45 * 60
    assert larkspur["seconds_to_acknowledge"] is None
    assert larkspur["first_public_response_at"] is None  # no handle configured
    assert larkspur["seconds_to_resolve"] is None


def _python_volume(f: MentionFilter, by: str, threshold: float) -> dict[tuple[str, str], tuple]:  # type: ignore[type-arg]
    out: dict[tuple[str, str], list[int]] = {}
    for item in DATA:
        at, c = item.mention.created_at, item.classification
        if (f.since and at < f.since) or (f.until and at >= f.until):
            continue
        if f.min_complaint is not None and (c is None or c.complaint < f.min_complaint):
            continue
        bucket = at.replace(minute=0, second=0) if by == "hour" else at.replace(hour=0, minute=0)
        for brand in item.brands:
            if f.brand and brand != f.brand:
                continue
            counts = out.setdefault((brand, bucket.strftime("%Y-%m-%d %H")), [0, 0])
            counts[0] += 1
            counts[1] += c is not None and c.complaint >= threshold
    return {key: tuple(v) for key, v in out.items()}


@pytest.mark.parametrize(
    ("since", "until", "min_complaint", "threshold", "by"),
    [
        (None, None, None, 0.5, "hour"),
        (T0 + timedelta(hours=3, minutes=17), T0 + timedelta(days=2, minutes=5), None, 0.5, "hour"),
        (T0 + timedelta(minutes=59), T0 + timedelta(days=3), 0.3, 0.25, "day"),
        (T0 + timedelta(hours=5), T0 + timedelta(hours=40), 0.5, 0.95, "hour"),
        (None, T0 + timedelta(days=1, minutes=1), 0.0, 0.0, "day"),
        (T0 + timedelta(days=1, minutes=10), T0 + timedelta(days=1, minutes=50), None, 0.5, "hour"),
        (T0, T0 + timedelta(days=4), None, 0.37, "hour"),  # off the grid: raw rows
    ],
)
def test_volume_from_the_rollup_is_exact(
    archive: Archive, since, until, min_complaint, threshold, by  # type: ignore[no-untyped-def]
) -> None:
    for brand in (None, "larkspur"):
        f = MentionFilter(brand=brand, since=since, until=until, min_complaint=min_complaint)
        with archive.engine.connect() as connection:
            rows = volume(connection, f, by, threshold)
        got = {
            (r.brand, r.bucket.strftime("%Y-%m-%d %H")): (r.mentions, r.complaints)
            for r in rows if r.mentions
        }
        assert got == _python_volume(f, by, threshold)


def test_migration_to_v5_rebuilds_the_rollup(database_url: str, archive: Archive) -> None:
    """An archive at v4 (no rollup, no views) gets both, counted from its mentions."""
    with archive.engine.connect() as connection:
        before = connection.execute(text("SELECT * FROM daily_complaint_volume")).all()
    with archive.write() as connection:
        for name in VIEW_NAMES:
            connection.exec_driver_sql(f"DROP VIEW {name}")
        connection.exec_driver_sql("DROP TABLE volume_hourly")
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0004'")
    with Archive(database_url) as reopened:
        assert reopened.previous_version == 4
        with reopened.engine.connect() as connection:
            after = connection.execute(text("SELECT * FROM daily_complaint_volume")).all()
    assert sorted(map(tuple, after)) == sorted(map(tuple, before))


# -- the SQLite file as analysts open it -------------------------------------------------------


def sql_examples() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", SCHEMA_DOC.read_text(encoding="utf-8"), re.S)


def sqlite_path(archive: Archive) -> Path:
    if not archive.is_sqlite:
        pytest.skip("the SQLite file only")
    database = archive.engine.url.database
    assert database
    return Path(database)


def test_sqlite3_module_opens_the_file_read_only_with_views_and_fts(archive: Archive) -> None:
    path = sqlite_path(archive)
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        hits = connection.execute(
            "SELECT m.source_id FROM mentions_fts JOIN mentions m ON m.id = mentions_fts.rowid "
            "WHERE mentions_fts MATCH 'text : (GUITAR broke)' ORDER BY m.id"
        ).fetchall()
        assert sorted(h[0] for h in hits) == sorted(f"m{i}" for i in range(0, 150, 4))
        for name in VIEW_NAMES:
            assert connection.execute(f"SELECT count(*) FROM {name}").fetchone()[0] > 0
        examples = sql_examples()
        assert len(examples) >= 6
        for sql in examples:
            connection.execute(sql).fetchall()  # every documented example runs as written
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            connection.execute("DELETE FROM mentions")
    finally:
        connection.close()


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="the sqlite3 shell is not installed")
def test_sqlite3_shell_runs_the_documented_queries(archive: Archive) -> None:
    path = sqlite_path(archive)
    fts = subprocess.run(
        ["sqlite3", "-readonly", str(path),
         "SELECT count(*) FROM mentions_fts WHERE mentions_fts MATCH 'luggage refund';"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert fts.stdout.strip() == str(sum("luggage" in s.mention.text for s in DATA))
    for sql in sql_examples():
        run = subprocess.run(["sqlite3", "-readonly", str(path)], input=sql,
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0 and not run.stderr, (sql, run.stderr)


def test_schema_doc_covers_every_table_column_and_view() -> None:
    doc = SCHEMA_DOC.read_text(encoding="utf-8")
    sections = re.split(r"^### ", doc, flags=re.M)
    missing = []
    for table in metadata.sorted_tables:
        section = next((s for s in sections if re.match(rf"[^\n]*`{table.name}`", s)), None)
        if section is None:
            missing.append(f"table {table.name}")
            continue
        documented = set(re.findall(r"`([a-z_0-9]+)`", section))
        missing += [f"{table.name}.{c.name}" for c in table.columns if c.name not in documented]
    missing += [f"view {name}" for name in VIEW_NAMES if f"### `{name}`" not in doc]
    assert not missing, f"document these in docs/SCHEMA.md: {', '.join(missing)}"


# -- newest page of a text search on a big archive (monitor/analyst/newest.py) -----------------


def _minutes(i: int, layout: str) -> int:
    if layout == "shuffled":
        return (i * 7919) % 400  # a permutation: ids and times in different orders
    # Ids in time order but for late polls: every 9th mention is archived 40 mentions late.
    return 2 * (i - 40) + 1 if i >= 40 and i % 9 == 0 else 2 * i


@pytest.mark.parametrize("layout", ["shuffled", "late polls"])
def test_newest_page_from_an_id_floor_is_exact(
    archive_url: str, layout: str, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """Ids out of time order (late polls) must not change the page: compare with plain Python.

    SQLite: the id floor; PostgreSQL: the time floor sized by ids (forced for every word, with
    a small first span and several widenings)."""
    from monitor.analyst import newest
    from monitor.analyst.queries import fetch_mentions

    words = ("refund", "refund guitar", "refund luggage", "guitar")
    items = []
    for i in range(400):
        minutes = _minutes(i, layout)
        text_ = " ".join(w for k, w in enumerate(("refund", "guitar", "luggage")) if i % (k + 2))
        mention = Mention(source="rss", source_id=f"{i:04d}", url="https://e.x", text=text_,
                          created_at=T0 + timedelta(minutes=minutes))
        items.append(StoredMention(mention, ("united",) if i % 3 else ("larkspur",)))
    monkeypatch.setattr(newest, "MIN_MATCHES", 0)  # SQLite: the floor plan for every word
    monkeypatch.setattr(newest, "PG_RARE_CUTOFF", 0.0)  # PostgreSQL: likewise
    monkeypatch.setattr(newest, "PG_WALK_CUTOFF", float("inf"))
    monkeypatch.setattr(newest, "FIRST_SPAN", 8)  # and several widenings
    monkeypatch.setattr(newest, "WIDEN", 2)
    monkeypatch.setattr(newest, "SPAN_MARGIN", 0.05)
    with Archive(archive_url) as archive:
        for start in range(0, 400, 50):
            archive.store(items[start:start + 50], fetched_at=T0)
        if not archive.is_sqlite:  # the plan is picked from ANALYZE's statistics
            with archive.engine.begin() as connection:
                connection.execute(text("ANALYZE mentions"))
        for word in words:
            for brand in (None, "larkspur"):
                for since, until in ((None, None), (None, T0 + timedelta(minutes=250)),
                                     (T0 + timedelta(minutes=120), T0 + timedelta(minutes=250))):
                    f = MentionFilter(text=word, brand=brand, since=since, until=until, limit=7)
                    with archive.engine.connect() as connection:
                        if archive.is_sqlite:
                            assert newest.id_floor(connection, f, [], 7) is not None
                        else:
                            estimate = newest.pg_estimate(connection, word)
                            assert estimate is not None and estimate.plan == "floor"
                        got = [m.mention.source_id for m in fetch_mentions(connection, f)]
                    expected = sorted(
                        (s for s in items
                         if all(w in s.mention.text.split() for w in word.split())
                         and (brand is None or brand in s.brands)
                         and (since is None or s.mention.created_at >= since)
                         and (until is None or s.mention.created_at < until)),
                        key=lambda s: s.mention.created_at, reverse=True,
                    )[:7]
                    assert got == [s.mention.source_id for s in expected], (word, brand, until)
