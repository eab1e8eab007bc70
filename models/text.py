"""Tweet normalisation applied before encoding (training and inference alike)."""

from __future__ import annotations

import html
import re

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_USER = re.compile(r"(?<![\w@])@\w{1,30}")
_SPACE = re.compile(r"\s+")


def normalize_tweet(text: str) -> str:
    """Replace handles with ``@user`` and links with ``http``; unescape HTML; squash spaces.

    Handles and t.co links carry no sentiment but cost tokens and make the same complaint to two
    brands look different; this is the TweetEval / TimeLMs convention.
    """
    text = html.unescape(text)
    text = _URL.sub("http", text)
    text = _USER.sub("@user", text)
    return _SPACE.sub(" ", text).strip()
