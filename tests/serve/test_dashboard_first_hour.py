"""The dashboard's first hour: it searches on load from its URL (so a search can be bookmarked,
shared and gone back to), an empty answer says why, a mention without payload says so, the
story and incident ids have their fields, and `uproar serve` names the file it serves.

The API side runs over real HTTP; the page's own helpers run in node (the full page is driven
in chromium by tests/serve/test_dashboard_browser.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from connectors.base import Mention
from monitor.analyst.extent import DEFAULT_SINCE
from monitor.archive import Archive, StoredMention
from monitor.clock import SimulatedClock
from monitor.serve import create_app
from monitor.serve.api import static_dir
from tests.paths import ROOT
from tests.serve.test_serve import Server
from tests.serve_data import NOW, T0, fill

ROOT = ROOT
NODE = shutil.which("node")
LATER = NOW + timedelta(days=200)  # the archive's data is months old by now


@pytest.fixture(scope="module")
def archive_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dash") / "uproar.db"
    with Archive(f"sqlite:///{path}") as archive:
        fill(archive)
        plain = Mention(source="rss", source_id="plain-1", url="https://x.example/1",
                        text="United lost my cello case", created_at=T0)
        archive.store([StoredMention(plain, ("united",), None, None, None)], fetched_at=T0)
    return path


@pytest.fixture(scope="module")
def client(archive_file: Path) -> Iterator[httpx.Client]:
    with Archive(f"sqlite:///{archive_file}") as archive:
        server = Server(create_app(archive, clock=SimulatedClock(LATER)))
        try:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                yield http
        finally:
            server.close()


def test_an_empty_search_says_what_the_archive_holds(client: httpx.Client) -> None:
    page = client.get("/api/mentions", params={"since": DEFAULT_SINCE}).json()
    assert page["items"] == []
    assert page["empty"].startswith("no mentions in the last 30 days; the archive holds 123 "
                                    "mentions from 2026-03-01 to ")
    assert page["empty"].endswith("— try since 2026-02-28")
    found = client.get("/api/mentions", params={"since": "2026-02-28"}).json()
    assert found["items"] and found["empty"] is None
    stories = client.get("/api/stories", params={"since": DEFAULT_SINCE}).json()
    assert stories["items"] == [] and stories["empty"].startswith("no stories in the last 30 days")


def test_a_mention_without_payload_has_raw_null(client: httpx.Client) -> None:
    [item] = client.get("/api/mentions", params={"text": "cello case"}).json()["items"]
    assert client.get(f"/api/mentions/{item['id']}").json()["raw"] is None


class _Inputs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inputs: dict[str, dict[str, str | None]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag in ("input", "select") and named.get("name"):
            self.inputs[str(named["name"])] = named


def test_the_search_form_has_the_default_window_and_both_ids() -> None:
    parser = _Inputs()
    parser.feed((Path(static_dir()) / "index.html").read_text())
    assert parser.inputs["since"]["value"] == DEFAULT_SINCE  # the CLI's default window
    assert {"story", "incident"} <= set(parser.inputs)
    css = (Path(static_dir()) / "style.css").read_text()
    # "min complaint" is not cut to "min com"; the story chart is bounded.
    assert re.search(r'input\[name="min_complaint"\] \{ width: 9\.5rem', css)
    assert re.search(r"#story-chart svg \{ max-height: 16rem", css)


def _run_js(expression: str) -> object:
    source = (Path(static_dir()) / "app.js").read_text()
    helpers = source[source.index("const FORMAT"): source.index("// el(")]
    helpers += source[source.index("// A search lives"): source.index("function fillForm")]
    start = source.index("// The raw payload panel")
    helpers += source[start: source.index("\n// --", start)]
    script = helpers + f"process.stdout.write(JSON.stringify({expression}));"
    done = subprocess.run([str(NODE), "-e", script], capture_output=True, text=True,
                          timeout=60, check=True)
    return json.loads(done.stdout)


@pytest.mark.skipif(NODE is None, reason="needs node to run the dashboard's JavaScript")
def test_a_search_round_trips_through_the_url() -> None:
    params = {"text": "smashed cello", "since": "30d", "story": "7", "sort": "time"}
    query = _run_js(f"queryFromParams({json.dumps(params)})")
    assert query == "?text=smashed+cello&since=30d&story=7&sort=time"
    assert _run_js(f"paramsFromQuery({json.dumps(query)})") == params


@pytest.mark.skipif(NODE is None, reason="needs node to run the dashboard's JavaScript")
def test_the_raw_panel_explains_a_missing_payload() -> None:
    for empty in ("null", "{}"):
        assert str(_run_js(f"rawText({empty})")).startswith("none: the source sent nothing")
    assert json.loads(str(_run_js('rawText({"id": "1"})'))) == {"id": "1"}


def test_serve_names_the_file_it_serves(archive_file: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("brands: [{key: united, name: United, query: united}]\n"
                      f"archive: {{url: 'sqlite:///{archive_file}'}}\n"
                      "logging: {level: WARNING}\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "serve", "-c", str(config), "--listen",
         "127.0.0.1:0"], stderr=subprocess.PIPE, text=True,
        env={**os.environ, "UPROAR_SERVE_TOKEN": ""},
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert line.startswith(f"uproar: serving {archive_file} (read-only) on http://127.0.0.1:")
    assert "file%3A" not in line and "mode=ro" not in line
