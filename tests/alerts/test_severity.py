"""Complaint severity (issue 14): stored with each mention, quoted in alerts in words, routed
on with ``complaint_severity_min``, counted by `uproar stats` and the dashboard."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from models.base import SEVERITY_LEVELS, Classification, parse_severity, severity_words
from monitor.alerts import IncidentBook
from monitor.alerts.incidents import add_complaint_severity
from monitor.alerts.render import render_console, render_parent
from monitor.alerts.rules import AlertFacts, Matchers, Router
from monitor.archive import Archive, schema
from monitor.cli import cli
from monitor.clock import SimulatedClock
from monitor.config import AlertsConfig, config_from_dict
from monitor.errors import ConfigError
from monitor.pipeline import StoredMention
from tests.alerts.test_alerts import all_texts, example, signal
from tests.alerts.test_escalation import T0
from tests.archive.test_archive import archive_url, mention  # noqa: F401 - fixture

ROUTES: dict[str, Any] = {
    "policies": {
        "execs": {"levels": [{"channel": "#exec-alerts"}]},
        "pr": {"levels": [{"channel": "#pr"}]},
    },
    "routes": [
        {"name": "accusations", "match": {"complaint_severity_min": "accusation"},
         "policy": "execs"},
        {"name": "rest", "policy": "pr"},
    ],
}


def rated(source_id: str, severity: int | None, complaint: float = 0.9) -> StoredMention:
    c = Classification("negative", {"negative": 0.8, "neutral": 0.1, "positive": 0.1},
                       complaint=complaint, severity=severity)
    return StoredMention(mention(source_id), ("united",), c, "uproar-minilm", "1.test")


def test_levels_read_as_numbers_or_words() -> None:
    assert [severity_words(i) for i in range(5)] == list(SEVERITY_LEVELS)
    assert parse_severity("Accusation") == 3 == parse_severity(3) == parse_severity("3")
    assert severity_words(None) == "unknown"
    with pytest.raises(ValueError, match="0-4 or one of no complaint"):
        parse_severity("furious")


def test_the_archive_keeps_each_mentions_severity(archive_url: str) -> None:  # noqa: F811
    with Archive(archive_url) as archive:
        archive.store([rated("1", 4), rated("2", None), rated("3", 0, complaint=0.1)],
                      fetched_at=T0)
        with archive.engine.connect() as conn:
            rows = dict(conn.execute(select(schema.mentions.c.source_id,
                                            schema.mentions.c.severity)).all())
        assert rows == {"1": 4, "2": None, "3": 0}
        found = {m.mention.source_id: m.classification for m in archive.search(None)}
        assert found["1"] is not None and found["1"].severity == 4
        assert found["1"].to_json()["severity"] == 4


def test_routes_match_on_the_quoted_complaints_severity() -> None:
    router = Router(AlertsConfig.model_validate(ROUTES), "#brand-alerts")
    severe = AlertFacts.parse("brand=united,complaint_severity=blame")
    mild = AlertFacts.parse("brand=united,complaint_severity=2")
    unknown = AlertFacts.parse("brand=united")
    assert [r.name for r in router.match(severe)] == ["accusations"]
    assert [r.name for r in router.match(mild)] == ["rest"]
    assert [r.name for r in router.match(unknown)] == ["rest"]  # no severity: no match
    matchers = Matchers.model_validate({"complaint_severity_min": "accusation"})
    assert matchers.describe() == "complaint_severity>=3 (accusation)"


def test_a_bad_severity_in_a_route_is_refused_with_its_path() -> None:
    bad = {"routes": [{"match": {"complaint_severity_min": "furious"}}]}
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"brands": [{"key": "u", "name": "U", "query": "u"}], "alerts": bad})
    problems = " ".join(caught.value.problems)
    assert "alerts.routes" in problems and "severity must be 0-4" in problems


def test_an_alert_quotes_its_complaints_severity_in_words_and_routes_on_it(
    tmp_path: Path,
) -> None:
    clock = SimulatedClock(T0)
    with Archive(f"sqlite:///{tmp_path / 'a.db'}") as archive:
        archive.store([rated("1", 3), rated("2", 4), rated("3", 2)], fetched_at=T0)
        book = IncidentBook(archive.engine, clock,
                            router=Router(AlertsConfig.model_validate(ROUTES), "#brand-alerts"))
        quoted = tuple(example(source_id=str(i)) for i in (1, 2, 3))
        recorded = book.record(signal(T0, examples=quoted))
        with archive.engine.connect() as conn:
            incident = book.load(conn, recorded.incident_id)
        state = incident["state"]
        assert state["summary"]["complaint_severity"] == 3  # median of 2, 3, 4
        assert state["route"]["channel"] == "#exec-alerts"
        from monitor.alerts.incidents import parent_payload

        text = " ".join(all_texts(render_parent(parent_payload(incident)).blocks))
        assert "mostly accusation (level 3 of 4)" in text
        console = render_console(parent_payload(incident))
        assert "Complaints: mostly accusation (level 3 of 4)" in console


def test_an_alert_without_rated_posts_says_nothing_about_severity(tmp_path: Path) -> None:
    with Archive(f"sqlite:///{tmp_path / 'a.db'}") as archive:
        archive.store([rated("1", None)], fetched_at=T0)
        summary: dict[str, Any] = {"examples": [{"source": "twitter", "source_id": "1"}]}
        with archive.engine.connect() as conn:
            assert add_complaint_severity(conn, summary) is None
        assert "complaint_severity" not in summary
        payload = {"brand_name": "United", "severity": "warning", "examples": []}
        text = " ".join(all_texts(render_parent(payload).blocks))
        assert "*Complaints:*" not in text


def test_stats_counts_complaints_per_severity_level(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with Archive(url) as archive:
        batch = [rated(str(i), level) for i, level in enumerate([4, 4, 3, 2, 1, None])]
        batch.append(rated("9", 0, complaint=0.2))  # not a complaint: not counted
        archive.store([replace(b, mention=replace(b.mention, created_at=T0 + timedelta(
            minutes=i))) for i, b in enumerate(batch)], fetched_at=T0)
    out = CliRunner().invoke(cli, ["stats", "--archive", url, "--since", "2009-07-01",
                                   "--until", "2009-07-10"])
    assert out.exit_code == 0, out.output
    assert "Complaint severity" in out.output
    lines = [" ".join(line.replace("│", " ").split()) for line in out.output.splitlines()]
    assert any("4 blame 2 33%" in line for line in lines), out.output
    assert any("3 accusation 1 17%" in line for line in lines), out.output
    assert any("not rated 1 17%" in line for line in lines), out.output


def test_the_dashboard_api_counts_accusing_and_blaming_complaints(tmp_path: Path) -> None:
    import httpx

    from monitor.serve import create_app
    from tests.serve.test_serve import Server

    with Archive(f"sqlite:///{tmp_path / 'a.db'}") as archive:
        levels = [4, 3, 3, 2, 1, None]
        batch = [rated(str(i), level) for i, level in enumerate(levels)]
        batch.append(rated("9", 4, complaint=0.3))  # below the threshold: not a complaint
        archive.store(batch, fetched_at=T0)
        server = Server(create_app(archive, clock=SimulatedClock(T0 + timedelta(days=1))))
        try:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                rows = http.get("/api/stats/sentiment", params={"by": "day"}).json()
                items = http.get("/api/mentions", params={"limit": 50}).json()["items"]
                mention_id = next(m["id"] for m in items if m["source_id"] == "0")
                detail = http.get(f"/api/mentions/{mention_id}").json()
        finally:
            server.close()
    assert sum(r["severe_complaints"] for r in rows) == 3
    assert sum(r["negative"] for r in rows) == 7
    assert detail["classification"]["severity"] == 4
