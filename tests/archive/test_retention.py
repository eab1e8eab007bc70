"""Retention and maintenance (`uproar maintain`) on SQLite and PostgreSQL, on a simulated clock."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from connectors.base import Author, Mention
from models.base import Classification
from monitor.analyst.filters import MentionFilter
from monitor.analyst.queries import fetch_mentions
from monitor.analyst.stats import volume
from monitor.archive import Archive, StoredMention, retention
from monitor.archive.retention import RetentionPolicy, maintain
from monitor.archive.schema import mention_brands, mentions
from monitor.cli import cli
from monitor.clock import SimulatedClock
from monitor.config import config_from_dict

POSTGRES_ENV = "UPROAR_TEST_POSTGRES_URL"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
AGES_DAYS = (10, 100, 400)  # one group of mentions at each age
PER_AGE = 12


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'uproar.db'}"
        return
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL retention tests need {POSTGRES_ENV}=postgresql+psycopg://…")
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


def _data(extra_text: str = "") -> list[StoredMention]:
    data = []
    for age in AGES_DAYS:
        for i in range(PER_AGE):
            mention = Mention(
                source="twitter",
                source_id=f"{age}-{i}",
                url=f"https://example.com/{age}/{i}",
                text=f"united lost my bag age{age} {extra_text}",
                created_at=NOW - timedelta(days=age, minutes=i),
                author=Author("someone", "Someone"),
                raw={"payload": "x" * 50, "age": age},
            )
            complaint = Classification("negative", {"negative": 0.9}, complaint=0.9)
            data.append(StoredMention(mention, ("united",), complaint, "m", "1"))
    return data


@pytest.fixture
def archive(database_url: str) -> Iterator[Archive]:
    with Archive(database_url) as opened:
        opened.store(_data(), fetched_at=NOW - timedelta(days=500))
        yield opened


def raw_by_age(archive: Archive) -> dict[int, int]:
    """How many mentions of each age still have their raw payload."""
    with archive.engine.connect() as connection:
        rows = connection.execute(select(mentions.c.source_id, mentions.c.raw)).all()
    out = dict.fromkeys(AGES_DAYS, 0)
    for source_id, raw in rows:
        if raw:
            out[int(source_id.split("-")[0])] += 1
    return out


def test_raw_payloads_past_retention_are_cleared_mentions_kept(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "BATCH", 5)  # several batches
    report = maintain(archive, RetentionPolicy(raw_payloads=timedelta(days=90)), NOW)
    assert report.raw_cleared == 2 * PER_AGE
    assert report.mentions_deleted == 0
    assert raw_by_age(archive) == {10: PER_AGE, 100: 0, 400: 0}
    assert archive.count_mentions() == 3 * PER_AGE
    # The cleared mention still reads back, with an empty payload.
    with archive.engine.connect() as connection:
        found = fetch_mentions(connection, MentionFilter(text="age100", limit=50))
    assert len(found) == PER_AGE and all(m.mention.raw == {} for m in found)
    again = maintain(archive, RetentionPolicy(raw_payloads=timedelta(days=90)), NOW)
    assert again.raw_cleared == 0


def test_zero_keeps_everything_forever(archive: Archive) -> None:
    report = maintain(archive, RetentionPolicy(raw_payloads=timedelta(0)), NOW)
    assert (report.raw_cleared, report.mentions_deleted) == (0, 0)
    assert raw_by_age(archive) == dict.fromkeys(AGES_DAYS, PER_AGE)


def test_old_mentions_are_deleted_but_volume_is_kept(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "BATCH", 5)
    window = MentionFilter(brand="united", since=NOW - timedelta(days=500), until=NOW)
    with archive.engine.connect() as connection:
        before = sum(row.mentions for row in volume(connection, window, "day", 0.5))
    policy = RetentionPolicy(raw_payloads=timedelta(days=90), mentions=timedelta(days=365))
    report = maintain(archive, policy, NOW + timedelta(seconds=1))
    assert report.mentions_deleted == PER_AGE
    assert report.raw_cleared == PER_AGE  # the 100-day-old ones; the 400-day-old are gone
    assert archive.count_mentions() == 2 * PER_AGE
    with archive.engine.connect() as connection:
        assert fetch_mentions(connection, MentionFilter(text="age400", limit=50)) == []
        orphans = connection.execute(select(func.count()).select_from(mention_brands)).scalar()
        assert orphans == 2 * PER_AGE
        after = sum(row.mentions for row in volume(connection, window, "day", 0.5))
        daily = connection.execute(
            text("SELECT sum(mentions), sum(complaints) FROM daily_complaint_volume")
        ).one()
    assert before == after == 3 * PER_AGE  # the rollup still counts the deleted mentions
    assert tuple(int(v) for v in daily) == (3 * PER_AGE, 3 * PER_AGE)


def test_sqlite_returns_freed_pages_to_the_file_system(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    with Archive(f"sqlite:///{path}") as archive:
        archive.store(_data("lorem ipsum " * 400), fetched_at=NOW)
        with archive.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").all()
        pages_before = _pages(archive)
        policy = RetentionPolicy(raw_payloads=timedelta(0), mentions=timedelta(days=30))
        report = maintain(archive, policy, NOW)
        assert report.mentions_deleted == 2 * PER_AGE
        assert report.pages_freed > 0
        assert "incremental vacuum" in report.steps and "PRAGMA optimize" in report.steps
        assert _pages(archive) < pages_before
        with archive.engine.connect() as connection:
            check = connection.exec_driver_sql(
                "INSERT INTO mentions_fts(mentions_fts) VALUES ('integrity-check')"
            )
            check.close()


def _pages(archive: Archive) -> int:
    with archive.engine.connect() as connection:
        return int(connection.exec_driver_sql("PRAGMA page_count").scalar() or 0)


def test_old_sqlite_file_is_told_how_to_enable_incremental_vacuum(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    import sqlite3

    old = sqlite3.connect(path)
    old.executescript("PRAGMA auto_vacuum = NONE; CREATE TABLE t (x); DROP TABLE t;")
    old.close()
    with Archive(f"sqlite:///{path}") as archive:  # created before incremental vacuum
        archive.store(_data(), fetched_at=NOW)
        report = maintain(archive, RetentionPolicy(mentions=timedelta(days=30)), NOW)
        assert any("uproar maintain --vacuum" in step for step in report.steps)
        report = maintain(archive, RetentionPolicy(), NOW, full_vacuum=True)
        assert report.steps[0].startswith("VACUUM")
        with archive.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA auto_vacuum").scalar() == 2


def test_postgresql_is_analyzed(archive: Archive) -> None:
    if archive.is_sqlite:
        pytest.skip("PostgreSQL only")
    report = maintain(archive, RetentionPolicy(raw_payloads=timedelta(days=90)), NOW)
    assert report.steps[-1] == "VACUUM ANALYZE mentions, mention_brands, volume_hourly"
    with archive.engine.connect() as connection:
        analyzed = connection.execute(
            text(
                "SELECT count(*) FROM pg_stats WHERE schemaname = current_schema() "
                "AND tablename = 'mentions'"
            )
        ).scalar()
    assert analyzed and analyzed > 0  # planner statistics exist


def test_maintain_command_uses_the_config_retention(database_url: str, tmp_path: Path) -> None:
    with Archive(database_url) as archive:
        archive.store(_data(), fetched_at=NOW)
    config = tmp_path / "config.yaml"
    config.write_text(
        "brands: [{key: united, name: United, query: united, handles: ['@United']}]\n"
        f"archive: {{url: '{database_url}', retention: {{raw_payloads: 30d, mentions: 200d}}}}\n"
    )
    result = CliRunner().invoke(cli, ["maintain", "-c", str(config)], obj=SimulatedClock(NOW))
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith(f"cleared {PER_AGE} raw payloads, deleted {PER_AGE} mentions")
    assert "1 brand accounts from the config" in result.output


def test_retention_config_accepts_zero_and_durations() -> None:
    base = {"brands": [{"key": "a", "name": "A", "query": "a"}]}
    config = config_from_dict({**base, "archive": {"retention": {"mentions": 0,
                                                                 "raw_payloads": "90d"}}})
    assert config.archive.retention.mentions == timedelta(0)
    assert config.archive.retention.raw_payloads == timedelta(days=90)
    forever = config_from_dict({**base, "archive": {"retention": {"raw_payloads": "forever"}}})
    assert forever.archive.retention.raw_payloads == timedelta(0)
    defaults = config_from_dict(base).archive.retention
    assert (defaults.raw_payloads, defaults.mentions) == (timedelta(days=90), timedelta(0))
    with pytest.raises(ValueError):
        RetentionPolicy(mentions=timedelta(days=-1))
