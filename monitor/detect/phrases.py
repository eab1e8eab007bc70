"""Key phrases of short posts: words and two-word phrases, weighted by how rare they are.

A post's phrases are its lower-cased words and adjacent word pairs after removing links,
@handles, numbers, stop words and the brand's own name (every complaint about a brand mentions
it, so it says nothing about *which* complaint this is). :class:`PhraseStats` keeps online
document frequencies, so a phrase that many posts use ("customer service") weighs less than
one that few do ("broke my guitar" → "broke guitar").
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable

_URL = re.compile(r"https?://\S+|www\.\S+|pic\.twitter\.com/\S+", re.IGNORECASE)
_HANDLE = re.compile(r"@\w+")
_WORD = re.compile(r"[a-z][a-z'’]*[a-z]|[a-z]")

# Common English function words and chat filler; phrases made of these identify no story.
STOP_WORDS = frozenset(
    """
    a about above after again against all am an and any are aren't as at be because been before
    being below between both but by can can't cannot could couldn't did didn't do does doesn't
    doing don't down during each few for from further had hadn't has hasn't have haven't having
    he he'd he'll he's her here here's hers herself him himself his how how's i i'd i'll i'm
    i've if in into is isn't it it's its itself let's me more most mustn't my myself no nor not
    of off on once only or other ought our ours ourselves out over own same shan't she she'd
    she'll she's should shouldn't so some such than that that's the their theirs them themselves
    then there there's these they they'd they'll they're they've this those through to too under
    until up very was wasn't we we'd we'll we're we've were weren't what what's when when's where
    where's which while who who's whom why why's with won't would wouldn't you you'd you'll
    you're you've your yours yourself yourselves
    im ive dont cant wont didnt doesnt isnt wasnt youre thats theres u ur r y ya yall
    just get got getting go going gone still now even also really already yet ever never
    one two today yesterday tomorrow day days time times like know think want need please
    thanks thank hi hey hello ok okay yes yeah lol amp rt via dm guys anyone someone something
    will would can could may might must shall first last again back since ago another every
    """.split()  # noqa: SIM905  (a word list reads better as text)
)


def words(text: str) -> list[str]:
    """The lower-cased words of ``text``, in order, without links and @handles."""
    text = _URL.sub(" ", text)
    text = _HANDLE.sub(" ", text)
    return [w.replace("’", "'") for w in _WORD.findall(text.lower())]


def phrases(text: str, drop: Iterable[str] = ()) -> set[str]:
    """Key phrases of ``text``: content words and pairs of adjacent content words.

    ``drop``: extra words to ignore (the brand's name and handle, lower-cased).
    """
    ignored = STOP_WORDS | {d.lower() for d in drop}
    out: set[str] = set()
    previous: str | None = None
    for word in words(text):
        if word in ignored or len(word) < 3 or (word.endswith("'s") and word[:-2] in ignored):
            previous = None
            continue
        out.add(word)
        if previous is not None:
            out.add(f"{previous} {word}")
        previous = word
    return out


def brand_words(*names: str) -> set[str]:
    """Words to drop for a brand: each word of its name and key, and their fused forms."""
    out: set[str] = set()
    for name in names:
        parts = words(name.replace("_", " ").replace("-", " "))
        out.update(parts)
        if parts:
            out.add("".join(parts))  # "United Airlines" -> "unitedairlines" (a handle)
    return out


# Distinct phrases whose document frequency is kept (~20 MB); rarer ones are forgotten (a
# forgotten phrase counts as never seen: the highest idf, which it nearly had anyway).
MAX_PHRASES = 200_000


class PhraseStats:
    """Online document frequencies of phrases, for idf weights."""

    def __init__(self) -> None:
        self.documents = 0
        self._df: Counter[str] = Counter()

    def add(self, doc: Iterable[str]) -> None:
        self.documents += 1
        self._df.update(set(doc))
        if len(self._df) > MAX_PHRASES:  # bounded however long it runs: forget the rarest half
            keep = self._df.most_common(MAX_PHRASES // 2)
            self._df = Counter(dict(keep))

    def idf(self, phrase: str) -> float:
        """Smoothed inverse document frequency; a two-word phrase counts 1.5× (more specific)."""
        weight = math.log((self.documents + 1) / (self._df.get(phrase, 0) + 1)) + 1.0
        return weight * 1.5 if " " in phrase else weight
