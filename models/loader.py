"""Turn a model spec from the config or the command line into a ``Classifier``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from models.base import Classifier, ModelError
from models.minilm import BUNDLED_DIR, is_bundle, load_bundle

_HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")  # "name" or "owner/name"; anything else is a path


def load_classifier(
    spec: str = "default", *, batch_size: int = 64, labels: Mapping[str, str] | None = None
) -> Classifier:
    """Load a classifier; raises ``ModelError`` with a one-line hint when it cannot.

    ``spec`` is one of:

    - ``"default"``: the bundled MiniLM-L6 model (``models/bundled``), fully offline;
    - a folder with ``meta.json`` + ``heads.npz`` (written by ``uproar train --output``);
    - a folder with a Hugging Face text-classification checkpoint, or a Hub model id already
      in the local Hugging Face cache (e.g. ``cardiffnlp/twitter-roberta-base-sentiment-latest``).
      Its complaint probability is its negative probability (see ``models.hf``). ``labels``
      maps its output labels (or indices) to negative/neutral/positive when their names do
      not say it.
    """
    spec = (spec or "default").strip()
    if spec == "default":
        if not is_bundle(BUNDLED_DIR):
            raise ModelError(
                f"the bundled model is missing from {BUNDLED_DIR}; "
                "reinstall uproar or rebuild it with: uproar train"
            )
        return load_bundle(BUNDLED_DIR, batch_size=batch_size)
    folder = Path(spec).expanduser()
    if folder.is_dir():
        if is_bundle(folder):
            return load_bundle(folder, batch_size=batch_size)
        if not (folder / "config.json").is_file():
            raise ModelError(
                f"folder {spec!r} holds neither an Uproar model (meta.json, heads.npz) nor a "
                "Hugging Face model (config.json); point classifier.model at one of those"
            )
    elif not _HUB_ID.fullmatch(spec) or spec.startswith("."):
        raise ModelError(
            f"model folder {spec!r} does not exist; use 'default' or an existing folder"
        )
    from models.hf import TransformersClassifier

    return TransformersClassifier(
        str(folder) if folder.is_dir() else spec, batch_size=batch_size, labels=labels
    )
