"""Classifiers: the interface, the transformers backend and the bundled default model.

Nothing here imports from ``monitor``.

May import: ``models`` and third-party libraries only. Nothing here imports ``monitor``
(checked by ``lint-imports``); the pipeline, the daemon and the CLI import it.
"""

from __future__ import annotations

from models.base import Classification, Classifier, ModelError

__all__ = ["Classification", "Classifier", "ModelError"]
