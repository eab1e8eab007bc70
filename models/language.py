"""Is this text English? A fast, offline language guess for short posts.

The bundled classifier was trained on English tweets; scoring a Spanish or Japanese post with
it gives confident nonsense. Sources often say the language (Mastodon, Bluesky, RSS); when they
do not, :func:`detect_language` guesses from two cheap signals:

1. **Script**: the Unicode script most of the letters are written in (Cyrillic, Arabic, Han,
   Hangul, Kana, ...). A post mostly in a non-Latin script is not English.
2. **Function words**: for Latin-script text, the share of tokens that are common function
   words of English, Spanish, French, German, Portuguese, Italian, Dutch, Indonesian, Turkish
   or Swedish. English wins ties and short texts: a post is only called another language when
   that language's function words clearly outnumber English ones.

The guess runs at ~100,000 tweets/s, so it costs nothing next to the encoder. It returns an
ISO 639-1 code, or ``None`` when there is nothing to go on (a bare link, emoji, a hashtag).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?", re.UNICODE)
_NOISE = re.compile(r"(?:https?://|www\.)\S+|[@#]\w+", re.IGNORECASE)

# Function words: frequent, short, and (mostly) not shared with English.
_FUNCTION_WORDS: dict[str, frozenset[str]] = {
    lang: frozenset(words.split())
    for lang, words in {
        "en": "the and is are was were to of in it that this you my me i for on with have has "
        "not but be at they we our your what so just can do does did no it's i'm don't "
        "from will would an or if all about why how when been get got there their them",
        "es": "el la los las de que y en un una por con para es no se lo mi su al del pero "
        "muy más como está esta son fue porque gracias también hay sus les nos ya todo qué "
        "nadie nada mucho tengo tiene hace estoy ahora siempre nunca otra otro",
        "fr": "le la les de des du et est un une pour pas que qui dans ce cette je vous nous "
        "il elle sur avec mais ou au aux mon ma mes son sa ses très c'est j'ai ne toujours "
        "rien jamais encore déjà",
        "de": "der die das und ist nicht ein eine ich du mit auf für zu den dem von sie es "
        "sich auch noch nur wie bei aber wir ihr mein meine kein keine ist's schon nichts "
        "immer wieder uns",
        "pt": "o a os as de que e em um uma para com não por mais como mas do da dos das "
        "no na nos meu minha seu sua é foi está muito obrigado também isso ninguém nada "
        "sempre nunca ainda",
        "it": "il lo la gli le di che e un una per con non sono è ma come del della dei "
        "nel nella mio mia suo sua anche questo questa molto grazie perché",
        "nl": "de het een en van is niet dat op te ik je met voor zijn maar ook als bij "
        "er naar dit wat nog wel geen mijn heb hebben",
        "id": "yang dan di ke dari ini itu tidak untuk dengan saya kamu ada akan juga "
        "sudah belum bisa karena aku apa",
        "tr": "ve bir bu da de için ile çok ama gibi daha ne var yok ben sen mi mı değil "
        "olan olarak",
        "sv": "och att det är som en på för med har inte jag du av till den om var men "
        "så kan mig min",
    }.items()
}
# Words that are also everyday English ("a", "as", "do", "no", "on", "die", "me"...) say nothing.
_ALSO_ENGLISH = "a as an am at be by do go he if in is it me my no of on or so to up us we o e "
_ALSO_ENGLISH += "die art van bis den man was will hat war ha fast also"
_ENGLISH_TOO = _FUNCTION_WORDS["en"] | frozenset(_ALSO_ENGLISH.split())
# English words that are also Spanish/Italian/German/Dutch function words count for no one.
_SHARED = frozenset({"me", "no", "a", "in", "is"})
_FUNCTION_WORDS = {
    lang: words - _SHARED if lang == "en" else words - _ENGLISH_TOO
    for lang, words in _FUNCTION_WORDS.items()
}

# Scripts that name a language (or a family where one code is the useful answer).
_SCRIPT_LANG = {
    "CYRILLIC": "ru",
    "ARABIC": "ar",
    "HEBREW": "he",
    "GREEK": "el",
    "HANGUL": "ko",
    "HIRAGANA": "ja",
    "KATAKANA": "ja",
    "CJK": "zh",
    "THAI": "th",
    "DEVANAGARI": "hi",
    "BENGALI": "bn",
    "TAMIL": "ta",
    "GEORGIAN": "ka",
    "ARMENIAN": "hy",
}


def _script(ch: str) -> str:
    try:
        name = unicodedata.name(ch)
    except ValueError:
        return "OTHER"
    first = name.split(" ", 1)[0]
    if first in ("LATIN", "FULLWIDTH"):
        return "LATIN"
    return first if first in _SCRIPT_LANG else "OTHER"


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of ``text``'s language; ``None`` when nothing tells (no words)."""
    text = _NOISE.sub(" ", text)
    scripts = Counter(_script(ch) for ch in text if ch.isalpha())
    letters = sum(scripts.values())
    if not letters:
        return None
    if scripts["HIRAGANA"] + scripts["KATAKANA"] + scripts["CJK"] >= letters / 2:
        return "ja" if scripts["HIRAGANA"] + scripts["KATAKANA"] else "zh"
    script, count = scripts.most_common(1)[0]
    if script not in ("LATIN", "OTHER") and count * 2 >= letters:
        return _SCRIPT_LANG[script]
    words = [w.lower() for w in _WORD.findall(text)]
    if not words:
        return None
    hits = {lang: sum(w in vocab for w in words) for lang, vocab in _FUNCTION_WORDS.items()}
    english = hits.pop("en")
    best = max(hits, key=hits.__getitem__)
    # Another language only when its function words clearly dominate: at least two of them,
    # and more than twice the English ones ("Delta no me ayuda" yes; "no way, Delta" no).
    if hits[best] >= 2 and hits[best] > 2 * english:
        return best
    return "en"


def is_english(text: str, declared: str | None = None) -> bool:
    """Whether the English classifier may score ``text``.

    ``declared`` is the source's own language tag (``en``, ``en-GB``, ``es``, ...): trusted
    when present. Otherwise the guess decides; a text with nothing to go on counts as English.
    """
    if declared:
        return declared.split("-", 1)[0].strip().lower() == "en"
    guess = detect_language(text)
    return guess is None or guess == "en"
