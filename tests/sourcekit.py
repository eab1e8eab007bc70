"""Helpers for the source tests (issue 4): a keyword classifier and a wired-up app.

The classifier is a real implementation of :class:`models.base.Classifier` (like a test
backend), so these tests exercise the pipeline, archive and runner without loading a model.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, text

from models.base import Classification, Classifier
from monitor.clock import Clock
from monitor.config import config_from_dict
from monitor.daemon.app import App, build_app

# Words that make the keyword classifier call a text a complaint.
COMPLAINT_WORDS = ("broke", "lost", "worst", "never again", "refund", "delayed", "angry")


class KeywordClassifier(Classifier):
    """Negative complaint when the text has a complaint word, else neutral."""

    name = "keyword-test"
    version = "1"

    def classify(self, texts: Sequence[str]) -> list[Classification]:
        out = []
        for body in texts:
            hit = any(word in body.lower() for word in COMPLAINT_WORDS)
            scores = {"negative": 0.9, "neutral": 0.05, "positive": 0.05} if hit else \
                {"negative": 0.05, "neutral": 0.9, "positive": 0.05}
            out.append(Classification("negative" if hit else "neutral", scores,
                                      0.95 if hit else 0.02))
        return out


def config(sources: dict[str, Any], **extra: Any) -> Any:
    """A validated config with one brand (query ``united``) and these sources."""
    data: dict[str, Any] = {
        "brands": [{"key": "united", "name": "United Airlines", "query": "united"}],
        "sources": {"rss": {"enabled": False}, "hackernews": {"enabled": False}, **sources},
        **extra,
    }
    return config_from_dict(data)


def make_app(cfg: Any, clock: Clock, archive_url: str) -> App:
    return build_app(cfg, clock, archive_url=archive_url, classifier=KeywordClassifier(),
                     console=io.StringIO())


POSTGRES_ENV = "UPROAR_TEST_POSTGRES_URL"


@pytest.fixture(params=["sqlite", "postgresql"])
def archive_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: a temporary SQLite file, or a fresh PostgreSQL schema
    (skipped unless UPROAR_TEST_POSTGRES_URL is set)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'uproar.db'}"
        return
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL archive tests need {POSTGRES_ENV}=postgresql+psycopg://…")
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
