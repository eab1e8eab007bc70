"""The classifier contract: a batch of texts in, a batch of classifications out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Sentiment = Literal["negative", "neutral", "positive"]
SENTIMENTS: tuple[Sentiment, ...] = ("negative", "neutral", "positive")


# Complaint severity (Jin & Aletras, NAACL 2021): 0 = not a complaint, then four levels.
SEVERITY_LEVELS: tuple[str, ...] = (
    "no complaint",
    "no explicit reproach",
    "disapproval",
    "accusation",
    "blame",
)


def severity_words(level: int | None) -> str:
    """A severity level in words ("accusation"); "unknown" when there is none."""
    if level is None or not 0 <= level < len(SEVERITY_LEVELS):
        return "unknown"
    return SEVERITY_LEVELS[level]


def parse_severity(value: object) -> int:
    """A level from its number (0-4, also as text) or its words; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"severity must be 0-4 or one of {', '.join(SEVERITY_LEVELS)}")
    if isinstance(value, int) and 0 <= value < len(SEVERITY_LEVELS):
        return value
    if isinstance(value, str):
        text = " ".join(value.strip().lower().split())
        if text.isdigit() and 0 <= int(text) < len(SEVERITY_LEVELS):
            return int(text)
        if text in SEVERITY_LEVELS:
            return SEVERITY_LEVELS.index(text)
    raise ValueError(
        f"severity must be 0-4 or one of {', '.join(SEVERITY_LEVELS)}, got {value!r}"
    )


class ModelError(Exception):
    """A model could not be loaded or run; the message says which and what to do."""


@dataclass(frozen=True, slots=True)
class Classification:
    sentiment: Sentiment
    scores: Mapping[str, float]  # probability per sentiment label, summing to 1
    complaint: float  # probability that the text is a complaint, 0.0-1.0
    # Complaint severity, 0-4 (SEVERITY_LEVELS); None when the model has no severity head.
    severity: int | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "sentiment": self.sentiment,
            "scores": {k: round(float(v), 6) for k, v in self.scores.items()},
            "complaint": round(float(self.complaint), 6),
        }
        if self.severity is not None:
            out["severity"] = int(self.severity)
        return out


class Classifier(ABC):
    """Sentiment and complaint classifier.

    ``name`` and ``version`` are stored with every mention it classifies, so an analyst can
    tell which model said what.
    """

    name: str
    version: str

    @abstractmethod
    def classify(self, texts: Sequence[str]) -> list[Classification]:
        """Classify a batch; returns one result per text, in order."""
