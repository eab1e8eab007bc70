"""The dashboard shows hostile text inert: no bidi controls or zero-width characters reach the
page, nothing from a post becomes markup, links are percent-encoded. The API keeps the text raw.

The browser test runs `uproar serve` over a small archive holding a hostile post, story and
incident, in Debian's headless chromium (skipped when chromium, chromedriver or selenium is
missing, like ``tests/serve/test_dashboard_browser.py``); ``shown()`` itself is checked with node.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.archive import Archive
from monitor.serve.api import static_dir
from tests.browser import needs_browser, wait_for
from tests.security.hostile_archive import HOSTILE, INVISIBLE, assert_inert, fill

NODE = shutil.which("node")


def _app_js() -> str:
    return (Path(static_dir()) / "app.js").read_text()


@pytest.mark.skipif(NODE is None, reason="needs node to run the dashboard's JavaScript")
def test_shown_drops_what_displayable_drops() -> None:
    source = _app_js()
    helpers = source[source.index("const FORMAT"): source.index("// el(")]
    script = helpers + (
        "const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "process.stdout.write(JSON.stringify([shown(input), shownJson({t: input})]));"
    )
    text = HOSTILE + "\x85\t\n"
    result = subprocess.run(
        [str(NODE), "-e", script], input=json.dumps(text), capture_output=True, text=True,
        timeout=60, check=True,
    )
    shown, raw = json.loads(result.stdout)
    from monitor.untrusted import displayable

    assert shown == displayable(text)
    assert_inert(shown)
    assert not set(INVISIBLE) & set(raw) and "\\u202e" in raw  # raw JSON: escaped, visible


def test_every_value_reaches_the_page_through_shown() -> None:
    source = _app_js()
    assert "createTextNode(shown(child))" in source
    for assignment in re.findall(r"\.textContent = (.+);", source):
        assert assignment.startswith(("shown", "String(", "time(")), assignment


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """`uproar serve` on 127.0.0.1:0 over the hostile archive; yields (base URL, story id)."""
    folder = tmp_path_factory.mktemp("dashboard-inert")
    url = f"sqlite:///{folder / 'uproar.db'}"
    with Archive(url) as archive:
        story_id, _ = fill(archive)
    config = folder / "config.yaml"
    config.write_text(
        "brands: [{key: united, name: United, query: united}]\n"
        f"archive: {{url: '{url}'}}\n"
        "logging: {level: WARNING}\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "serve", "-c", str(config),
         "--listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "UPROAR_SERVE_TOKEN": ""},
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()  # printed once the socket listens
        found = re.search(r"on (http://127\.0\.0\.1:\d+/)", line)
        assert found, f"uproar serve did not start: {line}{process.stderr.read()}"
        yield found.group(1), story_id
    finally:
        process.terminate()
        process.wait(timeout=30)


def _text(driver: Any, selector: str) -> str:
    """What the DOM holds (textContent, not selenium's whitespace-normalised .text)."""
    return str(driver.execute_script(f"return document.querySelector('{selector}').textContent"))


@needs_browser
def test_dashboard_search_detail_and_story_are_inert(
    served: tuple[str, int], browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    base, story_id = served
    browser.get(base)
    wait_for(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    since = browser.find_element(By.NAME, "since")
    since.clear()
    since.send_keys("2026-03-01")
    browser.find_element(By.ID, "search-button").click()
    (row,) = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "tr.mention-row"))
    results = _text(browser, "#results")
    assert "United gnp.exe <!channel> <https://evil.example|click> @here @channel" in results
    assert "mallory" in results
    assert_inert(results)

    row.click()
    wait_for(browser, lambda d: not d.find_element(By.ID, "detail").get_attribute("hidden"))
    detail = _text(browser, "#detail")
    assert_inert(detail)
    assert "\\u202e" in _text(browser, "#detail-raw")  # the raw payload: escaped, visible
    (link,) = browser.find_elements(By.CSS_SELECTOR, "#detail a")
    assert link.get_attribute("href") == "https://evil.example/%E2%80%AEgnp.exe"
    assert browser.find_elements(By.CSS_SELECTOR, "#detail b, #detail script, #detail img") == []

    browser.find_element(By.ID, "detail-close").click()
    browser.find_element(By.CSS_SELECTOR, "nav button[data-view='stories']").click()
    story_row = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "tr.story-row"))[0]
    assert_inert(_text(browser, "#stories"))
    story_row.click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#story-posts li"))
    story = _text(browser, "#story")
    assert f"#{story_id} United gnp.exe" in story
    assert_inert(story)
    assert browser.title == "Uproar archive"
    # The API itself keeps the text as heard.
    raw = browser.execute_script(
        "return fetch('/api/mentions?since=2026-03-01').then((r) => r.json())"
    )
    assert raw["items"][0]["text"] == HOSTILE
