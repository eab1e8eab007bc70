"""Classifiers: the interface, the transformers backend and the bundled default model.

Nothing here imports from ``monitor``.
"""

from __future__ import annotations

from models.base import Classification, Classifier, ModelError

__all__ = ["Classification", "Classifier", "ModelError"]
