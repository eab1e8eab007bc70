"""Schema migrations (Alembic) on SQLite and on PostgreSQL (UPROAR_TEST_POSTGRES_URL).

Archives at an older revision are made the way a user's would have been: by upgrading a new
database only that far. Pre-Alembic archives are simulated by swapping ``alembic_version`` for
the old migrator's one-row ``schema_info`` table.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Table,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import make_url

from monitor.archive import Archive, migrate
from monitor.archive.engine import build_engine
from monitor.archive.schema import SCHEMA_VERSION, mention_brands, mentions, metadata
from monitor.cli import cli
from monitor.errors import ArchiveError
from tests.paths import ROOT
from tests.sourcekit import archive_url  # noqa: F401  (fixture)

T0 = datetime(2009, 7, 7, 3, 0, tzinfo=UTC)
OLDER = [migrate.revision_id(v) for v in range(1, SCHEMA_VERSION)]

# The pre-Alembic migrator's bookkeeping table, as it created it.
legacy_schema_info = Table(
    "schema_info",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("migrated_at", DateTime(timezone=True), nullable=False),
)


@pytest.fixture
def engine(archive_url: str) -> Iterator[Engine]:  # noqa: F811
    built = build_engine(archive_url)
    yield built
    built.dispose()


def display(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def add_mentions(engine: Engine, count: int = 3) -> None:
    """Rows in 0001's tables, as store() wrote them (mentions + mention_brands)."""
    with engine.begin() as connection:
        for i in range(1, count + 1):
            connection.execute(mentions.insert().values(
                id=i, source="twitter", source_id=str(i), url="", author_handle="dave",
                text=f"United broke my guitar, take {i}", author_name="", created_at=T0,
                fetched_at=T0, likes=0, reposts=0, replies=0, score=0, complaint=0.9,
            ))
            connection.execute(mention_brands.insert().values(
                mention_id=i, brand="united", created_at=T0, complaint=0.9
            ))


def schema_differences(connection: Connection) -> list[object]:
    """``alembic check``: the database against schema.py, minus what metadata cannot express."""

    def include_name(name: str | None, type_: str, _parent: object) -> bool:
        if type_ == "table" and name is not None and name.startswith("mentions_fts"):
            return False  # SQLite FTS5 virtual table and its shadow tables (revision 0001)
        return not (type_ == "index" and name == "ix_mentions_fts")  # PostgreSQL GIN (0002)

    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_name": include_name}
    )
    return list(compare_metadata(context, metadata))


def make_legacy(engine: Engine, version: int) -> None:
    """Turn a database into what the pre-Alembic migrator left at ``version``."""
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE alembic_version")
        legacy_schema_info.create(connection)
        connection.execute(
            legacy_schema_info.insert().values(id=1, version=version, migrated_at=T0)
        )


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


# -- the revisions ------------------------------------------------------------------------------


def test_revisions_are_one_numbered_line_ending_at_schema_version() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    chain = list(reversed(list(script.walk_revisions())))
    assert [r.revision for r in chain] == [
        migrate.revision_id(v) for v in range(1, SCHEMA_VERSION + 1)
    ]
    assert [r.down_revision for r in chain] == [None, *[r.revision for r in chain[:-1]]]
    assert script.get_heads() == [migrate.HEAD]
    assert all(migrate.pending(None)[i][1] for i in range(SCHEMA_VERSION)), "describe each"


def test_migrations_ship_with_the_package() -> None:
    """pyproject's package-data must name every file Alembic needs at run time."""
    import tomllib

    root = ROOT
    data = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["monitor"]
    package = root / "monitor"
    shipped = {p for pattern in patterns for p in package.glob(pattern)}
    needed = {
        p for p in migrate.SCRIPT_LOCATION.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert needed <= shipped, sorted(str(p) for p in needed - shipped)
    assert any("alembic" in dep for dep in data["project"]["dependencies"])


# -- new and older archives ---------------------------------------------------------------------


def test_new_archive_is_at_head_and_matches_schema_py(archive_url: str) -> None:  # noqa: F811
    with Archive(archive_url) as archive:
        assert archive.revision == migrate.HEAD
        assert (archive.previous_version, archive.schema_version) == (0, SCHEMA_VERSION)
        assert archive.migration.before == migrate.StoredRevision(None)
        assert "schema_info" not in tables(archive.engine)
        with archive.engine.connect() as connection:
            assert connection.execute(text("SELECT version_num FROM alembic_version")).all() == [
                (migrate.HEAD,)
            ]
            assert schema_differences(connection) == []


@pytest.mark.parametrize("revision", OLDER)
def test_archive_at_an_older_revision_upgrades_keeping_its_rows(
    engine: Engine, archive_url: str, revision: str  # noqa: F811
) -> None:
    assert migrate.upgrade(engine, display(archive_url), revision).after == revision
    add_mentions(engine)
    with Archive(archive_url) as archive:
        assert archive.migration.before.revision == revision
        assert archive.revision == migrate.HEAD
        assert archive.count_mentions() == 3
        assert len(archive.search("guitar")) == 3
        with archive.engine.connect() as connection:
            # 0005 counted the rollup (and so the daily view) from the existing rows (rows
            # added behind the back of an archive already at 0005 are not its business).
            daily = connection.execute(text("SELECT mentions, complaints FROM "
                                            "daily_complaint_volume")).all()
            if revision < "0005":
                assert [tuple(row) for row in daily] == [(3, 3)]
            # 0008 added mentions.severity; rows from before it are not rated.
            severity = connection.execute(text("SELECT severity FROM mentions")).all()
            assert [tuple(row) for row in severity] == [(None,)] * 3
            assert schema_differences(connection) == []


def test_upgrade_can_stop_at_a_revision_and_go_on_later(
    engine: Engine, archive_url: str  # noqa: F811
) -> None:
    first = migrate.upgrade(engine, display(archive_url), "0003")
    assert (first.before.revision, first.after) == (None, "0003")
    assert "stories" in tables(engine) and "escalations" not in tables(engine)
    second = migrate.upgrade(engine, display(archive_url))
    assert (second.before.revision, second.after) == ("0003", migrate.HEAD)
    assert "escalations" in tables(engine)


def test_downgrade_to_nothing_and_back_to_head(
    engine: Engine, archive_url: str  # noqa: F811
) -> None:
    """The revisions' downgrade() steps work (for a developer going back a revision)."""
    migrate.upgrade(engine, display(archive_url))
    with engine.begin() as connection:
        command.downgrade(migrate.alembic_config(connection), "base")
    assert tables(engine) <= {"alembic_version"}
    migrate.upgrade(engine, display(archive_url))
    with engine.connect() as connection:
        assert schema_differences(connection) == []


# -- archives made by the pre-Alembic migrator ----------------------------------------------


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION + 1))
def test_pre_alembic_archive_is_stamped_and_upgraded(
    engine: Engine, archive_url: str, version: int  # noqa: F811
) -> None:
    migrate.upgrade(engine, display(archive_url), migrate.revision_id(version))
    add_mentions(engine)
    make_legacy(engine, version)
    with Archive(archive_url) as archive:
        assert archive.migration.before == migrate.StoredRevision(
            migrate.revision_id(version), legacy_version=version
        )
        assert archive.previous_version == version
        assert archive.revision == migrate.HEAD
        assert "schema_info" not in tables(archive.engine)
        assert archive.count_mentions() == 3
        assert len(archive.search("guitar")) == 3
        with archive.engine.connect() as connection:
            assert schema_differences(connection) == []
    with Archive(archive_url) as archive:
        assert not archive.migration.changed


@pytest.mark.parametrize("version", [1, 2, 4])
def test_pre_alembic_archive_whose_first_step_made_later_tables(
    engine: Engine, archive_url: str, version: int  # noqa: F811
) -> None:
    """The old first step created every table of its day's schema.py, so an archive may record
    an old version and already have later tables: the later revisions must not trip on them."""
    migrate.upgrade(engine, display(archive_url))
    add_mentions(engine)
    make_legacy(engine, version)
    with Archive(archive_url) as archive:
        assert archive.revision == migrate.HEAD
        assert archive.count_mentions() == 3
        with archive.engine.connect() as connection:
            assert schema_differences(connection) == []


def test_pre_alembic_archive_newer_than_this_uproar_is_refused_untouched(
    engine: Engine, archive_url: str  # noqa: F811
) -> None:
    migrate.upgrade(engine, display(archive_url))
    make_legacy(engine, SCHEMA_VERSION + 1)
    newer = migrate.revision_id(SCHEMA_VERSION + 1)
    with pytest.raises(ArchiveError, match=rf"is schema revision {newer}, .* upgrade Uproar"):
        Archive(archive_url)
    assert "schema_info" in tables(engine) and "alembic_version" not in tables(engine)


# -- atomicity and locking ------------------------------------------------------------------


REVISION = '''"""{doc}."""
import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade():
{body}


def downgrade():
    pass
'''


def scripts_with(tmp_path: Path, *bodies: str) -> Path:
    """A copy of the migrations with extra revisions after head, one per ``body``."""
    location = tmp_path / "migrations"
    shutil.copytree(
        migrate.SCRIPT_LOCATION, location, ignore=shutil.ignore_patterns("__pycache__")
    )
    for offset, body in enumerate(bodies, start=1):
        revision = migrate.revision_id(SCHEMA_VERSION + offset)
        down = migrate.revision_id(SCHEMA_VERSION + offset - 1)
        source = REVISION.format(doc=f"Extra step {offset}", revision=revision, down=down,
                                 body=body)
        (location / "versions" / f"{revision}_extra.py").write_text(source)
    return location


def test_a_failed_revision_changes_nothing(
    engine: Engine, archive_url: str, tmp_path: Path  # noqa: F811
) -> None:
    migrate.upgrade(engine, display(archive_url))
    add_mentions(engine)
    location = scripts_with(
        tmp_path,
        '    op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True))\n'
        '    op.execute("DELETE FROM mentions")',
        '    raise RuntimeError("disk on fire")',
    )
    broken = migrate.revision_id(SCHEMA_VERSION + 2)
    with pytest.raises(
        ArchiveError,
        match=rf"to schema revision {broken} \(Extra step 2\) failed: disk on fire; "
        "nothing was changed",
    ):
        migrate.upgrade(engine, display(archive_url), script_location=location)
    with engine.connect() as connection:
        assert migrate.stored_revision(connection).revision == migrate.HEAD
        assert connection.execute(select(func.count()).select_from(mentions)).scalar() == 3
    assert "notes" not in tables(engine)


def test_a_pre_alembic_archive_whose_upgrade_fails_keeps_schema_info(
    engine: Engine, archive_url: str, tmp_path: Path  # noqa: F811
) -> None:
    migrate.upgrade(engine, display(archive_url), "0004")
    make_legacy(engine, 4)
    location = scripts_with(tmp_path, '    raise RuntimeError("disk on fire")')
    with pytest.raises(ArchiveError, match="disk on fire; nothing was changed"):
        migrate.upgrade(engine, display(archive_url), script_location=location)
    assert "schema_info" in tables(engine)
    assert "alembic_version" not in tables(engine) and "volume_hourly" not in tables(engine)


def test_archives_opened_together_migrate_once(archive_url: str) -> None:  # noqa: F811
    with ThreadPoolExecutor(max_workers=4) as pool:
        opened = list(pool.map(lambda _: Archive(archive_url), range(4)))
    try:
        assert sorted(a.previous_version for a in opened) == [0] + [SCHEMA_VERSION] * 3
        assert {a.revision for a in opened} == {migrate.HEAD}
    finally:
        for archive in opened:
            archive.close()


# -- uproar migrate -------------------------------------------------------------------------


def test_uproar_migrate_prints_current_and_target_and_upgrades(
    engine: Engine, archive_url: str  # noqa: F811
) -> None:
    migrate.upgrade(engine, display(archive_url), "0002")
    make_legacy(engine, 2)
    runner = CliRunner()
    dry = runner.invoke(cli, ["migrate", "--archive", archive_url, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "current: 0002 (schema version 2), recorded by the pre-Alembic migrator" in dry.output
    assert f"target:  {migrate.HEAD} (head)" in dry.output
    assert "  0003  Stories and engagement history" in dry.output
    assert "  0002 " not in dry.output
    assert "schema_info" in tables(engine)  # --dry-run changed nothing

    run = runner.invoke(cli, ["migrate", "--archive", archive_url])
    assert run.exit_code == 0, run.output
    assert f"upgraded to {migrate.HEAD}" in run.output
    again = runner.invoke(cli, ["migrate", "--archive", archive_url])
    assert f"current: {migrate.HEAD} (schema version {SCHEMA_VERSION})" in again.output
    assert f"already at {migrate.HEAD}: nothing to do" in again.output


def test_uproar_migrate_reads_the_archive_from_the_config(tmp_path: Path) -> None:
    db = tmp_path / "uproar.db"
    config = tmp_path / "config.yaml"
    config.write_text(
        "brands: [{key: united, name: United, query: united}]\n"
        f"archive: {{url: 'sqlite:///{db}'}}\n"
    )
    result = CliRunner().invoke(cli, ["migrate", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "current: none (a new, empty archive)" in result.output
    assert f"upgraded to {migrate.HEAD}" in result.output


def test_uproar_migrate_refuses_a_newer_archive_in_one_line(
    engine: Engine, archive_url: str  # noqa: F811
) -> None:
    migrate.upgrade(engine, display(archive_url))
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    result = CliRunner().invoke(cli, ["migrate", "--archive", archive_url])
    assert result.exit_code == 1
    assert result.output.strip().endswith(
        f"is schema revision 0999, this Uproar knows up to {migrate.HEAD}: upgrade Uproar"
    )
