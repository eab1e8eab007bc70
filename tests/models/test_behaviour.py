"""The behaviour suite (tests/data/behaviour.csv): hand-written brand mentions of the kinds a PR
team meets (sarcasm, news and earnings, polite complaints, angry praise of a rival, questions,
reposts, emoji-only, mixed language), each with the expected complaint call and, where clear,
sentiment. `bench/classify` prints the share right per group. It is a diagnostic, not a gate:
nothing is tuned on it, and these tests check the suite and that every case is scored
consistently, not how many the model gets right."""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path

import pytest

from tests.paths import DATA, ROOT

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from models.base import SENTIMENTS
from models.loader import load_classifier

SUITE = DATA / "behaviour.csv"
GROUPS = {"sarcasm", "news", "polite", "rival", "question", "repost", "emoji", "mixed"}


def cases() -> list[dict[str, str]]:
    with SUITE.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_the_suite_has_at_least_60_cases_in_every_group() -> None:
    rows = cases()
    assert len(rows) >= 60
    per_group = Counter(r["group"] for r in rows)
    assert set(per_group) >= GROUPS and all(per_group[g] >= 5 for g in GROUPS)
    assert all(r["complaint"] in {"0", "1"} for r in rows)
    assert all(r["sentiment"] in {"", *SENTIMENTS} for r in rows)
    assert len({r["text"] for r in rows}) == len(rows), "each case once"
    assert {r["complaint"] for r in rows if r["group"] == "news"} == {"0"}


def test_training_data_does_not_contain_the_suite() -> None:
    """The suite is for judging, never for training: no case is a training text."""
    data = Path(os.environ.get("UPROAR_DATA",
                               ROOT.parent / "shared" / "data"))
    files = [data / "complaints" / "train.csv", data / "stories" / "news_headlines_dev.csv"]
    if not all(f.is_file() for f in files):
        pytest.skip(f"shared data not found at {data} (set UPROAR_DATA)")
    seen: set[str] = set()
    for f in files:
        with f.open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                seen.add(" ".join((row.get("text") or row.get("title") or "").lower().split()))
    assert not [r["text"] for r in cases() if " ".join(r["text"].lower().split()) in seen]


def test_every_case_gets_a_consistent_score_and_severity() -> None:
    rows = cases()
    results = load_classifier("default").classify([r["text"] for r in rows])
    assert len(results) == len(rows)
    for row, r in zip(rows, results, strict=True):
        assert r.sentiment in SENTIMENTS and 0.0 <= r.complaint <= 1.0, row["text"]
        if r.severity is not None:  # a complaint has a level, anything else is 0
            assert (r.severity >= 1) == (r.complaint >= 0.5), row["text"]
