"""connectors.querytext: brand queries as OR-groups of positive terms for search APIs."""

from __future__ import annotations

import random

import pytest

from connectors.querytext import hashtags, or_groups, search_texts
from monitor.brands.query import parse_query
from monitor.errors import QueryError


def groups(query: str) -> list[list[str]]:
    return [[t.quoted() for t in g] for g in or_groups(query)]


@pytest.mark.parametrize(("query", "expected"), [
    ('"united airlines" OR @united OR (#x AND NOT y)',
     [['"united airlines"'], ["@united"], ["#x"]]),
    ("united AND (guitar OR guitars)", [["united", "guitar"], ["united", "guitars"]]),
    ("united baggage -lost", [["united", "baggage"]]),
    ("a OR (a AND b)", [["a"]]),
    ("NOT (NOT a OR b) c", [["a", "c"]]),  # De Morgan: NOT NOT a is a
    ("a -(b OR c)", [["a"]]),
    ('"say \\"hi\\" now"', [['"say hi now"']]),
    ('"one"', [["one"]]),
    ("a OR NOT b", [["a"]]),  # the unsearchable branch is left out
    ("", []),
    ("OR AND (", []),
])
def test_or_groups(query: str, expected: list[list[str]]) -> None:
    assert groups(query) == expected


def test_many_groups_fall_back_to_one_group_per_term() -> None:
    query = "(a OR b) AND (c OR d) AND (e OR f) AND (g OR h)"  # 16 groups multiplied out
    assert groups(query) == [[t] for t in "abcdefgh"]


def test_search_texts_and_hashtags() -> None:
    query = '"united airlines" OR @united OR #UnitedAirlines OR united'
    assert search_texts(query) == ['"united airlines"', "united", "UnitedAirlines"]
    assert search_texts(query, keep_tags=True, keep_handles=True) == [
        '"united airlines"', "@united", "#UnitedAirlines", "united"]
    assert hashtags(query + " OR (#delta AND NOT #x)") == ["UnitedAirlines", "delta"]


WORDS = ["a", "b", "c", "d", "@a", "#b", '"a b"', '"c d"']


def _random_query(rng: random.Random, depth: int = 0) -> str:
    roll = rng.random()
    if depth > 2 or roll < 0.35:
        return rng.choice(WORDS)
    if roll < 0.45:
        return "NOT " + _random_query(rng, depth + 1)
    op = rng.choice([" AND ", " OR ", " "])
    parts = [_random_query(rng, depth + 1) for _ in range(rng.randint(2, 3))]
    return "(" + op.join(parts) + ")"


def test_groups_are_complete_for_the_brand_matcher() -> None:
    """Whatever text the exact brand query matches contains every term of some group, so a
    search built from the groups never misses a mention (fuzzed against monitor.brands.query)."""
    rng = random.Random(20240110)
    vocabulary = ["a", "b", "c", "d", "@a", "#b", "e"]
    checked = 0
    for _ in range(400):
        query = _random_query(rng)
        try:
            exact = parse_query(query)
        except QueryError:
            continue  # rejected by check-config (e.g. a query that is only a negation)
        found = or_groups(query)
        for _ in range(25):
            text = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(1, 6)))
            if exact.matches(text):
                checked += 1
                assert any(all(parse_query(t.quoted()).matches(text) for t in g)
                           for g in found), (query, text, groups(query))
    assert checked > 500
