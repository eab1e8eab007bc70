"""Uproar brand queries turned into what a plain search API understands.

A brand query (``"united airlines" OR @united OR (#unitedairlines AND NOT strike)``) is parsed
here with the same surface syntax as ``monitor.brands.query`` (which connectors must not import):
words, quoted phrases (``\\"`` escapes a quote), ``@handles``, ``#hashtags``, upper-case ``AND``
/ ``OR`` / ``NOT``, ``-term`` for ``NOT term``, parentheses, implicit AND between adjacent terms,
precedence NOT > AND > OR.

:func:`or_groups` rewrites the query as an OR of AND-groups of positive terms (disjunctive normal
form) and *drops every negation*: ``a AND NOT b`` searches for ``a``. Dropping a negation only
widens a search, and the pipeline matches the exact brand query afterwards, so a search built
from the groups over-fetches but never misses a mention the query would match. A query whose
normal form would have more than :data:`MAX_GROUPS` groups falls back to one group per positive
term (still complete, just wider). A branch with no positive term at all (``a OR NOT b``, which
``uproar check-config`` rejects) cannot be searched and is left out.

Each connector renders the groups in its API's syntax with :meth:`Term.plain` or
:meth:`Term.quoted`, e.g. one request per group for APIs without ``OR``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import product

__all__ = ["MAX_GROUPS", "Term", "hashtags", "or_groups", "search_texts"]

# A query like (a OR b) AND (c OR d) AND ... multiplies out; past this many groups one request
# per group is wasteful and the per-term fallback is both shorter and complete.
MAX_GROUPS = 12
# Parentheses and NOTs nested deeper than this are ignored (the config checker rejects them).
_MAX_DEPTH = 32


@dataclass(frozen=True, slots=True)
class Term:
    """A positive search term: ``kind`` is ``word``, ``phrase``, ``handle`` or ``hashtag``;
    ``text`` is without quotes, ``@`` or ``#`` (a phrase's words single-spaced)."""

    kind: str
    text: str

    def plain(self) -> str:
        """For APIs without handles or hashtags: ``@united`` and ``#united`` become ``united``;
        phrases are quoted."""
        return f'"{self.text}"' if self.kind == "phrase" else self.text

    def quoted(self) -> str:
        """The term as written in the query: ``"united airlines"``, ``@united``, ``#united``."""
        prefix = {"handle": "@", "hashtag": "#"}.get(self.kind, "")
        return f'"{self.text}"' if self.kind == "phrase" else prefix + self.text


Group = tuple[Term, ...]

_LEXEME = re.compile(r"""\s*(?:
    (?P<neg>-?)"(?P<phrase>(?:\\.|[^"\\])*)"?   # a quoted phrase, maybe negated
  | (?P<open>-?\()
  | (?P<close>\))
  | (?P<word>[^\s()"]+)
)""", re.VERBOSE)


def _lex(query: str) -> list[str | Term]:
    """Operators as strings (``AND OR NOT ( )``; ``-`` becomes ``NOT``), terms as :class:`Term`."""
    tokens: list[str | Term] = []
    pos = 0
    while (match := _LEXEME.match(query, pos)) is not None and match.end() > pos:
        pos = match.end()
        if match["phrase"] is not None:
            if match["neg"]:
                tokens.append("NOT")
            words = re.sub(r"\\(.)", r"\1", match["phrase"]).replace('"', " ").split()
            if len(words) == 1:
                tokens.append(_term(words[0]))
            elif words:
                tokens.append(Term("phrase", " ".join(words)))
        elif match["open"]:
            tokens.extend(["NOT", "("] if match["open"] == "-(" else ["("])
        elif match["close"]:
            tokens.append(")")
        else:
            word = match["word"]
            if word in ("AND", "OR", "NOT"):
                tokens.append(word)
            elif word.startswith("-") and len(word) > 1:
                tokens.extend(["NOT", _term(word[1:])])
            elif word != "-":
                tokens.append(_term(word))
    return tokens


def _term(word: str) -> Term:
    if len(word) > 1 and word[0] in "@#":
        return Term("handle" if word[0] == "@" else "hashtag", word[1:])
    return Term("word", word)


# A tiny tree: ("term", Term) | ("not", node) | ("and", [nodes]) | ("or", [nodes]).
_Node = tuple[str, object]


class _Parser:
    """Recursive descent, lenient: stray operators and unbalanced parentheses are skipped."""

    def __init__(self, tokens: list[str | Term]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> str | Term | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def parse(self) -> _Node | None:
        nodes = []
        while self.peek() is not None:
            node = self.or_expr(0)
            if node is not None:
                nodes.append(node)
            if self.peek() is not None:
                self.pos += 1  # a stray ")" at top level
        return None if not nodes else nodes[0] if len(nodes) == 1 else ("or", nodes)

    def or_expr(self, depth: int) -> _Node | None:
        branches = []
        while True:
            node = self.and_expr(depth)
            if node is not None:
                branches.append(node)
            if self.peek() == "OR":
                self.pos += 1
                continue
            break
        return None if not branches else branches[0] if len(branches) == 1 else ("or", branches)

    def and_expr(self, depth: int) -> _Node | None:
        parts = []
        while (token := self.peek()) is not None and token not in ("OR", ")"):
            if token == "AND":
                self.pos += 1
                continue
            node = self.unary(depth)
            if node is not None:
                parts.append(node)
        return None if not parts else parts[0] if len(parts) == 1 else ("and", parts)

    def unary(self, depth: int) -> _Node | None:
        token = self.peek()
        self.pos += 1
        if token == "NOT":
            nxt = self.peek()
            if nxt is None or nxt in ("OR", ")", "AND"):
                return None
            inner = self.unary(depth + 1)
            return None if inner is None or depth >= _MAX_DEPTH else ("not", inner)
        if token == "(":
            inner = self.or_expr(depth + 1)
            if self.peek() == ")":
                self.pos += 1
            return inner if depth < _MAX_DEPTH else None
        return ("term", token) if isinstance(token, Term) else None


def _dnf(node: _Node, negated: bool = False) -> list[frozenset[Term]]:
    """The AND-groups of positive terms whose OR covers ``node`` (negations pushed down with
    De Morgan and then dropped: a negated term constrains nothing, the empty group)."""
    kind, value = node
    if kind == "term":
        return [frozenset()] if negated else [frozenset({value})]  # type: ignore[arg-type]
    if kind == "not":
        return _dnf(value, not negated)  # type: ignore[arg-type]
    children: list[_Node] = value  # type: ignore[assignment]
    is_or = (kind == "or") != negated
    if is_or:
        return [g for child in children for g in _dnf(child, negated)]
    groups = [frozenset[Term]()]
    for child in children:
        child_groups = _dnf(child, negated)
        groups = [a | b for a, b in product(groups, child_groups)]
        if len(groups) > MAX_GROUPS * 8:  # keep the product bounded: one group per term
            return [frozenset({t}) for t in _positive_terms(node, negated)]
    return groups


def _positive_terms(node: _Node, negated: bool = False) -> list[Term]:
    kind, value = node
    if kind == "term":
        return [] if negated else [value]  # type: ignore[list-item]
    if kind == "not":
        return _positive_terms(value, not negated)  # type: ignore[arg-type]
    return [t for child in value for t in _positive_terms(child, negated)]  # type: ignore[attr-defined]


def or_groups(query: str) -> list[Group]:
    """The query as OR-ed AND-groups of positive terms, in query order, without repeats or
    groups implied by a smaller one (``a OR (a AND b)`` is just ``a``)."""
    tree = _Parser(_lex(query)).parse()
    if tree is None:
        return []
    order = {term: i for i, term in reversed(list(enumerate(_positive_terms(tree))))}
    groups = {g for g in _dnf(tree) if g}
    minimal = [g for g in groups if not any(other < g for other in groups)]
    if len(minimal) > MAX_GROUPS:
        minimal = [frozenset({t}) for t in {t for g in minimal for t in g}]
    ordered = [tuple(sorted(g, key=order.__getitem__)) for g in minimal]
    return sorted(ordered, key=lambda g: [order[t] for t in g])


def search_texts(query: str, *, keep_tags: bool = False, keep_handles: bool = False) -> list[str]:
    """One search string per OR-group: the group's terms space-separated (implicit AND in
    nearly every search API), phrases quoted; ``@``/``#`` kept only when asked for. Repeats
    (``@united OR united`` without handles) are dropped."""
    texts: dict[str, None] = {}
    for group in or_groups(query):
        words = []
        for term in group:
            keep = (term.kind == "hashtag" and keep_tags) or (term.kind == "handle"
                                                               and keep_handles)
            words.append(term.quoted() if keep else term.plain())
        texts.setdefault(" ".join(dict.fromkeys(words)), None)
    return list(texts)


def hashtags(query: str) -> list[str]:
    """The hashtags (without ``#``) that appear as positive terms of the query."""
    tree = _Parser(_lex(query)).parse()
    if tree is None:
        return []
    tags = (t.text for t in _positive_terms(tree) if t.kind == "hashtag")
    return list(dict.fromkeys(tags))
