"""``uproar classify -m A -m B``: several models on the same input, side by side.

Every model classifies every line; stdout gets one JSON object per line with each model's
result, stderr a table: texts/s, how often each model agrees with the first one, how many
complaints it finds, and — when the input lines are JSON objects carrying ``"sentiment"``
(negative/neutral/positive) and/or ``"complaint"`` (0/1) labels — sentiment macro-recall and
complaint macro-F1.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

import click

from models.base import SENTIMENTS, Classification, Classifier


def _labels(where: str, line: str) -> tuple[str, str | None, int | None]:
    """(text, gold sentiment, gold complaint) of an input line."""
    from monitor.cli.classify_input import parse_line

    text = parse_line(line, where)
    sentiment: str | None = None
    complaint: int | None = None
    if line.lstrip().startswith("{"):
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            if obj.get("sentiment") in SENTIMENTS:
                sentiment = obj["sentiment"]
            if obj.get("complaint") in (0, 1, "0", "1", True, False):
                complaint = int(obj["complaint"])
    return text, sentiment, complaint


def _macro_recall(gold: Sequence[str], pred: Sequence[str]) -> float | None:
    recalls = []
    for label in SENTIMENTS:
        rows = [p for g, p in zip(gold, pred, strict=True) if g == label]
        if rows:
            recalls.append(sum(p == label for p in rows) / len(rows))
    return 100 * sum(recalls) / len(recalls) if recalls else None


def _macro_f1(gold: Sequence[int], pred: Sequence[int]) -> float | None:
    if not gold:
        return None
    f1s = []
    for positive in (0, 1):
        tp = sum(g == positive and p == positive for g, p in zip(gold, pred, strict=True))
        fp = sum(g != positive and p == positive for g, p in zip(gold, pred, strict=True))
        fn = sum(g == positive and p != positive for g, p in zip(gold, pred, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(f1s) / 2


def compare_models(
    specs: Sequence[str], lines: Iterable[tuple[str, str]], batch_size: int
) -> None:
    """``lines``: ``(where, line)`` pairs, checked (``monitor.cli.classify_input.input_lines``)."""
    from models.loader import load_classifier

    models: list[Classifier] = [load_classifier(s, batch_size=batch_size) for s in specs]
    rows = [_labels(where, line) for where, line in lines]
    texts = [r[0] for r in rows]
    results: list[list[Classification]] = []
    seconds: list[float] = []
    with click.progressbar(models, label="classifying", file=sys.stderr, show_pos=True) as bar:
        for model in bar:
            began = time.perf_counter()
            results.append(model.classify(texts) if texts else [])
            seconds.append(time.perf_counter() - began)
    out = sys.stdout
    for i, text in enumerate(texts):
        line: dict[str, Any] = {"text": text}
        line["models"] = {spec: results[m][i].to_json() for m, spec in enumerate(specs)}
        out.write(json.dumps(line) + "\n")
    _table(specs, rows, results, seconds)


def _table(
    specs: Sequence[str],
    rows: Sequence[tuple[str, str | None, int | None]],
    results: Sequence[Sequence[Classification]],
    seconds: Sequence[float],
) -> None:
    from rich.console import Console
    from rich.table import Table

    gold_sent = [(i, r[1]) for i, r in enumerate(rows) if r[1] is not None]
    gold_comp = [(i, r[2]) for i, r in enumerate(rows) if r[2] is not None]
    table = Table(title=f"{len(rows)} texts")
    for column in ("model", "texts/s", "agrees with 1st", "complaints ≥ 0.5"):
        table.add_column(column, justify="right" if column != "model" else "left")
    if gold_sent:
        table.add_column(f"sentiment macro-recall ({len(gold_sent)})", justify="right")
    if gold_comp:
        table.add_column(f"complaint macro-F1 ({len(gold_comp)})", justify="right")
    first = results[0]
    for spec, found, took in zip(specs, results, seconds, strict=True):
        agree = sum(a.sentiment == b.sentiment for a, b in zip(first, found, strict=True))
        cells = [
            spec,
            f"{len(found) / took:,.0f}" if took > 0 and found else "-",
            f"{100 * agree / len(found):.1f}%" if found else "-",
            f"{sum(c.complaint >= 0.5 for c in found):,}",
        ]
        if gold_sent:
            score = _macro_recall(
                [g for _, g in gold_sent], [found[i].sentiment for i, _ in gold_sent]
            )
            cells.append(f"{score:.1f}" if score is not None else "-")
        if gold_comp:
            f1 = _macro_f1(
                [g for _, g in gold_comp], [int(found[i].complaint >= 0.5) for i, _ in gold_comp]
            )
            cells.append(f"{f1:.3f}" if f1 is not None else "-")
        table.add_row(*cells)
    console = Console(stderr=True)
    if not console.is_terminal:  # a log file or a pipe: do not wrap the headers at 80 columns
        console = Console(stderr=True, width=160)
    console.print(table)
