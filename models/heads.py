"""Small classification heads on sentence embeddings, run with numpy only.

A head is: standardise features -> zero or more ReLU layers -> linear -> softmax (several
classes) or sigmoid (one logit). Training uses scikit-learn (``models.train``); inference needs
only the arrays, stored in ``heads.npz`` as ``<head>.<array>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Head:
    mean: np.ndarray  # (d,) subtracted from the features
    scale: np.ndarray  # (d,) features are divided by it
    weights: list[np.ndarray] = field(default_factory=list)  # (d_in, d_out) per layer
    biases: list[np.ndarray] = field(default_factory=list)  # (d_out,) per layer

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, classes); a one-logit head gives (n, 2) = [1-p, p]."""
        h = (np.asarray(x, dtype=np.float32) - self.mean) / self.scale
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w + b
            if i < len(self.weights) - 1:
                h = np.maximum(h, 0.0)
        if h.shape[1] == 1:
            p = 1.0 / (1.0 + np.exp(-np.clip(h[:, 0], -50.0, 50.0)))
            return np.stack([1.0 - p, p], axis=1)
        h = h - h.max(axis=1, keepdims=True)
        e = np.exp(h)
        return e / e.sum(axis=1, keepdims=True)

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        arrays = {f"{prefix}.mean": self.mean, f"{prefix}.scale": self.scale}
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            arrays[f"{prefix}.w{i}"] = w
            arrays[f"{prefix}.b{i}"] = b
        return {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> Head:
        layers = sum(1 for k in arrays if k.startswith(f"{prefix}.w"))
        if layers == 0:
            raise KeyError(f"no head named {prefix!r}")
        return cls(
            mean=np.asarray(arrays[f"{prefix}.mean"], dtype=np.float32),
            scale=np.asarray(arrays[f"{prefix}.scale"], dtype=np.float32),
            weights=[np.asarray(arrays[f"{prefix}.w{i}"], dtype=np.float32) for i in range(layers)],
            biases=[np.asarray(arrays[f"{prefix}.b{i}"], dtype=np.float32) for i in range(layers)],
        )
