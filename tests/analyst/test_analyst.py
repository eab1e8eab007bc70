"""uproar query / stats / export on a real archive: SQLite, and PostgreSQL when configured.

One archive of ~50 varied mentions is built per backend and module; every test only reads it.
Expected results come from plain Python over the same mentions (``DATA``), so each filter is
checked against an independent answer rather than against numbers copied from a run.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from rich.console import Console
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from connectors.base import Author, Engagement, Mention
from models.base import Classification
from monitor.analyst import output as output_module
from monitor.analyst.filters import AnalystError, MentionFilter, parse_time_bound
from monitor.analyst.queries import count_mentions, fetch_mentions, stream_batches
from monitor.analyst.stats import top_authors, top_incidents, volume
from monitor.archive import Archive, StoredMention
from monitor.archive.schema import incidents
from monitor.cli.analyst import analyst_cli, read_only_url
from monitor.clock import SimulatedClock

POSTGRES_ENV = "UPROAR_TEST_POSTGRES_URL"
T0 = datetime(2026, 2, 18, 0, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
FETCHED = NOW - timedelta(hours=1)
SOURCES = ("twitter", "reddit", "rss")
HANDLES = ("SonsOfMaxwell", "frequent_flyer", "cellist", "@atHandle")
TEXTS = (
    "United broke my guitar on the tarmac",
    "Lost luggage again, refund please",
    "Great crew on my Larkspur flight today",
    "The new cello case from Larkspur cracked",
    "Delayed three hours, no information at the gate",
    "Café au lait on board was lovely",
)
HOSTILE = ['"', "NEAR(", ") OR (", "*", "'; DROP TABLE mentions; --", 'guitar"', "a:b", "\x00",
           "text : guitar", "OR", "-", "^zq"]
SENTIMENT_BY_KIND = ("negative", "negative", "positive", "negative", "neutral", "positive")


# -- the data -------------------------------------------------------------------------------


def _classification(sentiment: str, complaint: float) -> Classification:
    scores = {"negative": 0.1, "neutral": 0.1, "positive": 0.1}
    scores[sentiment] = 0.8
    return Classification(sentiment=sentiment, scores=scores, complaint=complaint)  # type: ignore[arg-type]


def _build_data() -> list[StoredMention]:
    data: list[StoredMention] = []
    for i in range(48):
        kind = i % len(TEXTS)
        brands: tuple[str, ...] = ("united",) if i % 2 == 0 else ("larkspur",)
        if i % 10 == 0:
            brands = ("larkspur", "united")
        text_ = TEXTS[kind] + (" GUITAR" if i % 7 == 0 else "")
        sentiment = SENTIMENT_BY_KIND[kind]
        complaint = round(0.95 - (i % 5) * 0.2, 2) if sentiment == "negative" else 0.05
        m = Mention(
            source=SOURCES[i % 3],
            source_id=f"m{i}",
            url=f"https://example.com/{i}",
            text=text_,
            created_at=T0 + timedelta(hours=5 * i, minutes=i),
            author=Author(handle=HANDLES[i % 4], name=f"Author {i % 4}", followers=10 * i),
            engagement=Engagement(likes=(i * 7) % 23, reposts=i % 5, replies=i % 3, score=0),
            lang="en",
        )
        data.append(StoredMention(m, brands, _classification(sentiment, complaint),
                                  "minilm-complaints", "1.2"))
    hostile_texts = ("=HYPERLINK(\"http://evil\",\"x\")", "+1 to that", "-2 stars",
                     "@united fix this guitar")
    for j, hostile in enumerate(hostile_texts):
        m = Mention(
            source="twitter",
            source_id=f"h{j}",
            url=f"https://example.com/h{j}",
            text=hostile,
            created_at=T0 + timedelta(days=3, minutes=7 * j),
            author=Author(handle="=cmd|' /C calc'!A0", name="-evil", followers=None),
            engagement=Engagement(likes=1000 + j),
        )
        data.append(StoredMention(m, ("united",), _classification("negative", 0.99), "m", "1"))
    # An unclassified mention: classification must come back as null.
    bare = Mention("rss", "bare", "https://example.com/bare", "Unrated united post",
                   T0 + timedelta(days=9))
    data.append(StoredMention(bare, ("united",)))
    return data


DATA = _build_data()


def expected(
    predicate: Callable[[StoredMention], bool] = lambda s: True, *, by: str = "time"
) -> list[str]:
    """source_ids of matching mentions, in the order the archive should give them."""
    items = [s for s in DATA if predicate(s)]
    if by == "engagement":
        def key(s: StoredMention) -> tuple[int, datetime]:
            e = s.mention.engagement
            return (e.likes + e.reposts + e.replies + e.score, s.mention.created_at)
    else:
        def key(s: StoredMention) -> tuple[int, datetime]:
            return (0, s.mention.created_at)
    return [s.mention.source_id for s in sorted(items, key=key, reverse=True)]


def complaint_of(s: StoredMention) -> float:
    return s.classification.complaint if s.classification else -1.0


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An empty database (as in test_archive.py): a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('analyst') / 'uproar.db'}"
        return
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL analyst tests need {POSTGRES_ENV}=postgresql+psycopg://…")
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
        opened.store(DATA, fetched_at=FETCHED)
        with opened.write() as connection:
            connection.execute(
                incidents.insert(),
                [
                    _incident("united", "Guitar story", T0 + timedelta(days=1),
                              T0 + timedelta(days=3), peak=9),
                    _incident("larkspur", "Cello cases", T0 + timedelta(days=5), None, peak=4),
                ],
            )
        yield opened


@pytest.fixture(scope="module")
def archive_url(database_url: str, archive: Archive) -> str:
    """The URL of the filled archive, for the commands."""
    return database_url


def _incident(
    brand: str, title: str, opened: datetime, resolved: datetime | None, *, peak: int
) -> dict[str, Any]:
    return {
        "brand": brand,
        "status": "resolved" if resolved else "open",
        "severity": "high",
        "title": title,
        "opened_at": opened,
        "updated_at": opened,
        "last_signal_at": opened + timedelta(days=1),
        "peak_count": peak,
        "resolved_at": resolved,
    }


@pytest.fixture(scope="module")
def incident_ids(archive: Archive) -> dict[str, int]:
    with archive.engine.connect() as connection:
        rows = connection.execute(incidents.select().order_by(incidents.c.id)).all()
    return {row.brand: row.id for row in rows}


def query_ids(archive: Archive, f: MentionFilter) -> list[str]:
    with archive.engine.connect() as connection:
        return [hit.mention.source_id for hit in fetch_mentions(connection, f)]


def run(archive_url: str, *args: str) -> Result:
    runner = CliRunner(env={"COLUMNS": "160"})  # wide enough that table cells do not wrap
    return runner.invoke(
        analyst_cli, [args[0], "--archive", archive_url, *args[1:]], obj=SimulatedClock(NOW)
    )


# -- filters --------------------------------------------------------------------------------


def _has_brand(brand: str) -> Callable[[StoredMention], bool]:
    return lambda s: brand in s.brands


FILTER_CASES: list[tuple[dict[str, Any], Callable[[StoredMention], bool]]] = [
    ({}, lambda s: True),
    ({"brand": "united"}, _has_brand("united")),
    ({"brand": "larkspur"}, _has_brand("larkspur")),
    ({"brand": "nobody"}, lambda s: False),
    ({"source": "reddit"}, lambda s: s.mention.source == "reddit"),
    ({"sentiment": "positive"},
     lambda s: s.classification is not None and s.classification.sentiment == "positive"),
    ({"min_complaint": 0.7}, lambda s: complaint_of(s) >= 0.7),
    ({"author": "sonsofmaxwell"}, lambda s: s.mention.author.handle == "SonsOfMaxwell"),
    ({"author": "@frequent_flyer"}, lambda s: s.mention.author.handle == "frequent_flyer"),
    ({"author": "athandle"}, lambda s: s.mention.author.handle == "@atHandle"),
    ({"since": T0 + timedelta(days=4)}, lambda s: s.mention.created_at >= T0 + timedelta(days=4)),
    ({"until": T0 + timedelta(days=2)}, lambda s: s.mention.created_at < T0 + timedelta(days=2)),
    (
        {"brand": "united", "source": "twitter", "min_complaint": 0.5,
         "since": T0 + timedelta(days=1), "until": T0 + timedelta(days=8)},
        lambda s: "united" in s.brands and s.mention.source == "twitter"
        and complaint_of(s) >= 0.5
        and T0 + timedelta(days=1) <= s.mention.created_at < T0 + timedelta(days=8),
    ),
]


@pytest.mark.parametrize(("fields", "predicate"), FILTER_CASES,
                         ids=[repr(sorted(c[0])) for c in FILTER_CASES])
def test_each_filter_matches_the_python_answer(
    archive: Archive, fields: dict[str, Any], predicate: Callable[[StoredMention], bool]
) -> None:
    f = MentionFilter(**fields)
    assert query_ids(archive, f) == expected(predicate)
    with archive.engine.connect() as connection:
        assert count_mentions(connection, f) == len(expected(predicate))


def test_incident_is_its_brand_between_opened_and_resolved(
    archive: Archive, incident_ids: dict[str, int]
) -> None:
    start, end = T0 + timedelta(days=1), T0 + timedelta(days=3)
    ids = query_ids(archive, MentionFilter(incident=incident_ids["united"]))
    assert ids == expected(lambda s: "united" in s.brands and start <= s.mention.created_at <= end)
    assert ids
    # Still open: up to its last signal.
    start, end = T0 + timedelta(days=5), T0 + timedelta(days=6)
    ids = query_ids(archive, MentionFilter(incident=incident_ids["larkspur"]))
    assert ids == expected(
        lambda s: "larkspur" in s.brands and start <= s.mention.created_at <= end
    )
    with pytest.raises(AnalystError, match="no incident 999"):
        query_ids(archive, MentionFilter(incident=999))


def test_text_search_needs_every_word_in_any_case(archive: Archive) -> None:
    guitar = query_ids(archive, MentionFilter(text="guitar"))
    assert guitar == expected(lambda s: "guitar" in s.mention.text.lower())
    assert "m7" in guitar  # "... refund please GUITAR"
    assert query_ids(archive, MentionFilter(text="LUGGAGE Refund")) == expected(
        lambda s: "luggage" in s.mention.text.lower() and "refund" in s.mention.text.lower()
    )
    assert query_ids(archive, MentionFilter(text="luggage guitar")) == expected(
        lambda s: "luggage" in s.mention.text.lower() and "guitar" in s.mention.text.lower()
    )


def test_text_search_looks_at_the_text_not_the_author(archive: Archive) -> None:
    assert query_ids(archive, MentionFilter(text="sonsofmaxwell")) == []


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_search_text_is_only_text(archive: Archive, hostile: str) -> None:
    ids = query_ids(archive, MentionFilter(text=hostile))
    assert set(ids) <= {s.mention.source_id for s in DATA}
    assert archive.count_mentions() == len(DATA)  # nothing was dropped


def test_hostile_word_with_letters_still_finds_them(archive: Archive) -> None:
    assert query_ids(archive, MentionFilter(text='guitar"')) == query_ids(
        archive, MentionFilter(text="guitar")
    )


def test_engagement_order_and_limit(archive: Archive) -> None:
    ids = query_ids(archive, MentionFilter(order="engagement"))
    assert ids[:4] == ["h3", "h2", "h1", "h0"]
    assert ids == expected(by="engagement")
    assert query_ids(archive, MentionFilter(order="engagement", limit=5)) == ids[:5]
    assert query_ids(archive, MentionFilter(limit=3)) == expected()[:3]
    with archive.engine.connect() as connection:
        assert count_mentions(connection, MentionFilter(limit=3)) == 3


def test_stream_batches_reads_everything_in_batches(archive: Archive) -> None:
    f = MentionFilter(brand="united")
    with archive.engine.connect() as connection:
        batches = list(stream_batches(connection, f, batch_size=7))
    assert len(batches) > 1 and all(len(b) <= 7 for b in batches)
    assert [m.mention.source_id for b in batches for m in b] == expected(_has_brand("united"))


def test_filter_refuses_bad_values() -> None:
    with pytest.raises(AnalystError, match="between 0 and 1"):
        MentionFilter(min_complaint=1.5)
    with pytest.raises(AnalystError, match="before --until"):
        MentionFilter(since=NOW, until=NOW - timedelta(days=1))
    with pytest.raises(AnalystError, match="sentiment"):
        MentionFilter(sentiment="angry")
    with pytest.raises(AnalystError, match="--limit"):
        MentionFilter(limit=0)


@pytest.mark.parametrize(
    ("value", "when"),
    [
        ("7d", NOW - timedelta(days=7)),
        ("1h30m", NOW - timedelta(minutes=90)),
        ("now", NOW),
        ("2026-02-01", datetime(2026, 2, 1, tzinfo=UTC)),
        ("2026-02-01T14:30Z", datetime(2026, 2, 1, 14, 30, tzinfo=UTC)),
        ("2026-02-01 14:30:00+02:00", datetime(2026, 2, 1, 12, 30, tzinfo=UTC)),
    ],
)
def test_parse_time_bound(value: str, when: datetime) -> None:
    assert parse_time_bound(value, NOW) == when


@pytest.mark.parametrize("value", ["yesterday", "7 days", "2026-13-01", "", "-7d"])
def test_parse_time_bound_refuses_with_both_forms_in_the_message(value: str) -> None:
    with pytest.raises(AnalystError, match=r"--until .*7d.*2026-03-01"):
        parse_time_bound(value, NOW, option="--until")


# -- output ---------------------------------------------------------------------------------


def test_query_csv_has_a_header_and_defuses_formulas(archive_url: str, archive: Archive) -> None:
    result = run(archive_url, "query", "--brand", "united", "--limit", "100", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == list(output_module.COLUMNS)
    assert [r["source_id"] for r in rows] == expected(_has_brand("united"))
    by_id = {r["source_id"]: r for r in rows}
    assert by_id["h0"]["text"] == "'=HYPERLINK(\"http://evil\",\"x\")"
    assert by_id["h1"]["text"] == "'+1 to that"
    assert by_id["h2"]["text"] == "'-2 stars"
    assert by_id["h3"]["text"] == "'@united fix this guitar"
    assert by_id["h0"]["author_handle"] == "'=cmd|' /C calc'!A0"
    assert by_id["h0"]["author_name"] == "'-evil"
    assert by_id["m0"]["text"] == TEXTS[0] + " GUITAR"  # ordinary text unchanged
    assert by_id["m0"]["brands"] == "larkspur,united"
    assert by_id["m0"]["created_at"] == "2026-02-18T00:00:00Z"
    assert float(by_id["m0"]["complaint"]) == pytest.approx(0.95)
    assert by_id["bare"]["sentiment"] == "" and by_id["bare"]["complaint"] == ""


def test_query_json_lines_carry_the_mention_shape_and_classification(archive_url: str) -> None:
    result = run(archive_url, "query", "guitar", "--format", "json", "--limit", "100")
    assert result.exit_code == 0, result.output
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["source_id"] for o in objects] == expected(
        lambda s: "guitar" in s.mention.text.lower()
    )
    first = next(o for o in objects if o["source_id"] == "m0")
    original = DATA[0].mention.to_json()
    assert {k: first[k] for k in original} == original
    assert first["brands"] == ["larkspur", "united"]
    assert isinstance(first["id"], int)
    assert first["classification"] == {
        "sentiment": "negative",
        "scores": {"negative": 0.8, "neutral": 0.1, "positive": 0.1},
        "complaint": 0.95,
        "model": "minilm-complaints",
        "model_version": "1.2",
    }
    bare = run(archive_url, "query", "unrated", "--format", "json").stdout
    assert json.loads(bare)["classification"] is None


def test_query_table_renders_and_escapes_markup(archive_url: str) -> None:
    result = run(archive_url, "query", "--source", "twitter", "--sort", "engagement",
                 "--limit", "4")
    assert result.exit_code == 0, result.output
    assert '=HYPERLINK("http://evil","x")' in result.stdout  # tables show text as it is
    assert "sentiment" in result.stdout  # wide terminal: every column
    assert "4 mentions (the --limit" in result.stderr
    narrow = CliRunner(env={"COLUMNS": "80"}).invoke(
        analyst_cli, ["query", "guitar", "--archive", archive_url], obj=SimulatedClock(NOW)
    )
    assert "sentiment" not in narrow.stdout and "United broke my guitar" in narrow.stdout


def test_table_does_not_interpret_rich_markup() -> None:
    item = fetch_like("[bold red]shouting[/]")
    console = Console(file=io.StringIO(), width=200)
    output_module.render_table([item], console)
    assert "[bold red]shouting[/]" in console.file.getvalue()  # type: ignore[attr-defined]


def fetch_like(text_: str) -> Any:
    from monitor.archive.records import ArchivedMention

    m = Mention("twitter", "x", "", text_, NOW)
    return ArchivedMention(1, m, ("united",), None, None, None, NOW)


def test_query_since_relative_to_the_clock(archive_url: str) -> None:
    result = run(archive_url, "query", "--since", "3d", "--format", "json", "--limit", "100")
    assert result.exit_code == 0, result.output
    ids = [json.loads(line)["source_id"] for line in result.stdout.splitlines()]
    assert ids == expected(lambda s: s.mention.created_at >= NOW - timedelta(days=3))


def test_bad_since_is_one_line_error(archive_url: str) -> None:
    result = run(archive_url, "query", "--since", "last tuesday")
    assert result.exit_code == 1
    assert result.stderr.startswith("uproar: error: --since 'last tuesday' is neither")
    assert len(result.stderr.strip().splitlines()) == 1


# -- stats ----------------------------------------------------------------------------------


def _python_volume(by: str, threshold: float) -> dict[tuple[datetime, str], tuple[int, int]]:
    out: dict[tuple[datetime, str], tuple[int, int]] = {}
    for s in DATA:
        t = s.mention.created_at
        start = t.replace(minute=0, second=0, microsecond=0)
        if by == "day":
            start = start.replace(hour=0)
        for brand in s.brands:
            n, c = out.get((start, brand), (0, 0))
            out[(start, brand)] = (n + 1, c + (complaint_of(s) >= threshold))
    return out


@pytest.mark.parametrize("by", ["day", "hour"])
def test_volume_per_bucket_and_brand_with_complaint_share(archive: Archive, by: str) -> None:
    with archive.engine.connect() as connection:
        rows = volume(connection, MentionFilter(), by, 0.5)  # type: ignore[arg-type]
    found = {(r.bucket, r.brand): (r.mentions, r.complaints) for r in rows if r.mentions}
    assert found == _python_volume(by, 0.5)
    assert all(r.bucket.tzinfo is not None for r in rows)
    step = timedelta(days=1) if by == "day" else timedelta(hours=1)
    for brand in ("united", "larkspur"):
        buckets = [r.bucket for r in rows if r.brand == brand]
        assert buckets == sorted(buckets)
        assert all(b - a == step for a, b in itertools.pairwise(buckets))  # no gaps
    some = next(r for r in rows if r.mentions and r.complaints)
    assert some.share == pytest.approx(some.complaints / some.mentions)
    if by == "hour":
        assert any(r.mentions == 0 for r in rows)  # filled-in empty hours


def test_volume_for_one_brand_counts_only_that_brand(archive: Archive) -> None:
    with archive.engine.connect() as connection:
        rows = volume(connection, MentionFilter(brand="larkspur"), "day", 0.9)
    assert {r.brand for r in rows} == {"larkspur"}
    expected_rows = {k: v for k, v in _python_volume("day", 0.9).items() if k[1] == "larkspur"}
    assert {(r.bucket, r.brand): (r.mentions, r.complaints) for r in rows} == expected_rows


def test_top_authors_and_incidents(archive: Archive, incident_ids: dict[str, int]) -> None:
    with archive.engine.connect() as connection:
        authors = top_authors(connection, MentionFilter(), 0.5)
        tops = top_incidents(connection, MentionFilter())
        united_only = top_incidents(connection, MentionFilter(brand="united"))
        later = top_incidents(connection, MentionFilter(since=T0 + timedelta(days=5)))
    counts: dict[tuple[str, str], int] = {}
    for s in DATA:
        key = (s.mention.source, s.mention.author.handle)
        counts[key] = counts.get(key, 0) + 1
    assert [(a.source, a.handle, a.mentions) for a in authors] == sorted(
        ((k[0], k[1], n) for k, n in counts.items()), key=lambda r: (-r[2], r[0], r[1])
    )[:10]
    united_window = len(expected(lambda s: "united" in s.brands
                                 and T0 + timedelta(days=1) <= s.mention.created_at
                                 <= T0 + timedelta(days=3)))
    by_id = {i.id: i for i in tops}
    assert by_id[incident_ids["united"]].mentions == united_window
    assert [i.mentions for i in tops] == sorted((i.mentions for i in tops), reverse=True)
    assert [i.id for i in united_only] == [incident_ids["united"]]
    assert [i.id for i in later] == [incident_ids["larkspur"]]


def test_stats_command_formats(archive_url: str) -> None:
    table = run(archive_url, "stats", "--since", "2026-02-01", "--by", "day")
    assert table.exit_code == 0, table.output
    for heading in ("Volume per day", "Top authors", "Top incidents", "Guitar story"):
        assert heading in table.stdout
    as_csv = run(archive_url, "stats", "--since", "2026-02-01", "--format", "csv",
                 "--complaint-threshold", "0.5")
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert list(rows[0]) == ["bucket", "brand", "mentions", "complaints", "share"]
    assert sum(int(r["mentions"]) for r in rows) == sum(len(s.brands) for s in DATA)
    as_json = run(archive_url, "stats", "--brand", "united", "--since", "2026-02-01",
                  "--format", "json")
    objects = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert {o["brand"] for o in objects} == {"united"}
    assert all(o["bucket"].endswith("T00:00:00Z") for o in objects)
    default_window = run(archive_url, "stats", "--format", "csv")  # --since 30d before NOW
    assert default_window.stdout == as_csv.stdout


# -- export ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_export_writes_every_matching_row(
    archive_url: str, archive: Archive, tmp_path: Path, fmt: str
) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    target = tmp_path / f"out.{fmt}"
    result = run(archive_url, "export", "--brand", "united", "--min-complaint", "0.5",
                 "--output", str(target))
    assert result.exit_code == 0, result.output
    want = query_ids(archive, MentionFilter(brand="united", min_complaint=0.5))
    assert f"exported {len(want)} mentions to {target}" in result.stdout
    if fmt == "csv":
        got = [r["source_id"] for r in csv.DictReader(target.open(encoding="utf-8", newline=""))]
    elif fmt == "jsonl":
        got = [json.loads(line)["source_id"] for line in target.read_text().splitlines()]
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(target)
        got = table.column("source_id").to_pylist()
        assert table.column("brands").to_pylist()[0] in (["united"], ["larkspur", "united"])
        assert table.schema.field("created_at").type.tz == "UTC"
    assert got == want
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_export_format_from_option_overrides_the_name(archive_url: str, tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    result = run(archive_url, "export", "--format", "jsonl", "--limit", "4", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert len(target.read_text().splitlines()) == 4
    unknown = run(archive_url, "export", "-o", str(tmp_path / "out.xlsx"))
    assert unknown.exit_code == 1 and "--format csv, jsonl or parquet" in unknown.stderr


def test_interrupted_export_leaves_no_partial_file(
    archive_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.csv"
    target.write_text("previous export\n")
    original = output_module.CsvWriter.write
    calls = []

    def write_then_interrupt(self: Any, batch: Any) -> None:
        original(self, batch)
        calls.append(len(batch))
        raise KeyboardInterrupt

    monkeypatch.setattr(output_module.CsvWriter, "write", write_then_interrupt)
    result = run(archive_url, "export", "--output", str(target))
    assert calls and result.exit_code != 0
    assert target.read_text() == "previous export\n"  # untouched
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no .part left behind


def test_parquet_without_pyarrow_says_what_to_install(
    archive_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)
    result = run(archive_url, "export", "--output", str(tmp_path / "x.parquet"))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "uproar: error: Parquet export needs pyarrow: pip install 'uproar[parquet]'"
    )
    assert list(tmp_path.iterdir()) == []


# -- opening the archive --------------------------------------------------------------------


def test_missing_archive_file_is_an_error_not_a_new_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    result = run(f"sqlite:///{missing}", "query", "guitar")
    assert result.exit_code == 1
    assert f"no archive file at {missing}" in result.stderr
    assert not missing.exists()


def test_no_archive_and_no_config_says_what_to_pass(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("UPROAR_CONFIG", raising=False)
    result = CliRunner().invoke(analyst_cli, ["query"])
    assert result.exit_code == 1
    assert "pass --archive sqlite:///" in result.stderr


def test_archive_url_comes_from_the_config(archive_url: str, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "brands: [{key: united, name: United, query: united}]\n"
        f"archive: {{url: '{archive_url}'}}\n"
        "classifier: {complaint_threshold: 0.9}\n"
    )
    result = CliRunner().invoke(
        analyst_cli, ["query", "guitar", "-c", str(config), "--format", "json"],
        obj=SimulatedClock(NOW),
    )
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == len(
        expected(lambda s: "guitar" in s.mention.text.lower())
    )


def test_sqlite_archive_is_opened_read_only(archive_url: str) -> None:
    if not archive_url.startswith("sqlite"):
        assert read_only_url(archive_url) == archive_url
        return
    url = read_only_url(archive_url)
    assert url.endswith("?mode=ro&uri=true")
    with Archive(url) as read_only, pytest.raises(Exception, match="readonly"), \
            read_only.write() as connection:
        connection.execute(text("DELETE FROM mentions"))
