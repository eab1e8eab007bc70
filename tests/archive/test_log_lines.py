"""Console log lines carry their time (unless the journal adds its own); opening an archive logs
one line when a migration runs and nothing when there is nothing to do."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.archive import Archive
from monitor.logging_setup import configure

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (INFO|WARNING|ERROR) ")


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "stderr.log"
    with path.open("w", encoding="utf-8") as out:
        configure("INFO", "plain", stream=out)
        yield path
    logging.basicConfig(force=True, handlers=[logging.NullHandler()])


def lines(path: Path) -> list[str]:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return path.read_text(encoding="utf-8").splitlines()


def test_plain_lines_carry_a_utc_time(log_file: Path) -> None:
    logging.getLogger("uproar.poll").info("poll rss: 1 new")
    [line] = lines(log_file)
    assert STAMP.match(line), line
    assert line.endswith("INFO uproar.poll: poll rss: 1 new")


def test_no_time_when_the_journal_adds_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "journal"
    with path.open("w", encoding="utf-8") as out:
        status = os.fstat(out.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{status.st_dev}:{status.st_ino}")
        configure("INFO", "plain", stream=out)
        logging.getLogger("uproar").info("started")
        out.flush()
    logging.basicConfig(force=True, handlers=[logging.NullHandler()])
    assert path.read_text().splitlines() == ["INFO uproar: started"]


def test_migrations_log_one_line_and_nothing_when_up_to_date(
    log_file: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    with Archive(url) as archive:
        revision = archive.revision
    first = lines(log_file)
    assert len(first) == 1, first
    assert first[0].endswith(f"new.db: created (schema revision {revision})")
    assert not any("alembic" in line for line in first)
    with Archive(url):
        pass
    assert lines(log_file) == first  # nothing to do: nothing said
