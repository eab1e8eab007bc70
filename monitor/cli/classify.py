"""``uproar classify`` and ``uproar train``: the classifier on the command line.

``classify`` streams: a reader thread feeds lines into a queue and each batch takes whatever has
arrived (at least one line, at most ``BATCH_LINES``), so the first result appears as soon as the
model is loaded and a full pipe is still classified in large, length-sorted batches.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import click

from models.base import Classifier, ModelError
from models.language import detect_language
from monitor.cli.classify_input import Note, input_lines, input_name, parse_line

__all__ = ["classify", "parse_line", "read_batches", "train"]

BATCH_LINES = 1024  # lines per classify call: long runs sort well by length, yet output streams
FIRST_BATCH_LINES = 32  # the first calls are smaller (32, 64, ...) so output starts at once
DEFAULT_DATA = Path("../shared/data")
_EOF = object()


def read_batches(
    source: Iterable[tuple[str, str]], max_lines: int = BATCH_LINES, note: Note | None = None
) -> Iterator[list[str]]:
    """Yield lists of texts as ``(where, line)`` pairs arrive: never waits for more than one.

    Batch limits double from FIRST_BATCH_LINES up to ``max_lines``, so the first results are
    written quickly and later batches are large enough to classify efficiently.
    """
    lines: queue.Queue[object] = queue.Queue(maxsize=4 * max_lines)
    failure: list[BaseException] = []

    def pump() -> None:
        try:
            for where, line in source:  # parsed here: a bad line stops after those before it
                lines.put(parse_line(line, where, note))
        except BaseException as e:
            failure.append(e)
        finally:
            lines.put(_EOF)

    threading.Thread(target=pump, name="uproar-classify-reader", daemon=True).start()
    done = False
    limit = min(FIRST_BATCH_LINES, max_lines)
    while not done:
        item = lines.get()
        if item is _EOF:
            break
        batch = [str(item)]
        while len(batch) < limit:
            try:
                item = lines.get_nowait()
            except queue.Empty:
                break
            if item is _EOF:
                done = True
                break
            batch.append(str(item))
        yield batch
        limit = min(2 * limit, max_lines)
    if failure:
        raise failure[0]


@click.command(
    epilog="""\b
Examples:
  echo "@united you broke my guitar and nobody cares" | uproar classify
  uproar classify --input mentions.jsonl --model cardiffnlp/twitter-roberta-base-sentiment-latest
  uproar classify -i labelled.jsonl -m default -m ./my-model    # compare two models
\b
Output, one line per input line:
  {"sentiment": "negative", "scores": {"negative": 0.93, "neutral": 0.05, "positive": 0.02},
   "complaint": 0.88}"""
)
@click.option(
    "--model",
    "-m",
    "models",
    multiple=True,
    default=("default",),
    show_default=True,
    help="'default' (bundled MiniLM), a folder written by 'uproar train', or a Hugging Face "
    "text-classification model id/folder available offline. Repeat to compare models on the "
    "same input: each line then holds every model's result, and a comparison table (speed, "
    "agreement, and accuracy when JSONL lines carry \"sentiment\"/\"complaint\" labels) goes "
    "to stderr.",
)
@click.option(
    "--input",
    "-i",
    "source",
    type=click.File("rb"),
    default="-",
    show_default=True,
    help="Text per line, or JSONL with a \"text\" key ('-' = stdin).",
)
@click.option(
    "--all-languages",
    is_flag=True,
    help="Score every line with the model. By default a line that is not English (guessed "
    "offline by script and function words) is left unclassified, as the daemon does: "
    "{\"unclassified\": \"not English\", \"lang\": \"fr\"}. Use it with a multilingual "
    "--model.",
)
@click.option(
    "--batch-size",
    default=64,
    show_default=True,
    type=click.IntRange(1, 4096),
    help="Texts per model forward pass.",
)
def classify(
    models: tuple[str, ...], source: IO[bytes], all_languages: bool, batch_size: int
) -> None:
    """Classify texts: sentiment (negative/neutral/positive), complaint probability and
    complaint severity.

    Reads UTF-8 text, one text per line (a line that is a JSON object counts as its "text"),
    writes one JSON object per text, in order, as soon as each batch is done. Blank lines are
    skipped; binary input, or a JSON line without "text", stops with a one-line error naming
    the line (results already written stay); a text longer than the model reads is cut, with
    a note on stderr; an input without any text is an error.
    Each object: {"sentiment": "negative", "scores": {...}, "complaint": 0.97, "severity": 3}.
    Severity is 0 (not a complaint, below complaint 0.5), then 1 no explicit reproach,
    2 disapproval, 3 accusation, 4 blame; models without a severity head leave it out.

    \b
    Example:
      echo "@larkspurair pay for the cello you broke!" | uproar classify
    """
    from models.loader import load_classifier

    lines = input_lines(source, input_name(source), _note)
    if len(models) > 1:
        from monitor.cli.compare import compare_models

        compare_models(models, lines, batch_size)
        return
    try:
        classifier = load_classifier(models[0], batch_size=batch_size)
    except ModelError:
        raise  # the uproar group prints it as one line
    for batch in read_batches(lines, note=_note):
        click.echo("".join(json.dumps(r) + "\n" for r in _classify_batch(
            classifier, batch, all_languages)), nl=False)


def _note(message: str) -> None:
    click.echo(f"uproar: note: {message}", err=True)


def _classify_batch(
    classifier: Classifier, batch: list[str], all_languages: bool
) -> list[dict[str, object]]:
    """Each text's result; non-English texts unclassified unless ``all_languages``."""
    langs = [None if all_languages else detect_language(t) for t in batch]
    english = [i for i, lang in enumerate(langs) if lang in (None, "en")]
    out: list[dict[str, object]] = [
        {"sentiment": None, "scores": None, "complaint": None, "severity": None, "lang": lang,
         "unclassified": "not English"}
        for lang in langs
    ]
    for i, result in zip(english, classifier.classify([batch[i] for i in english]), strict=True):
        out[i] = result.to_json()
    return out


@click.command(
    epilog="""\b
Example:
  uproar train --data ../shared/data --output models/bundled
  uproar classify --model models/bundled < tweets.txt"""
)
@click.option(
    "--data",
    "data_dir",
    default=DEFAULT_DATA,
    envvar="UPROAR_DATA",
    show_default=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder with sentiment/semeval2013-2016.csv, complaints/train.csv and "
    "stories/news_headlines_dev.csv (news headlines: the complaint head's hard negatives) "
    "(or set UPROAR_DATA).",
)
@click.option(
    "--output",
    "out_dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write meta.json and heads.npz  [default: the bundled model, models/bundled].",
)
def train(data_dir: Path, out_dir: Path | None) -> None:
    """Train the default classifier (the recipe in models/train.py) and print its scores.

    When the recipe fine-tunes MiniLM-L6's layers, that runs first on the SemEval train split
    (minutes with bf16 on an AVX-512 BF16 CPU, about an hour without); then the heads are
    fitted. Sentiment is scored on the dev split (macro recall, %); complaint and severity by
    5-fold cross-validation (macro-F1; headlines called complaints with whole stories held
    out), then fitted on all rows. Fine-tuned layers and embeddings are
    cached in ~/.cache/uproar, so a second run takes about a minute.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from rich.table import Table

    from models.minilm import BUNDLED_DIR
    from models.train import train as run_training

    target = out_dir or BUNDLED_DIR
    console = Console(stderr=True)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        tasks: dict[str, object] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)  # type: ignore[arg-type]

        try:
            scores = run_training(data_dir, target, progress)
        except (OSError, KeyError, ValueError) as e:
            raise ModelError(f"cannot train from {data_dir}: {e}") from e
    table = Table(title=f"uproar-minilm written to {target}")
    table.add_column("score")
    table.add_column("value", justify="right")
    for key, value in scores.items():
        table.add_row(key, f"{value}")
    Console().print(table)


# `python -m monitor.cli.classify classify ...` works without the installed console script.
if __name__ == "__main__":
    click.Group(commands=[classify, train])()
