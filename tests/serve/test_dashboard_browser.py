"""The dashboard in a real headless browser (Debian's chromium + chromedriver, via selenium).

Starts `uproar serve` as a user would, on 127.0.0.1 (any free port), over a SQLite archive with
hostile posts; searches, opens a mention and a story, and takes a screenshot. Skips when
chromium, chromedriver or selenium is missing (`make browser-deps` installs them).
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.archive import Archive
from tests.browser import HEIGHT, WIDTH, needs_browser, wait_for
from tests.serve_data import HOSTILE_IMG, HOSTILE_SCRIPT, fill

pytestmark = needs_browser



@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """`uproar serve` on 127.0.0.1:0 over a filled archive; yields (base URL, story id)."""
    folder = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{folder / 'uproar.db'}"
    with Archive(url) as archive:
        story_id, _ = fill(archive)
    config = folder / "config.yaml"
    config.write_text(
        "brands: [{key: united, name: United, query: united}]\n"
        f"archive: {{url: '{url}'}}\n"
        "logging: {level: WARNING}\n"
    )
    env = {**os.environ, "UPROAR_SERVE_TOKEN": ""}
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "serve", "-c", str(config),
         "--listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE, text=True, env=env,
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


def test_search_renders_results_and_hostile_posts_stay_text(
    served: tuple[str, int], browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    base, _ = served
    browser.get(base)
    wait_for(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    form = browser.find_element(By.ID, "search-form")
    form.find_element(By.ID, "q-text").send_keys("guitar")
    since = form.find_element(By.NAME, "since")
    since.clear()
    since.send_keys("2026-03-01")  # the test data is from March 2026
    browser.find_element(By.ID, "search-button").click()
    rows = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "tr.mention-row"))
    texts = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "td.mention-text")]
    assert len(rows) == len(texts) == 32  # 30 "broke my guitar" + 2 hostile posts
    assert all("guitar" in t.lower() for t in texts)
    assert HOSTILE_SCRIPT in texts and HOSTILE_IMG in texts  # shown literally, as typed
    # Inert: no element was made from post text, nothing ran.
    assert browser.find_elements(By.CSS_SELECTOR, "#results img, #results script, #results b") == []
    assert browser.title == "Uproar archive"
    assert browser.execute_script("return document.scripts.length") == 1
    # Charts drawn as inline SVG.
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#volume-chart svg polyline"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#sentiment-chart svg polyline")) == 3
    # A mention's detail, hostile text included.
    hostile_row = next(r for r in rows if HOSTILE_IMG in r.text)
    hostile_row.click()
    detail = wait_for(browser, lambda d: d.find_element(By.ID, "detail-text").text and
                      d.find_element(By.ID, "detail"))
    assert detail.find_element(By.ID, "detail-text").text == HOSTILE_IMG
    assert detail.find_elements(By.CSS_SELECTOR, "img, a[href^='javascript']") == []
    assert browser.title == "Uproar archive"


def test_stories_with_timeline_and_posts(served: tuple[str, int], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    base, story_id = served
    browser.get(base + "?since=all")  # the test data is from March 2026
    wait_for(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    browser.find_element(By.CSS_SELECTOR, "nav button[data-view='stories']").click()
    row = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "tr.story-row"))[0]
    assert "Guitar <story>" in row.text
    row.click()
    timeline = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#story-timeline li"))
    events = [item.text for item in timeline]
    assert len(events) == 6  # first seen, alert opened, 2 signals, acknowledged, last seen
    assert "first seen" in events[0] and "last seen" in events[-1]
    assert any("acknowledged by U123" in e for e in events)
    assert browser.find_element(By.ID, "story-title").text == f"#{story_id} Guitar <story>"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#story-posts li")) == 2
    assert browser.find_elements(By.CSS_SELECTOR, "#story-chart svg polyline")


def test_the_url_holds_the_search_and_the_page_runs_it(
    served: tuple[str, int], browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    base, _ = served
    # Opened with the default window only: an empty answer that says why, without a click.
    browser.get(base)
    empty = wait_for(browser, lambda d: d.find_element(By.ID, "empty").text and
                     d.find_element(By.ID, "empty"))
    assert "no mentions in the last 30 days; the archive holds" in empty.text
    assert "try since 2026-" in empty.text
    # A shared link: the search runs on load, the form shows it.
    browser.get(base + "?text=guitar&since=2026-03-01")
    rows = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "tr.mention-row"))
    assert len(rows) == 32
    assert browser.find_element(By.ID, "q-text").get_attribute("value") == "guitar"
    assert not browser.find_element(By.ID, "empty").is_displayed()
    # A new search goes into the URL; Back brings the previous one back.
    text = browser.find_element(By.ID, "q-text")
    text.clear()
    text.send_keys("refund")
    browser.find_element(By.ID, "search-button").click()
    wait_for(browser, lambda d: "text=refund" in d.current_url)
    wait_for(browser, lambda d: all("refund" in c.text.lower()
                                    for c in d.find_elements(By.CSS_SELECTOR, "td.mention-text")))
    browser.back()
    wait_for(browser, lambda d: d.find_element(By.ID, "q-text").get_attribute("value") == "guitar")
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr.mention-row")) == 32)
    # The placeholder fits its field; the raw panel of a mention shows JSON, never "{}".
    field = browser.find_element(By.NAME, "min_complaint")
    assert browser.execute_script(
        "const f = arguments[0], c = document.createElement('canvas').getContext('2d');"
        "c.font = getComputedStyle(f).font;"
        "return c.measureText(f.placeholder).width <= f.clientWidth;", field)
    browser.find_elements(By.CSS_SELECTOR, "tr.mention-row")[0].click()
    raw = wait_for(browser, lambda d: d.find_element(By.ID, "detail-raw").text)
    assert raw.strip() != "{}"


def test_screenshot_is_a_non_blank_png_of_the_window(
    served: tuple[str, int], browser: Any, tmp_path: Path
) -> None:
    from PIL import Image
    from selenium.webdriver.common.by import By

    base, _ = served
    browser.get(base)
    wait_for(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    browser.find_element(By.NAME, "since").clear()
    browser.find_element(By.ID, "search-button").click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#volume-chart svg polyline"))
    png = browser.get_screenshot_as_png()
    (tmp_path / "dashboard.png").write_bytes(png)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(png)).convert("RGB")
    viewport = browser.execute_script(
        "return [window.innerWidth * devicePixelRatio, window.innerHeight * devicePixelRatio]"
    )
    assert image.size == tuple(int(v) for v in viewport)
    assert image.width == WIDTH and image.height <= HEIGHT
    colors = image.getcolors(maxcolors=1 << 20) or []
    assert len(colors) > 20  # text, charts and header, not an empty page
    top = max(count for count, _ in colors)
    assert top < 0.95 * image.width * image.height
