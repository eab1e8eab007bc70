"""The labelled data training reads, and the scores it reports (shared by ``models.train``,
``models.finetune`` and ``models.multitask``, so none of them imports another for them).

Owns: reading ``/work/shared/data``'s sentiment and complaint CSVs into :class:`Dataset`, and
macro-recall. Imports only ``models.base``; nothing of ``monitor``.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.base import SENTIMENTS

SENTIMENT_CSV = Path("sentiment/semeval2013-2016.csv")
COMPLAINTS_CSV = Path("complaints/train.csv")


@dataclass(frozen=True)
class Dataset:
    texts: list[str]
    labels: np.ndarray
    source: str
    sha256: str


def _read_csv(path: Path) -> tuple[list[dict[str, str]], str]:
    raw = path.read_bytes()
    rows = list(csv.DictReader(raw.decode("utf-8").splitlines(keepends=True)))
    return rows, hashlib.sha256(raw).hexdigest()


def load_sentiment(data_dir: Path, split: str) -> Dataset:
    rows, digest = _read_csv(data_dir / SENTIMENT_CSV)
    rows = [r for r in rows if r["split"] == split]
    labels = np.array([SENTIMENTS.index(r["sentiment"]) for r in rows], dtype=np.int64)
    return Dataset([r["text"] for r in rows], labels, f"{SENTIMENT_CSV} split={split}", digest)


def load_complaints(data_dir: Path) -> Dataset:
    rows, digest = _read_csv(data_dir / COMPLAINTS_CSV)
    labels = np.array([int(r["complaint"]) for r in rows], dtype=np.int64)
    return Dataset([r["text"] for r in rows], labels, str(COMPLAINTS_CSV), digest)


def macro_recall(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> float:
    recalls = [
        float(np.mean(y_pred[y_true == k] == k)) for k in range(classes) if np.any(y_true == k)
    ]
    return float(np.mean(recalls))
