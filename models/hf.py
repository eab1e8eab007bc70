"""Any Hugging Face text-classification model as a ``Classifier`` (transformers backend).

The model's labels are mapped to negative/neutral/positive by name ("negative", "NEG",
"LABEL_0", "1 star", ...). Such a model has no complaint head, so its complaint probability is
its negative probability: a fair proxy (most complaints are negative) that also flags plain
negative tweets that ask nothing of a brand. Models are only read from the local Hugging Face
cache or a folder; nothing is downloaded at run time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from models.base import SENTIMENTS, Classification, Classifier, ModelError

MAX_LENGTH = 256  # tokens; enough for tweets and the start of a blog post

_STARS = re.compile(r"^([1-5])\s*stars?$")


def map_labels(id2label: Mapping[int, str]) -> dict[int, str]:
    """Map a model's output indices to sentiments; raises ``ModelError`` when it cannot."""
    names = {int(i): str(n).strip().lower() for i, n in id2label.items()}
    generic = all(re.fullmatch(r"label_\d+", n) for n in names.values())
    if generic and len(names) == 3:  # cardiffnlp convention: 0 negative, 1 neutral, 2 positive
        return {i: SENTIMENTS[int(n.split("_")[1])] for i, n in names.items()}
    if generic and len(names) == 2:  # SST-2 convention: 0 negative, 1 positive
        return {i: ("negative", "positive")[int(n.split("_")[1])] for i, n in names.items()}
    mapped: dict[int, str] = {}
    for i, n in names.items():
        star = _STARS.match(n)
        if star:  # review models: 1-2 stars negative, 3 neutral, 4-5 positive
            mapped[i] = SENTIMENTS[(int(star.group(1)) > 2) + (int(star.group(1)) > 3)]
        elif n.startswith("neg"):
            mapped[i] = "negative"
        elif n.startswith("neu"):
            mapped[i] = "neutral"
        elif n.startswith("pos"):
            mapped[i] = "positive"
        else:
            raise ModelError(
                f"cannot map label {id2label[i]!r} to negative/neutral/positive; "
                "use a sentiment model whose labels name the sentiment"
            )
    if "negative" not in mapped.values() or "positive" not in mapped.values():
        raise ModelError(f"labels {sorted(names.values())} lack a negative or positive class")
    return mapped


class TransformersClassifier(Classifier):
    """A ``AutoModelForSequenceClassification`` checkpoint, run on CPU in length-sorted batches."""

    def __init__(
        self, spec: str, *, batch_size: int = 32, labels: Mapping[str, str] | None = None
    ) -> None:
        if not Path(spec).exists() and not _in_hub_cache(spec):  # fail fast, before transformers
            raise ModelError(
                f"model {spec!r} not found locally; download it with `hf download {spec}` "
                "or set classifier.model to a local folder"
            )
        try:
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
        except ImportError as e:
            raise ModelError(
                f"classifier {spec!r} needs transformers: pip install transformers"
            ) from e
        from models.encoder import cpu_threads

        torch.set_num_threads(cpu_threads())
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(spec, local_files_only=True)
            self.model = AutoModelForSequenceClassification.from_pretrained(
                spec, local_files_only=True
            )
        except (OSError, ValueError) as e:
            where = "folder" if Path(spec).exists() else "model"
            raise ModelError(
                f"{where} {spec!r} is not a loadable text-classification model "
                f"({_first_line(e)}); "
                f"download it with `hf download {spec}` or set classifier.model to a local folder"
            ) from e
        self.model.eval()
        id2label = self.model.config.id2label
        self.labels = override_labels(id2label, labels) if labels else map_labels(id2label)
        self.batch_size = max(1, batch_size)
        self.name = spec
        self.version = _revision(spec)
        self._torch = torch

    def classify(self, texts: Sequence[str]) -> list[Classification]:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[Classification | None] = [None] * len(texts)
        with self._torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                enc = self.tokenizer(
                    [texts[i] for i in chunk],
                    padding=True,
                    truncation=True,
                    max_length=MAX_LENGTH,
                    return_tensors="pt",
                )
                probs = self.model(**enc).logits.softmax(-1).tolist()
                for i, p in zip(chunk, probs, strict=True):
                    out[i] = self._to_classification(p)
        return [c for c in out if c is not None]

    def _to_classification(self, probs: list[float]) -> Classification:
        scores: dict[str, float] = dict.fromkeys(SENTIMENTS, 0.0)
        for i, p in enumerate(probs):
            scores[self.labels[i]] += float(p)
        best = max(SENTIMENTS, key=scores.__getitem__)
        return Classification(sentiment=best, scores=scores, complaint=scores["negative"])


def override_labels(id2label: Mapping[int, str], labels: Mapping[str, str]) -> dict[int, str]:
    """The configured mapping (model label or index -> sentiment) for every model output."""
    mapped: dict[int, str] = {}
    for i, name in id2label.items():
        target = labels.get(str(name), labels.get(str(i)))
        if target is None:
            raise ModelError(
                f"classifier.labels does not map the model's label {name!r} (index {i}); "
                f"map every one of {sorted(map(str, id2label.values()))}"
            )
        if target not in SENTIMENTS:
            raise ModelError(
                f"classifier.labels maps {name!r} to {target!r}; use negative, neutral or positive"
            )
        mapped[int(i)] = target
    return mapped


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _in_hub_cache(spec: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(spec, "config.json"), str)
    except Exception:
        return True


def _revision(spec: str) -> str:
    """The Hub commit of a cached model, or "local" for a folder."""
    if Path(spec).exists():
        return "local"
    try:
        from huggingface_hub import try_to_load_from_cache

        found: Any = try_to_load_from_cache(spec, "config.json")
        if isinstance(found, str):
            return Path(found).parent.name
    except Exception:
        pass
    return "unknown"
