"""The classifier contract: a batch of texts in, a batch of classifications out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Sentiment = Literal["negative", "neutral", "positive"]
SENTIMENTS: tuple[Sentiment, ...] = ("negative", "neutral", "positive")


class ModelError(Exception):
    """A model could not be loaded or run; the message says which and what to do."""


@dataclass(frozen=True, slots=True)
class Classification:
    sentiment: Sentiment
    scores: Mapping[str, float]  # probability per sentiment label, summing to 1
    complaint: float  # probability that the text is a complaint, 0.0-1.0

    def to_json(self) -> dict[str, object]:
        return {
            "sentiment": self.sentiment,
            "scores": {k: round(float(v), 6) for k, v in self.scores.items()},
            "complaint": round(float(self.complaint), 6),
        }


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
