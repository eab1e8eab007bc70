"""Language handling: non-English mentions are never scored by the English classifier."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from connectors.base import Author, Engagement, Mention
from models.base import Classification, Classifier, ModelError
from models.hf import override_labels
from models.language import detect_language, is_english
from monitor.archive.schema import mentions as mentions_table
from monitor.clock import SimulatedClock
from tests.sourcekit import KeywordClassifier, config, make_app

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("United broke my guitar and nobody cares", "en"),
        ("no way, Delta!", "en"),
        ("@united lost my bag again http://t.co/x #fail", "en"),
        ("El vuelo de Iberia llegó tarde y perdieron mi maleta, qué vergüenza", "es"),
        ("Mon colis n'est jamais arrivé, le service client ne répond pas", "fr"),
        ("Der Zug ist schon wieder zu spät und keiner sagt uns etwas", "de"),
        ("O voo da TAP atrasou e perderam minha mala", "pt"),
        ("ヤマト運輸の配達が遅すぎる", "ja"),
        ("Доставка опять опоздала", "ru"),
        ("快递又晚了三天", "zh"),
        ("https://t.co/abc 🎸🎸", None),
    ],
)
def test_detect_language(text: str, expected: str | None) -> None:
    assert detect_language(text) == expected


def test_declared_language_wins_over_the_guess() -> None:
    assert not is_english("United broke my guitar", "es")
    assert is_english("El vuelo llegó tarde", "en-GB")
    assert is_english("🎸🎸")  # nothing to go on: the English model may score it


def test_english_tweets_are_almost_never_called_foreign(shared_data: Path) -> None:
    """On the 50k English SemEval tweets, under 0.1% are guessed to be another language."""
    with (shared_data / "sentiment" / "semeval2013-2016.csv").open(encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    foreign = [t for t in texts if not is_english(t)]
    assert len(foreign) < len(texts) / 1000


class _Tagging(Classifier):
    """Records what it was asked to classify (a real Classifier, not a mock of ours)."""

    name = "multilingual-test"
    version = "7"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def classify(self, texts: Sequence[str]) -> list[Classification]:
        self.seen.extend(texts)
        scores = {"negative": 0.8, "neutral": 0.1, "positive": 0.1}
        return [Classification("negative", scores, 0.7) for _ in texts]


def _mention(source_id: str, text: str, lang: str | None = None) -> Mention:
    return Mention(
        source="mastodon",
        source_id=source_id,
        url=f"https://example.social/@a/{source_id}",
        text=text,
        created_at=NOW,
        author=Author(handle="a", name="A", followers=10),
        engagement=Engagement(),
        lang=lang,
    )


def _rows(app_archive_engine: object) -> dict[str, tuple[str | None, str | None, str | None]]:
    with app_archive_engine.connect() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(
            select(
                mentions_table.c.source_id,
                mentions_table.c.lang,
                mentions_table.c.sentiment,
                mentions_table.c.model_name,
            )
        ).all()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


BATCH = [
    _mention("1", "United broke my guitar and nobody at United cares"),
    _mention("2", "United perdió mi maleta y nadie me ayuda, qué vergüenza"),
    _mention("3", "United broke my guitar", lang="de"),  # the source says German
]


def test_non_english_is_stored_unclassified(tmp_path: Path) -> None:
    cfg = config({})
    app = make_app(cfg, SimulatedClock(NOW), f"sqlite:///{tmp_path / 'a.db'}")
    try:
        app.pipeline.ingest(BATCH, source="mastodon")
        rows = _rows(app.archive.engine)
    finally:
        app.close()
    assert rows["1"] == ("en", "negative", KeywordClassifier.name)
    assert rows["2"] == ("es", None, None)  # detected Spanish: stored, not scored
    assert rows["3"] == ("de", None, None)


def test_non_english_goes_to_the_multilingual_model(tmp_path: Path) -> None:
    cfg = config({})
    app = make_app(cfg, SimulatedClock(NOW), f"sqlite:///{tmp_path / 'a.db'}")
    multilingual = _Tagging()
    app.pipeline.multilingual = multilingual
    try:
        app.pipeline.ingest(BATCH, source="mastodon")
        rows = _rows(app.archive.engine)
    finally:
        app.close()
    assert multilingual.seen == [BATCH[1].text, BATCH[2].text]
    assert rows["2"] == ("es", "negative", "multilingual-test")
    assert rows["1"][2] == KeywordClassifier.name


def test_configured_label_mapping() -> None:
    id2label = {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    mapping = {"LABEL_0": "positive", "LABEL_1": "negative", "2": "neutral"}
    assert override_labels(id2label, mapping) == {0: "positive", 1: "negative", 2: "neutral"}
    with pytest.raises(ModelError, match="does not map the model's label 'LABEL_2'"):
        override_labels(id2label, {"LABEL_0": "positive", "LABEL_1": "negative"})
