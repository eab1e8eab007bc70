"""Classification never holds up other sources: while one source's batch is being classified,
another source polls, is classified and lands in the archive."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connectors.base import Author, Connector, Engagement, FetchResult, Mention
from models.base import Classification, Classifier
from monitor.clock import SimulatedClock
from monitor.daemon.app import build_app
from monitor.daemon.runner import SourceRunner
from tests.sourcekit import config

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class _Listing(Connector):
    """A source that always lists the same posts (a real Connector, served from memory)."""

    def __init__(self, name: str, texts: Sequence[str]) -> None:
        self.name = name
        self.texts = list(texts)
        self.fetches = 0

    def fetch(self, queries: Sequence[str], cursor: dict[str, Any] | None) -> FetchResult:
        self.fetches += 1
        mentions = [
            Mention(
                source=self.name,
                source_id=f"{self.name}-{i}",
                url=f"https://example.com/{self.name}/{i}",
                text=text,
                created_at=NOW - timedelta(minutes=1),
                author=Author(handle="someone"),
                engagement=Engagement(),
                lang="en",
            )
            for i, text in enumerate(self.texts)
        ]
        return FetchResult(mentions, {"polled": self.fetches})


class _SlowOnDemand(Classifier):
    """Takes as long as the test wants on texts containing "slow" (think: a 10,000-post
    backfill); answers other texts at once."""

    name = "slow-on-demand"
    version = "1"

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def classify(self, texts: Sequence[str]) -> list[Classification]:
        if any("slow" in t for t in texts):
            self.started.set()
            assert self.release.wait(timeout=30), "the test never released the classifier"
        scores = {"negative": 0.8, "neutral": 0.1, "positive": 0.1}
        return [Classification("negative", scores, 0.9) for _ in texts]


def test_a_slow_batch_does_not_hold_up_another_source(tmp_path: Path) -> None:
    clock = SimulatedClock(NOW)
    classifier = _SlowOnDemand()
    app = build_app(config({}), clock, archive_url=f"sqlite:///{tmp_path / 'a.db'}",
                    classifier=classifier)
    busy = _Listing("busy", ["united lost my bag, slow day"])
    quiet = _Listing("quiet", ["united broke my guitar"])
    runners = {
        c.name: SourceRunner(c.name, c, app.pipeline, ["united"], clock, timedelta(minutes=1))
        for c in (busy, quiet)
    }
    outcomes: list[Any] = []
    worker = threading.Thread(target=lambda: outcomes.append(runners["busy"].poll_once()))
    try:
        worker.start()
        assert classifier.started.wait(timeout=30)
        # The busy source is stuck in classification; the quiet one polls and stores meanwhile.
        outcome = runners["quiet"].poll_once()
        assert outcome.ok and outcome.new == 1
        assert [h.mention.source for h in app.archive.search("guitar")] == ["quiet"]
        assert app.archive.search("bag") == []
        classifier.release.set()
        worker.join(timeout=30)
        assert outcomes and outcomes[0].ok and outcomes[0].new == 1
        assert [h.mention.source for h in app.archive.search("bag")] == ["busy"]
    finally:
        classifier.release.set()
        worker.join(timeout=30)
        app.close()
