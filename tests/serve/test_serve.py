"""`uproar serve`: the HTTP API over real HTTP (uvicorn on 127.0.0.1), on SQLite and PostgreSQL.

The archive is ``tests/serve_data.py``'s; expected answers come from that data in plain Python.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from monitor.archive import Archive
from monitor.cli import cli
from monitor.clock import SimulatedClock
from monitor.serve import ServeError, check_listen, create_app
from tests.serve_data import HOSTILE_IMG, NOW, T0, build_data, fill, story_members

POSTGRES_ENV = "UPROAR_TEST_POSTGRES_URL"
DATA = build_data()
TOKEN = "s3cret-token"


class Server:
    """The real app on uvicorn in a thread, on a socket bound before the thread starts."""

    def __init__(self, app: object) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)  # connections queue here until uvicorn accepts: no start-up wait
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off")  # type: ignore[arg-type]
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})
        self.thread.start()

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('serve') / 'uproar.db'}"
        return
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL API tests need {POSTGRES_ENV}=postgresql+psycopg://…")
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
def archive(database_url: str) -> Iterator[tuple[Archive, int, int]]:
    """The filled archive, its story id and its incident id."""
    with Archive(database_url) as opened:
        story_id, incident_id = fill(opened)
        yield opened, story_id, incident_id


@pytest.fixture(scope="module")
def client(archive: tuple[Archive, int, int]) -> Iterator[httpx.Client]:
    server = Server(create_app(archive[0], clock=SimulatedClock(NOW)))
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            yield http
    finally:
        server.close()


def ids(page: dict) -> list[str]:  # type: ignore[type-arg]
    return [item["source_id"] for item in page["items"]]


def newest_first(predicate) -> list[str]:  # type: ignore[no-untyped-def]
    items = sorted((s for s in DATA if predicate(s)), key=lambda s: s.mention.created_at,
                   reverse=True)
    return [s.mention.source_id for s in items]


# -- /api/mentions ----------------------------------------------------------------------------


def test_search_pages_through_every_mention_newest_first(client: httpx.Client) -> None:
    seen: list[str] = []
    offset: int | None = 0
    pages = 0
    while offset is not None:
        page = client.get("/api/mentions", params={"limit": 50, "offset": offset}).json()
        assert len(page["items"]) <= 50
        seen += ids(page)
        offset = page["next_offset"]
        pages += 1
    assert pages == 3
    assert seen == newest_first(lambda s: True)


@pytest.mark.parametrize(
    ("params", "predicate"),
    [
        ({"brand": "larkspur"}, lambda s: "larkspur" in s.brands),
        ({"text": "GUITAR"}, lambda s: "guitar" in s.mention.text.lower()),
        ({"sentiment": "positive"}, lambda s: s.classification.sentiment == "positive"),
        ({"source": "reddit", "min_complaint": "0.5"},
         lambda s: s.mention.source == "reddit" and s.classification.complaint >= 0.5),
        ({"author": "@USER3"}, lambda s: s.mention.author.handle == "user3"),
        ({"since": "1d"}, lambda s: s.mention.created_at >= NOW - timedelta(days=1)),
        ({"since": "2026-03-02", "until": "2026-03-03"},
         lambda s: T0.replace(day=2) <= s.mention.created_at < T0.replace(day=3)),
    ],
)
def test_search_filters_match_the_data(client: httpx.Client, params: dict, predicate) -> None:  # type: ignore[no-untyped-def, type-arg]
    page = client.get("/api/mentions", params={**params, "limit": 500}).json()
    assert ids(page) == newest_first(predicate)
    assert page["next_offset"] is None


def test_search_by_engagement_and_mention_shape(client: httpx.Client) -> None:
    page = client.get("/api/mentions", params={"sort": "engagement", "limit": 2}).json()
    assert ids(page) == ["hostile1", "hostile0"]  # 500 likes each; newest first on ties
    item = page["items"][0]
    assert item["text"] == HOSTILE_IMG  # untrusted text comes back as it was posted
    assert item["brands"] == ["united"]
    assert item["classification"]["sentiment"] == "negative"
    assert item["author"]["handle"] == "<b>evil</b>"


def test_incident_filter_is_the_incident_window(client: httpx.Client, archive: tuple) -> None:  # type: ignore[type-arg]
    incident_id = archive[2]
    page = client.get("/api/mentions", params={"incident": incident_id, "limit": 500}).json()
    opened = T0.replace(day=3)
    assert ids(page) == newest_first(
        lambda s: "united" in s.brands
        and opened <= s.mention.created_at <= opened.replace(hour=6)
    )


def test_story_filter_is_the_story_members(client: httpx.Client, archive: tuple) -> None:  # type: ignore[type-arg]
    page = client.get("/api/mentions", params={"story": archive[1], "text": "guitar"}).json()
    assert sorted(ids(page)) == sorted(story_members()) and len(story_members()) == 2


def test_bad_filters_are_400_with_the_cli_message(client: httpx.Client) -> None:
    response = client.get("/api/mentions", params={"since": "last tuesday"})
    assert response.status_code == 400
    assert "since 'last tuesday' is neither a duration" in response.json()["detail"]
    response = client.get("/api/mentions", params={"sentiment": "angry"})
    assert response.status_code == 400
    assert client.get("/api/mentions", params={"limit": 501}).status_code == 422
    assert client.get("/api/mentions", params={"min_complaint": 2}).status_code == 422


def test_hostile_search_text_is_only_text(client: httpx.Client) -> None:
    for hostile in ['"', "NEAR(", "'; DROP TABLE mentions; --", "<script>", "\x00"]:
        response = client.get("/api/mentions", params={"text": hostile})
        assert response.status_code == 200, hostile
    assert len(client.get("/api/mentions", params={"limit": 500}).json()["items"]) == len(DATA)


# -- /api/mentions/{id} -----------------------------------------------------------------------


def test_mention_detail_has_the_raw_payload(client: httpx.Client) -> None:
    first = client.get("/api/mentions", params={"text": "refund", "limit": 1}).json()["items"][0]
    detail = client.get(f"/api/mentions/{first['id']}").json()
    assert detail["source_id"] == first["source_id"]
    assert detail["raw"] == {"id": first["source_id"], "note": "<b>raw</b>"}
    assert detail["fetched_at"].startswith("2026-03-11")
    missing = client.get("/api/mentions/999999")
    assert missing.status_code == 404
    assert "no mention 999999" in missing.json()["detail"]


# -- /api/stats -------------------------------------------------------------------------------


def test_daily_volume_per_brand_matches_the_data(client: httpx.Client) -> None:
    rows = client.get("/api/stats/volume", params={"by": "day"}).json()
    for brand in ("united", "larkspur"):
        mine = [r for r in rows if r["brand"] == brand]
        items = [s for s in DATA if brand in s.brands]
        assert sum(r["mentions"] for r in mine) == len(items)
        assert sum(r["complaints"] for r in mine) == sum(
            s.classification.complaint >= 0.5 for s in items
        )
        days = [r["bucket"] for r in mine]
        assert days == sorted(days) and len(days) == len(set(days))
    day2 = [r for r in rows if r["bucket"].startswith("2026-03-02") and r["brand"] == "united"]
    assert day2[0]["mentions"] == 6  # every 4 hours
    assert day2[0]["share"] == pytest.approx(day2[0]["complaints"] / 6)


def test_hourly_volume_with_a_threshold_off_the_rollup_grid(client: httpx.Client) -> None:
    rows = client.get(
        "/api/stats/volume",
        params={"by": "hour", "brand": "united", "complaint_threshold": 0.93, "since": "2d"},
    ).json()
    assert sum(r["complaints"] for r in rows) == 2  # the two hostile posts (0.95), day 9
    assert all(r["brand"] == "united" for r in rows)


def test_sentiment_over_time(client: httpx.Client) -> None:
    rows = client.get("/api/stats/sentiment", params={"by": "day"}).json()
    totals = {label: sum(r[label] for r in rows) for label in ("negative", "neutral", "positive")}
    expected = {label: sum(s.classification.sentiment == label for s in DATA)
                for label in totals}
    assert totals == expected


# -- /api/stories -----------------------------------------------------------------------------


def test_stories_list_and_detail(client: httpx.Client, archive: tuple) -> None:  # type: ignore[type-arg]
    _, story_id, incident_id = archive
    page = client.get("/api/stories").json()
    assert [s["id"] for s in page["items"]] == [story_id]
    story = page["items"][0]
    assert story["title"] == "Guitar <story>"
    assert story["key_phrases"] == ["broke guitar", "tarmac"]
    assert client.get("/api/stories", params={"brand": "larkspur"}).json()["items"] == []
    assert client.get("/api/stories", params={"since": "1d"}).json()["items"] == []
    detail = client.get(f"/api/stories/{story_id}").json()
    assert sorted(p["source_id"] for p in detail["posts"]) == sorted(story_members())
    assert sum(h["mentions"] for h in detail["hourly"]) == len(story_members())
    [incident] = detail["incidents"]
    assert incident["id"] == incident_id and incident["acknowledged_by"] == "U123"
    assert [g["count"] for g in incident["signals"]] == [10, 16]
    assert client.get("/api/stories/424242").status_code == 404


# -- the app itself ---------------------------------------------------------------------------


def test_openapi_documents_every_route(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    for path in ("/api/mentions", "/api/mentions/{mention_id}", "/api/stats/volume",
                 "/api/stats/sentiment", "/api/stories", "/api/stories/{story_id}"):
        assert "get" in schema["paths"][path], path
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    params = {p["name"] for p in schema["paths"]["/api/mentions"]["get"]["parameters"]}
    assert {"text", "brand", "source", "sentiment", "min_complaint", "author", "story",
            "incident", "since", "until", "sort", "offset", "limit"} <= params


def test_dashboard_is_served_from_the_package_with_a_strict_policy(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "<title>Uproar archive</title>" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        response = client.get(asset)
        assert response.status_code == 200 and "http" not in response.text.split("SVG =")[0][:0]
    script = client.get("/static/app.js").text
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script


# -- auth -------------------------------------------------------------------------------------


def test_token_is_required_when_set(archive: tuple) -> None:  # type: ignore[type-arg]
    server = Server(create_app(archive[0], token=TOKEN, clock=SimulatedClock(NOW)))
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            assert http.get("/api/mentions").status_code == 401
            wrong = http.get("/api/stories", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            assert wrong.headers["www-authenticate"] == "Bearer"
            right = http.get("/api/mentions", headers={"Authorization": f"Bearer {TOKEN}"})
            assert right.status_code == 200 and right.json()["items"]
            assert http.get("/").status_code == 200  # the page itself holds no data
    finally:
        server.close()


def test_no_token_means_loopback_only() -> None:
    assert check_listen("127.0.0.1:8080", "") == ("127.0.0.1", 8080)
    assert check_listen("[::1]:8080", "") == ("::1", 8080)
    assert check_listen("0.0.0.0:8080", TOKEN) == ("0.0.0.0", 8080)
    for listen in ("0.0.0.0:8080", ":8080", "192.168.1.5:80", "example.com:80"):
        with pytest.raises(ServeError, match="without a token"):
            check_listen(listen, "")


def test_serve_command_refuses_a_public_address_without_a_token(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "brands: [{key: united, name: United, query: united}]\n"
        f"archive: {{url: 'sqlite:///{tmp_path}/a.db'}}\n"
        "serve: {token: '${UPROAR_TEST_UNSET_TOKEN}'}\n"
    )
    result = CliRunner().invoke(cli, ["serve", "-c", str(config), "--listen", "0.0.0.0:0"],
                                env={"UPROAR_TEST_UNSET_TOKEN": ""})
    assert result.exit_code == 1
    assert "refusing to serve the archive on 0.0.0.0:0 without a token" in result.output


def test_served_archive_cannot_be_written(database_url: str, archive: tuple) -> None:  # type: ignore[type-arg]
    from monitor.cli.serve import serving_url

    with Archive(serving_url(database_url)) as served:
        with pytest.raises(SQLAlchemyError, match=r"read-only|readonly"), served.write() as conn:
            conn.execute(text("DELETE FROM mentions"))
        assert served.count_mentions() == len(DATA)
