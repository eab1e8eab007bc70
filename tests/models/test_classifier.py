"""The bundled classifier, the loader, training and `uproar classify` / `uproar train`."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tests.paths import ROOT

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in these tests may download
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from models import ModelError
from models.base import SENTIMENTS, Classifier
from models.hf import map_labels
from models.loader import load_classifier
from models.text import normalize_tweet
from monitor.cli import cli
from monitor.cli.classify import classify, parse_line
from monitor.cli.classify_input import ClassifyInputError

DATA = Path(os.environ.get("UPROAR_DATA", ROOT.parent / "shared" / "data"))
needs_data = pytest.mark.skipif(
    not (DATA / "sentiment" / "semeval2013-2016.csv").is_file(),
    reason=f"shared data not found at {DATA} (set UPROAR_DATA)",
)

COMPLAINT = "@united you broke my guitar and nobody at customer service cares. worst airline ever"
HAPPY = "Had the best day at the beach with my family, I love summer!"
NEUTRAL = "The meeting is scheduled for 3pm on Tuesday in room 4."


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return load_classifier("default")


def test_default_model_has_name_and_version(clf: Classifier) -> None:
    assert clf.name == "uproar-minilm"
    assert clf.version.startswith("1.")


def test_obvious_cases(clf: Classifier) -> None:
    complaint, happy = clf.classify([COMPLAINT, HAPPY])
    assert complaint.sentiment == "negative"
    assert complaint.complaint > 0.5
    assert happy.sentiment == "positive"
    assert happy.complaint < 0.5
    for c in (complaint, happy):
        assert set(c.scores) == set(SENTIMENTS)
        assert sum(c.scores.values()) == pytest.approx(1.0, abs=1e-5)
        assert 0.0 <= c.complaint <= 1.0


def test_order_preserved_and_batch_independent(clf: Classifier) -> None:
    texts = [HAPPY, "", COMPLAINT, NEUTRAL, "x " * 300]  # empty and over-long texts too
    together = clf.classify(texts)
    assert len(together) == 5
    fresh = load_classifier("default")  # its own cache: each text below is a batch of one
    for text, result in zip(texts, together, strict=True):
        alone = fresh.classify([text])[0]
        assert alone.sentiment == result.sentiment
        assert alone.complaint == pytest.approx(result.complaint, abs=1e-3)
        assert alone.scores == pytest.approx(result.scores, abs=1e-3)
    assert clf.classify([]) == []


def test_duplicates_in_a_batch_are_identical(clf: Classifier) -> None:
    results = clf.classify([COMPLAINT, HAPPY, COMPLAINT, COMPLAINT, HAPPY])
    assert results[0] == results[2] == results[3]
    assert results[1] == results[4]


def test_encoder_matches_sentence_transformers() -> None:
    """Float32 path against all-MiniLM-L6-v2 vectors computed with sentence-transformers 6.2."""
    from models.encoder import SentenceEncoder

    reference = {  # text: (dims 0-5, dim 100, dim 383)
        "@united you broke my guitar": (
            [0.00354, 0.01768, 0.03907, -0.0951, 0.00252, -0.01458],
            0.03101,
            -0.01541,
        ),
        "I love this new phone!": (
            [-0.07471, 0.02545, 0.04017, -0.05924, -0.00228, -0.06762],
            -0.02743,
            0.02522,
        ),
        "": ([-0.11884, 0.0483, -0.00255, -0.01101, 0.05195, 0.01029], 0.03595, -0.01572),
    }
    vectors = SentenceEncoder(quantize=False).encode(list(reference))
    for vec, (head, d100, d383) in zip(vectors, reference.values(), strict=True):
        assert vec[:6] == pytest.approx(head, abs=2e-5)
        assert (vec[100], vec[383]) == pytest.approx((d100, d383), abs=2e-5)
        assert float(np.linalg.norm(vec)) == pytest.approx(1.0, abs=1e-5)


def test_normalize_tweet() -> None:
    assert (
        normalize_tweet("@Bob  see https://t.co/x &amp; www.a.com\n!") == "@user see http & http !"
    )
    assert normalize_tweet("mail me at a@b.com") == "mail me at a@b.com"


def test_parse_line() -> None:
    assert parse_line('{"text": "hi there", "id": 3}\n') == "hi there"
    assert parse_line("{not json} just text\n") == "{not json} just text"
    with pytest.raises(ClassifyInputError, match='line 3: a JSON object with no "text" key'):
        parse_line('{"no_text": 1}', "line 3")
    assert parse_line("plain\r\n") == "plain"
    assert parse_line("\n") == ""


def test_map_labels() -> None:
    assert map_labels({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}) == dict(enumerate(SENTIMENTS))
    assert map_labels({0: "NEGATIVE", 1: "POSITIVE"}) == {0: "negative", 1: "positive"}
    assert map_labels({0: "neg", 1: "neu", 2: "pos"}) == dict(enumerate(SENTIMENTS))
    stars = map_labels({i: f"{i + 1} star{'s' if i else ''}" for i in range(5)})
    assert list(stars.values()) == ["negative", "negative", "neutral", "positive", "positive"]
    with pytest.raises(ModelError):
        map_labels({0: "joy", 1: "anger"})


# --- command line ---------------------------------------------------------------------------


def test_classify_cli_text_lines() -> None:
    result = CliRunner().invoke(classify, [], input=f"{COMPLAINT}\n\n{HAPPY}\n")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert len(rows) == 2  # the blank line holds no text: skipped
    assert rows[0]["sentiment"] == "negative" and rows[0]["complaint"] > 0.5
    assert rows[1]["sentiment"] == "positive"
    assert rows[0]["severity"] >= 1 and rows[1]["severity"] == 0
    for row in rows:
        assert set(row) == {"sentiment", "scores", "complaint", "severity"}
        assert set(row["scores"]) == set(SENTIMENTS)
        assert (row["severity"] > 0) == (row["complaint"] >= 0.5)


def test_classify_cli_leaves_other_languages_unclassified() -> None:
    french = "Bonjour, mon colis n'est jamais arrivé et le service client ne répond pas"
    result = CliRunner().invoke(classify, [], input=f"{COMPLAINT}\n{french}\n")
    assert result.exit_code == 0, result.output
    english, other = (json.loads(line) for line in result.output.splitlines())
    assert english["sentiment"] == "negative"
    assert other == {"sentiment": None, "scores": None, "complaint": None, "severity": None,
                     "lang": "fr", "unclassified": "not English"}
    forced = CliRunner().invoke(classify, ["--all-languages"], input=f"{french}\n")
    assert json.loads(forced.output)["sentiment"] in SENTIMENTS  # scored when asked to


def test_classify_cli_jsonl_and_file(
    tmp_path: Path, clf: Classifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("models.loader.load_classifier", lambda spec, batch_size=64: clf)
    lines = [
        json.dumps({"text": HAPPY, "source": "rss"}),
        COMPLAINT,
        json.dumps({"text": COMPLAINT}),
        "{broken json",
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = CliRunner().invoke(classify, ["--input", str(path)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["sentiment"] for r in rows[:3]] == ["positive", "negative", "negative"]
    assert rows[1] == rows[2]  # same text, plain or JSONL
    assert len(rows) == 4


@pytest.mark.parametrize("spec", ["./no/such/folder", "uproar-tests/no-such-model-xyz"])
def test_classify_cli_bad_model_is_one_line(spec: str) -> None:
    result = CliRunner().invoke(cli, ["classify", "--model", spec], input="hello\n")
    assert result.exit_code == 1
    message = result.output.strip()
    assert message.startswith("uproar: error: ") and "\n" not in message
    assert spec in message


def test_bad_folder_raises_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="neither"):
        load_classifier(str(tmp_path))


# --- training -------------------------------------------------------------------------------


def _write_tiny_data(root: Path) -> None:
    (root / "sentiment").mkdir(parents=True)
    (root / "complaints").mkdir()
    sentiment = [
        ("I love it, thank you so much", "positive"),
        ("great fun, best day ever", "positive"),
        ("so happy with my new shoes", "positive"),
        ("this is awful, I hate it", "negative"),
        ("worst service ever, never again", "negative"),
        ("terrible, broken and late", "negative"),
        ("the train leaves at 5", "neutral"),
        ("meeting moved to Tuesday", "neutral"),
        ("the report is on page 4", "neutral"),
    ]
    with (root / "sentiment" / "semeval2013-2016.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "sentiment", "split", "file"])
        for split in ("train", "dev"):
            for text, label in sentiment:
                w.writerow([text if split == "train" else text + "!", label, split, "tiny"])
    with (root / "complaints" / "train.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "complaint", "domain", "severity", "sentiment", "emotion"])
        for i in range(5):
            w.writerow([f"@brand my order {i} never arrived, refund me", 1, "retail", 2, "", ""])
            w.writerow([f"@brand thanks for the quick help {i}", 0, "retail", 0, "", ""])
    (root / "stories").mkdir()
    with (root / "stories" / "news_headlines_dev.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "title", "publisher", "category", "story", "hostname", "timestamp"])
        for i in range(10):
            w.writerow([i, f"Brand shares rise {i}% after results", "Wire", "b", f"s{i % 5}",
                        "example.com", "2014-03-10T12:00:00Z"])


def test_train_writes_a_loadable_bundle(tmp_path: Path) -> None:
    pytest.importorskip("sklearn", reason="training needs scikit-learn (the 'train' extra)")
    from models.train import FeatureCache, evaluate, train

    _write_tiny_data(tmp_path / "data")
    stages: list[str] = []
    scores = train(
        tmp_path / "data",
        tmp_path / "model",
        lambda stage, done, total: stages.append(stage),
        features=FeatureCache(tmp_path / "cache"),
    )
    assert set(scores) >= {"sentiment_macro_recall_dev", "complaint_macro_f1_cv5",
                           "headlines_as_complaints_pct", "severity_macro_f1_cv5"}
    assert "fit sentiment head" in stages
    meta = json.loads((tmp_path / "model" / "meta.json").read_text())
    assert meta["heads"]["complaint"]["kind"] == "logreg+negatives"
    assert meta["calibration"]["threshold"] == 0.5 and len(meta["calibration"]["platt"]) == 2
    assert meta["name"] == "uproar-minilm" and meta["labels"] == list(SENTIMENTS)
    model = load_classifier(str(tmp_path / "model"))
    assert model.version == meta["version"]
    assert model.classify(["worst service ever, I hate it"])[0].sentiment == "negative"
    again = evaluate(model, tmp_path / "data")
    assert again["sentiment_macro_recall_dev"] == scores["sentiment_macro_recall_dev"]
    assert again["headlines_as_complaints_pct"] == scores["headlines_as_complaints_pct"]
    assert model.classify(["@brand my order never arrived, refund me"])[0].severity in range(5)


def test_brand_names_are_swapped_for_other_brands_not_other_words() -> None:
    import random

    from models.brands import BRANDS, substitute_brands

    rng = random.Random(0)
    swapped = substitute_brands("United lost my bag, then Delta lost it again", rng, 1.0)
    assert "United" not in swapped and "Delta" not in swapped
    assert sum(b in swapped for b in BRANDS) >= 2
    assert substitute_brands("Flights from the United States", rng, 1.0) == (
        "Flights from the United States")
    assert substitute_brands("a united front", rng, 1.0) == "a united front"  # case matters
    assert substitute_brands("United lost my bag", rng, 0.0) == "United lost my bag"


@needs_data
def test_default_model_on_dev_sample(clf: Classifier) -> None:
    with (DATA / "sentiment" / "semeval2013-2016.csv").open(encoding="utf-8") as f:
        dev = [r for r in csv.DictReader(f) if r["split"] == "dev"][:400]
    predicted = [c.sentiment for c in clf.classify([r["text"] for r in dev])]
    recalls = [
        np.mean(
            [p == label for p, r in zip(predicted, dev, strict=True) if r["sentiment"] == label]
        )
        for label in SENTIMENTS
    ]
    assert float(np.mean(recalls)) > 0.5


def test_hugging_face_folder_via_transformers(tmp_path: Path) -> None:
    """A local text-classification checkpoint (tiny, random weights) loads and classifies."""
    transformers = pytest.importorskip("transformers")
    import shutil

    from models.encoder import bundled_encoder_path

    config = transformers.BertConfig(
        vocab_size=30522,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        id2label={0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"},
        label2id={"LABEL_0": 0, "LABEL_1": 1, "LABEL_2": 2},
    )
    transformers.BertForSequenceClassification(config).save_pretrained(tmp_path)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(bundled_encoder_path() / name, tmp_path / name)
    model = load_classifier(str(tmp_path), batch_size=2)
    assert model.name == str(tmp_path) and model.version == "local"
    texts = ["short", "", "a much longer text about a broken guitar and an airline"]
    results = model.classify(texts)
    assert len(results) == 3
    for r in results:
        assert sum(r.scores.values()) == pytest.approx(1.0, abs=1e-5)
        assert r.complaint == pytest.approx(r.scores["negative"])
    assert model.classify(texts[2:])[0].scores == pytest.approx(results[2].scores, abs=1e-5)


def test_classify_compares_models_on_the_same_input(tmp_path: Path) -> None:
    """`-m A -m B`: each line carries both models' results; stderr has the comparison table."""
    from models.minilm import BUNDLED_DIR

    lines = [
        {"text": COMPLAINT, "sentiment": "negative", "complaint": 1},
        {"text": HAPPY, "sentiment": "positive", "complaint": 0},
        {"text": "The flight leaves at 9am from gate 22", "sentiment": "neutral", "complaint": 0},
    ]
    path = tmp_path / "labelled.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    result = CliRunner().invoke(
        classify, ["-i", str(path), "-m", "default", "-m", str(BUNDLED_DIR)]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == [x["text"] for x in lines]
    for row in rows:
        assert set(row["models"]) == {"default", str(BUNDLED_DIR)}
        same = row["models"]["default"]
        assert row["models"][str(BUNDLED_DIR)] == same  # the same model, the same answer
    table = result.stderr
    assert "agrees with 1st" in table and "100.0%" in table
    assert "sentiment macro-recall (3)" in table and "complaint macro-F1 (3)" in table


@pytest.mark.parametrize("head", ["logreg", "tuned"])
def test_train_with_a_fine_tuned_encoder_ships_its_layers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, head: str
) -> None:
    """Fine-tuned layers go into the bundle (float16, checked by digest) and serve as trained;
    the sentiment head is refitted on their features or is the head trained with them."""
    pytest.importorskip("sklearn", reason="training needs scikit-learn (the 'train' extra)")
    from dataclasses import replace

    from models.finetune import FinetuneSpec
    from models.minilm import LAYERS_FILE
    from models.train import DEFAULT_RECIPE, FeatureCache, HeadSpec, evaluate, train

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # the fine-tune cache
    _write_tiny_data(tmp_path / "data")
    spec = FinetuneSpec(epochs=2.0, batch_size=4, lr=1e-3, balanced=True)
    sentiment = HeadSpec(kind=head, c=0.01, class_weight="balanced")
    recipe = replace(DEFAULT_RECIPE, finetune=spec, sentiment=sentiment)
    scores = train(tmp_path / "data", tmp_path / "model", recipe=recipe,
                   features=FeatureCache(tmp_path / "cache"))
    meta = json.loads((tmp_path / "model" / "meta.json").read_text())
    assert meta["finetune"]["epochs"] == 2.0
    assert meta["heads"]["sentiment"]["kind"] == head
    assert meta["encoder"]["finetuned"]["file"] == LAYERS_FILE
    layers = tmp_path / "model" / LAYERS_FILE
    assert layers.stat().st_size < 10_000_000  # only the trained layers, in float16
    model = load_classifier(str(tmp_path / "model"))
    again = evaluate(model, tmp_path / "data")
    assert again["sentiment_macro_recall_dev"] == scores["sentiment_macro_recall_dev"]
    # Another model's layers in the bundle are refused, not silently used.
    data = bytearray(layers.read_bytes())
    data[-2] ^= 0xFF
    layers.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match"):
        load_classifier(str(tmp_path / "model"))


def test_stories_are_embedded_by_minilm_as_shipped_not_the_fine_tuned_layers() -> None:
    from models.minilm import MiniLMClassifier

    """Fine-tuned layers say how a post feels; story grouping wants what it is about."""
    from dataclasses import replace

    model = load_classifier("default")
    assert isinstance(model, MiniLMClassifier) and model.settings.layers  # fine-tuned
    texts = ["@united broke my guitar", "united lost my bag again"]
    embedded = model.embed(texts)
    plain = replace(model.settings, layers={}, ranges={}).build(quantize=False)
    assert np.allclose(embedded, plain.encode(model.settings.prepare(texts)), atol=1e-5)
    assert not np.allclose(embedded, model.features(texts), atol=1e-2)
