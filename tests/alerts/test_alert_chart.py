"""The volume chart in a new alert's thread: counting, drawing, uploading, and failing softly."""

from __future__ import annotations

import io
import logging
import os
import struct
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from connectors.base import Mention
from models.base import Classification
from monitor.alerts import ConsoleSender, Dispatcher, IncidentBook, SlackSender
from monitor.alerts.chart import render_chart, series_end, volume_series
from monitor.archive import Archive, StoredMention, schema
from monitor.clock import SimulatedClock
from tests.alerts.test_alerts import T0, signal
from tests.fakes import slack as fakeslack
from tests.fakes.slack import CHANNEL_ID, FakeSlack

fake_slack = fakeslack.fake_slack

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
POSTGRES_ENV = "UPROAR_TEST_POSTGRES_URL"
Q = timedelta(minutes=15)


def stored(i: int, at: datetime, brands: tuple[str, ...], complaint: float | None) -> StoredMention:
    mention = Mention("twitter", f"m{i}", f"https://example.com/{i}", f"post {i}", at)
    if complaint is None:
        return StoredMention(mention, brands)
    scores = {"negative": 0.8, "neutral": 0.1, "positive": 0.1}
    classification = Classification(sentiment="negative", scores=scores, complaint=complaint)
    return StoredMention(mention, brands, classification, "test-model", "1")


@pytest.fixture(params=["sqlite", "postgresql"])
def archive(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Archive]:
    """An empty archive: a SQLite file, or a fresh PostgreSQL schema when configured."""
    if request.param == "sqlite":
        with Archive(f"sqlite:///{tmp_path / 'uproar.db'}") as opened:
            yield opened
        return
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL chart tests need {POSTGRES_ENV}=postgresql+psycopg://…")
    name = f"uproar_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{name}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={name}"})
    try:
        with Archive(url.render_as_string(hide_password=False)) as opened:
            yield opened
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


@pytest.fixture
def sqlite_archive(tmp_path: Any) -> Iterator[Archive]:
    with Archive(f"sqlite:///{tmp_path / 'uproar.db'}") as opened:
        yield opened


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(T0)


def sender_for(fake: FakeSlack) -> SlackSender:
    return SlackSender(fake.token, "#brand-alerts", fake.url, timeout=5)


def png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk comes first
    return width, height


def methods(fake: FakeSlack) -> list[str]:
    return [c.method for c in fake.requests]


# -- counting --------------------------------------------------------------------------------------


def test_volume_series_counts_mentions_and_complaints_per_bucket(archive):
    end = series_end(T0 + timedelta(minutes=7), Q)  # 03:15, the end of the 03:00 bucket
    start = end - timedelta(hours=24)
    rows = [
        stored(1, start, ("united",), 0.9),  # the first instant of the window: counted
        stored(2, start + timedelta(minutes=14, seconds=59), ("united",), 0.2),
        stored(3, start + timedelta(minutes=15), ("united", "acme"), 0.5),  # at the threshold
        stored(4, T0 + timedelta(minutes=1), ("united",), 0.99),
        stored(5, T0 + timedelta(minutes=2), ("united",), None),  # unclassified: a mention only
        stored(6, T0 + timedelta(minutes=14, seconds=59), ("united",), 0.7),
        stored(7, end, ("united",), 0.9),  # the window's end is excluded
        stored(8, start - timedelta(seconds=1), ("united",), 0.9),  # before the window
        stored(9, T0 + timedelta(minutes=3), ("acme",), 0.9),  # another brand
        stored(10, T0 - timedelta(hours=5, minutes=31), ("united",), 0.1),
    ]
    archive.store(rows, fetched_at=end)

    series = volume_series(archive.engine, "united", end)
    assert len(series) == 96
    assert series[0][0] == start and series[-1][0] == end - Q
    assert all(b.tzinfo is not None and b.utcoffset() == timedelta(0) for b, _, _ in series)
    assert [b for b, _, _ in series] == [start + i * Q for i in range(96)]
    nonzero = {b: (m, c) for b, m, c in series if m or c}
    assert nonzero == {
        start: (2, 1),
        start + Q: (1, 1),
        T0 - timedelta(hours=5, minutes=45): (1, 0),
        T0: (3, 2),
    }

    assert sum(c for _, _, c in volume_series(archive.engine, "united", end, 24, Q, 0.95)) == 1
    hourly = volume_series(archive.engine, "acme", end, hours=2, bucket=timedelta(hours=1))
    assert hourly == [(end - timedelta(hours=2), 0, 0), (end - timedelta(hours=1), 1, 1)]
    assert all(m == 0 for _, m, _ in volume_series(archive.engine, "nobody", end))


# -- drawing ---------------------------------------------------------------------------------------


def test_render_chart_is_a_1000x400_png_and_takes_hostile_titles():
    pyplot_before = "matplotlib.pyplot" in sys.modules
    end = series_end(T0, Q)
    series = [(end - (96 - i) * Q, i % 7 + (40 if i > 90 else 0), i % 3) for i in range(96)]
    for title in ("United Airlines", "$\\frac{1}{0$ <!channel> \x1b[31m\nEvil 😀 " + "x" * 300):
        png = render_chart(series, title=title, marker_at=T0)
        assert png_size(png) == (1000, 400)
    empty = render_chart([(end - Q, 0, 0)], title="quiet", marker_at=None)
    assert empty.startswith(PNG_SIGNATURE)
    if not pyplot_before:
        assert "matplotlib.pyplot" not in sys.modules  # no global figure state


# -- the thread ------------------------------------------------------------------------------------


def test_new_incident_gets_one_chart_in_its_thread(sqlite_archive, clock, fake_slack):
    sqlite_archive.store(
        [stored(i, T0 - timedelta(minutes=5 * i), ("united",), 0.9) for i in range(30)],
        fetched_at=T0,
    )
    engine = sqlite_archive.engine
    IncidentBook(engine, clock).record(signal())
    dispatcher = Dispatcher(engine, sender_for(fake_slack), clock)
    report = dispatcher.deliver_due()
    assert (report.sent, report.retried, report.failed) == (1, 0, 0)

    assert methods(fake_slack) == [
        "chat.postMessage",
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]
    [parent] = fake_slack.messages
    [chart] = fake_slack.files
    assert chart["bytes"].startswith(PNG_SIGNATURE) and png_size(chart["bytes"]) == (1000, 400)
    assert chart["thread_ts"] == parent["ts"]
    assert chart["channel"] == CHANNEL_ID
    assert chart["filename"] == "uproar-volume.png"
    assert "United Airlines" in chart["title"]
    assert chart["initial_comment"] is None
    [upload] = fake_slack.calls("upload")
    assert upload.body["length"] == len(chart["bytes"])
    assert fake_slack.calls("files.getUploadURLExternal")[0].token == fake_slack.token

    assert dispatcher.deliver_due().sent == 0
    assert len(fake_slack.files) == 1


def test_an_update_uploads_no_second_chart(sqlite_archive, clock, fake_slack):
    engine = sqlite_archive.engine
    book = IncidentBook(engine, clock)
    dispatcher = Dispatcher(engine, sender_for(fake_slack), clock)
    first = book.record(signal())
    dispatcher.deliver_due()
    clock.advance(timedelta(minutes=20))
    second = book.record(signal(clock.now(), count=120, severity="critical"))
    assert second.incident_id == first.incident_id and second.kind == "update"
    assert dispatcher.deliver_due().sent == 1

    assert len(fake_slack.calls("chat.postMessage")) == 2
    assert len(fake_slack.calls("files.getUploadURLExternal")) == 1
    assert len(fake_slack.files) == 1


@pytest.mark.parametrize(
    "inject",
    [
        lambda f: f.error_next("internal_error", method="files.getUploadURLExternal"),
        lambda f: f.error_next("missing_scope", method="files.getUploadURLExternal"),
        lambda f: f.fail_next(status=500, method="upload"),
        lambda f: f.drop_next(method="upload"),
        lambda f: f.error_next("channel_not_found", method="files.completeUploadExternal"),
    ],
    ids=["getUploadURL-retryable", "getUploadURL-scope", "upload-500", "upload-drop", "complete"],
)
def test_a_failed_chart_still_delivers_the_alert_once(
    sqlite_archive, clock, fake_slack, caplog, inject
):
    engine = sqlite_archive.engine
    recorded = IncidentBook(engine, clock).record(signal())
    dispatcher = Dispatcher(engine, sender_for(fake_slack), clock)
    inject(fake_slack)
    with caplog.at_level(logging.WARNING, logger="monitor.alerts.dispatch"):
        report = dispatcher.deliver_due()
    assert (report.sent, report.retried, report.failed) == (1, 0, 0)
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert f"no volume chart for incident #{recorded.incident_id}" in warning.getMessage()
    assert fake_slack.files == []

    with engine.connect() as conn:
        [row] = conn.execute(select(schema.outbox)).mappings().all()
    assert row["sent_at"] is not None and row["failed_at"] is None and row["last_error"] is None
    before = len(fake_slack.requests)
    clock.advance(timedelta(hours=1))
    assert dispatcher.drain(advance_clock=True).sent == 0  # the chart is not tried again
    assert len(fake_slack.requests) == before
    assert len(fake_slack.calls("chat.postMessage")) == 1 and len(fake_slack.messages) == 1


def test_missing_files_scope_says_which_scope(sqlite_archive, clock, fake_slack, caplog):
    engine = sqlite_archive.engine
    IncidentBook(engine, clock).record(signal())
    fake_slack.error_next("missing_scope", method="files.getUploadURLExternal")
    with caplog.at_level(logging.WARNING, logger="monitor.alerts.dispatch"):
        Dispatcher(engine, sender_for(fake_slack), clock).deliver_due()
    assert "files:write" in caplog.text


def test_a_broken_chart_renderer_never_costs_the_alert(
    sqlite_archive, clock, fake_slack, caplog, monkeypatch
):
    def boom(*args: Any, **kwargs: Any) -> bytes:
        raise RuntimeError("no fonts today")

    monkeypatch.setattr("monitor.alerts.dispatch.render_chart", boom)
    engine = sqlite_archive.engine
    IncidentBook(engine, clock).record(signal())
    with caplog.at_level(logging.WARNING, logger="monitor.alerts.dispatch"):
        report = Dispatcher(engine, sender_for(fake_slack), clock).deliver_due()
    assert report.sent == 1 and len(fake_slack.messages) == 1
    assert "no volume chart" in caplog.text and "no fonts today" in caplog.text
    assert methods(fake_slack) == ["chat.postMessage"]


def test_charts_off_and_the_console_upload_nothing(sqlite_archive, clock, fake_slack, monkeypatch):
    engine = sqlite_archive.engine
    book = IncidentBook(engine, clock)
    book.record(signal())
    assert Dispatcher(engine, sender_for(fake_slack), clock, charts=False).deliver_due().sent == 1
    assert methods(fake_slack) == ["chat.postMessage"]

    def never(*args: Any, **kwargs: Any) -> bytes:
        raise AssertionError("the console draws no chart")

    monkeypatch.setattr("monitor.alerts.dispatch.render_chart", never)
    out = io.StringIO()
    console_book = IncidentBook(engine, clock, target="console")
    console_book.record(signal(brand="acme", brand_name="Acme"))
    assert Dispatcher(engine, ConsoleSender(out), clock).deliver_due().sent == 1
    assert "Acme" in out.getvalue() and "chart" not in out.getvalue()


def test_a_reply_that_becomes_the_parent_gets_the_chart(sqlite_archive, clock, fake_slack):
    engine = sqlite_archive.engine
    book = IncidentBook(engine, clock)
    dispatcher = Dispatcher(engine, sender_for(fake_slack), clock)
    book.record(signal())
    fake_slack.error_next("channel_not_found")
    assert dispatcher.deliver_due().failed == 1
    assert fake_slack.files == []
    clock.advance(timedelta(minutes=40))
    book.record(signal(clock.now(), count=90, severity="critical"))
    assert dispatcher.deliver_due().sent == 1
    [parent] = fake_slack.messages
    [chart] = fake_slack.files
    assert chart["thread_ts"] == parent["ts"]
