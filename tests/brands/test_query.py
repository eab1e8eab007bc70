"""The brand query language: parsing, precedence, matching rules, error positions, many brands."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.brands.query import And, BrandMatcher, Not, Or, Term, parse_query
from monitor.errors import QueryError

UNITED = '"united airlines" OR @united OR (#unitedairlines AND NOT "united nations")'


def w(word: str) -> Term:
    return Term((("", word),))


def matches(query: str, text: str) -> bool:
    return parse_query(query).matches(text)


# --- structure -----------------------------------------------------------------------------------


def test_precedence_not_and_or() -> None:
    q = parse_query("a OR b AND NOT c")
    assert q.root == Or((w("a"), And((w("b"), Not(w("c"))))))


def test_implicit_and_is_and() -> None:
    assert parse_query("united baggage") == parse_query("united AND baggage")
    assert parse_query("a b OR c").root == Or((And((w("a"), w("b"))), w("c")))


def test_dash_is_not() -> None:
    assert parse_query("united -delta") == parse_query("united AND NOT delta")
    assert parse_query('united -"united nations"') == parse_query('united NOT "united nations"')
    assert parse_query("a -(b OR c)").root == And((w("a"), Not(Or((w("b"), w("c"))))))


def test_parentheses_override_precedence() -> None:
    assert parse_query("(a OR b) c").root == And((Or((w("a"), w("b"))), w("c")))
    assert parse_query("((a))") == parse_query("a")


def test_chains_are_flattened() -> None:
    assert parse_query("a AND (b AND c) d").root == And((w("a"), w("b"), w("c"), w("d")))
    assert parse_query("a OR (b OR c)").root == Or((w("a"), w("b"), w("c")))


def test_lower_case_keywords_are_words() -> None:
    assert parse_query("rock and roll").root == And((w("rock"), w("and"), w("roll")))


def test_terms_are_the_positive_ones() -> None:
    assert parse_query(UNITED).terms == ('"united airlines"', "@united", "#unitedairlines")
    assert parse_query("a -b NOT (c -d) a").terms == ("a", "d")


def test_str_is_normalised_and_round_trips() -> None:
    q = parse_query(UNITED)
    assert str(q) == '"united airlines" OR @united OR (#unitedairlines AND NOT "united nations")'
    assert parse_query("United  -Delta (A OR b)").__str__() == "united AND NOT delta AND (a OR b)"
    assert str(parse_query('"AND" "x \\" y"')) == 'and AND "x y"'
    for text in (UNITED, "a OR b c -(d OR e)", "NOT NOT x", "a -(b c)"):
        assert parse_query(str(parse_query(text))) == parse_query(text)


def test_query_pickles_through_its_string() -> None:
    q = parse_query(UNITED)
    assert pickle.loads(pickle.dumps(q)) == q


# --- matching ------------------------------------------------------------------------------------


def test_typical_brand_query() -> None:
    q = parse_query(UNITED)
    assert q.matches("United  Airlines lost my bag")
    assert q.matches("ugh @United, again!")
    assert q.matches("#UnitedAirlines never again")
    assert not q.matches("#UnitedAirlines at the United Nations")
    assert not q.matches("@united_help please")
    assert not q.matches("reunited with my bag")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("United!", True),
        ("UNITED", True),
        ("united's lounge", True),
        ("#united", True),
        ("@united", True),
        ("(united)", True),
        ("reunited", False),
        ("unitedairlines", False),
        ("united_airlines", False),
        ("disunited states", False),
    ],
)
def test_word_boundaries(text: str, expected: bool) -> None:
    assert matches("united", text) is expected


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ("@united", "hey @United!", True),
        ("@united", "hey united", False),
        ("@united", "hey #united", False),
        ("@united", "@united_help", False),
        ("@united", "mail me at ops@united.com", False),
        ("@united_help", "@United_Help", True),
        ("#united", "#United rocks", True),
        ("#united", "united rocks", False),
        ("#united", "@united rocks", False),
        ("#united", "#unitedairlines", False),
        ("#united", "issue#united", False),
    ],
)
def test_handles_and_hashtags(query: str, text: str, expected: bool) -> None:
    assert matches(query, text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("United Airlines", True),
        ("united  \n airlines", True),
        ("united-airlines", True),
        ("@united airlines", True),
        ("flew United, airlines suck", True),
        ("unitedairlines", False),
        ("airlines united", False),
        ("united states airlines", False),
    ],
)
def test_phrases(text: str, expected: bool) -> None:
    assert matches('"united airlines"', text) is expected


def test_phrase_with_handle_and_escaped_quote() -> None:
    assert matches('"@united help"', "@united help me")
    assert not matches('"@united help"', "united help me")
    assert matches('"say \\"hi\\""', "say hi")


def test_bare_word_with_punctuation_is_a_phrase() -> None:
    assert parse_query("e-mail").root == Term((("", "e"), ("", "mail")))
    assert matches("e-mail", "my E-Mail bounced")
    assert matches("e-mail", "e mail")
    assert not matches("e-mail", "email")


def test_boolean_matching() -> None:
    q = parse_query("united (baggage OR bag) -delta")
    assert q.matches("United lost my bag")
    assert q.matches("united baggage claim")
    assert not q.matches("united lost my bag, delta didn't")
    assert not q.matches("lost my bag")
    assert matches("NOT NOT united", "UNITED")


def test_unicode_case_and_accents() -> None:
    assert matches("café", "CAFÉ au lait")
    assert matches("café", "Café")
    assert matches("café", "cafe\u0301")  # decomposed accent
    assert not matches("cafe", "café")  # accents are significant
    assert not matches("café", "cafe")
    assert matches("straße", "STRASSE")  # ß casefolds to ss
    assert matches("strasse", "Straße")
    assert matches("istanbul", "İSTANBUL")  # Turkish dotted capital I
    assert matches("İstanbul", "istanbul")
    assert not matches("istanbul", "ıstanbul")  # dotless ı is its own letter
    assert matches("ﬁnance", "finance")  # NFKC ligature
    assert matches("＠united", "@united")  # NFKC full-width
    assert matches("हिन्दी", "मैं हिन्दी बोलता हूँ")
    assert not matches("हिन", "हिन्दी")  # combining marks belong to the word
    assert matches("münchen", "#MÜNCHEN")


@pytest.mark.parametrize(
    "text",
    [
        "İstanbul'da ıslak ışıklar İĞNE",
        "Grüße aus Köln – STRAẞE",
        "✈️🔥 united 😡 lost my 🧳",
        "👩‍👩‍👧 family ‍\u200d\ufe0f",
        "\ud800 lone surrogate",
        "مرحبا يونايتد",
        "我爱联合航空",
        "",
        "\x00\n\t",
    ],
)
def test_odd_text_never_crashes(text: str) -> None:
    parse_query(UNITED).matches(text)
    BrandMatcher([("u", parse_query("united"))]).match(text)


def test_emoji_text_still_matches() -> None:
    assert matches("united", "✈️🔥united😡")


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "position", "message"),
    [
        ('united "airlines', 7, "unclosed quote"),
        ('"a \\"', 0, "unclosed quote"),
        ("united OR", 9, "expected a term after OR"),
        ("united OR )", 10, "expected a term after OR"),
        ("a AND OR b", 6, "expected a term after AND"),
        ("a NOT", 5, "expected a term after NOT"),
        ("a -OR b", 3, "expected a term after '-'"),
        ("OR united", 0, "expected a term before OR"),
        ("(AND a)", 1, "expected a term before AND"),
        ("united)", 6, "unbalanced ')'"),
        (") united", 0, "unbalanced ')'"),
        ("(a OR b))", 8, "unbalanced ')'"),
        ("a (b OR c", 2, "unclosed '('"),
        ("a (", 2, "unclosed '('"),
        ("a () b", 2, "empty parentheses"),
        ("", 0, "empty query"),
        ("   ", 0, "empty query"),
        ("a - b", 2, "'-' must be followed directly"),
        ("a -", 2, "'-' must be followed directly"),
        ("a !!!", 2, "has no letters or digits"),
        ('a ""', 2, "phrase has no letters or digits"),
        ("@ a", 0, "handle '@' may only contain"),
        ("#foo.bar", 0, "hashtag '#foo.bar' may only contain"),
        ("(" * 40 + "a" + ")" * 40, 32, "nested too deeply"),
    ],
)
def test_error_positions(query: str, position: int, message: str) -> None:
    with pytest.raises(QueryError) as info:
        parse_query(query)
    assert info.value.position == position
    assert message in info.value.message
    assert message in str(info.value)
    assert info.value.query == query


@pytest.mark.parametrize(
    ("query", "position"),
    [
        ("NOT united", 0),
        ("-united", 0),
        ("-united -delta", 0),
        ("NOT (a AND NOT b)", 0),
        ("united OR NOT delta", 10),
        ("a OR (b OR -c)", 11),
    ],
)
def test_pure_negative_rejected(query: str, position: int) -> None:
    with pytest.raises(QueryError) as info:
        parse_query(query)
    assert "only NOT terms" in info.value.message
    assert info.value.position == position


def test_negation_with_positive_side_is_fine() -> None:
    assert parse_query("NOT NOT a").terms == ("a",)
    assert parse_query("NOT (NOT a OR b)").terms == ("a",)


# --- many brands ---------------------------------------------------------------------------------


def test_brand_matcher_returns_every_matching_brand_in_order() -> None:
    matcher = BrandMatcher(
        [
            ("united", parse_query(UNITED)),
            ("delta", parse_query('delta -"delta variant" OR @delta')),
            ("airlines", parse_query("airline OR airlines")),
            ("nasa", parse_query("nasa")),
        ]
    )
    assert matcher.match("United Airlines and @Delta both lost my bag") == [
        "united",
        "delta",
        "airlines",
    ]
    assert matcher.match("the delta variant") == []
    assert matcher.match("nothing here") == []
    assert matcher.match("NASA") == ["nasa"]


def test_brand_matcher_index_path() -> None:
    """Past ``BrandMatcher.FEW`` brands, candidates come from an index of first words."""
    filler = [(f"f{i}", parse_query(f'filler{i} OR "x{i} y"')) for i in range(BrandMatcher.FEW)]
    brands = [("united", parse_query(UNITED)), *filler, ("hindi", parse_query("हिन्दी"))]
    matcher = BrandMatcher(brands)
    assert matcher._index is not None
    assert matcher.match("United Airlines, x3 - y and FILLER5") == ["united", "f3", "f5"]
    assert matcher.match("मैं हिन्दी बोलता हूँ") == ["hindi"]
    assert matcher.match("nothing") == []


QUERIES = [UNITED, "a OR b -c", '"x y" z', "@u OR #t", "é OR #ß", '"a-b" (c OR d)']


@given(
    st.text(alphabet="abcdxyzuté@#ß -.\n", max_size=40),
    st.lists(st.sampled_from(QUERIES), max_size=14),
)
def test_brand_matcher_agrees_with_queries(text: str, queries: list[str]) -> None:
    brands = [(f"b{i}", parse_query(q)) for i, q in enumerate(queries)]
    expected = [key for key, q in brands if q.matches(text)]
    assert BrandMatcher(brands).match(text) == expected


# --- properties ----------------------------------------------------------------------------------

PIECES = [*'ab @#-()"\\', " ", "é", "İ", "ß", "AND", "OR", "NOT", " AND ", " OR ", " NOT "]
QUERYISH = st.lists(st.sampled_from(PIECES), max_size=20).map("".join)


@settings(max_examples=500)
@given(st.one_of(st.text(), QUERYISH), st.text())
def test_parse_raises_only_query_error_and_matches_never_raises(query: str, text: str) -> None:
    try:
        q = parse_query(query)
    except QueryError as error:
        assert 0 <= error.position <= len(query)
        return
    assert isinstance(q.matches(text), bool)
    assert parse_query(str(q)) == q  # str round-trips to an equivalent query
    assert str(parse_query(str(q))) == str(q)


WORDS = st.text(st.characters(categories=["L", "N", "M"]), min_size=1, max_size=8)


@given(st.lists(WORDS, min_size=1, max_size=4), st.text(max_size=10), st.text(max_size=10))
def test_a_phrase_matches_itself_in_any_text(words: list[str], before: str, after: str) -> None:
    phrase = " ".join(words)
    try:
        q = parse_query('"' + phrase.replace("\\", "\\\\").replace('"', '\\"') + '"')
    except QueryError:
        return  # e.g. a word made only of combining marks has no letters to match
    # not .upper(): "ı".upper() is "I", which is a different letter from "ı" once case-folded
    assert q.matches(f"{before} {phrase} {after}")
    assert q.matches(f"{before} {phrase.casefold()} {after}")
