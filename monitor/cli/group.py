"""``uproar group``: mentions in, the story each joins out — the daemon's own story stage.

Every input line (a mention in DESIGN.md's JSON shape, in time order) is taken as a complaint of
one brand and goes through :class:`monitor.detect.stage.StoryStage` exactly as the daemon's
pipeline sends its complaints (same tracker, same topic embeddings, same settings). One JSON line
is written per input line, streaming: ``{"source_id": "…", "story": 12, "title": "…"}``. When a
line makes two open stories one, its output also has ``"merged": [ids]``: those stories now
resolve to ``story``. A line that is not a mention gets ``"story": null`` and an ``"error"``,
with a warning on stderr naming the line; nothing before or after it is lost.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator
from typing import IO, Any

import click

from connectors.base import Mention

# Lines embedded together when reading a file (a pipe is answered line by line).
FILE_BATCH = 256
BRAND = "brand"


def _is_regular_file(stream: IO[str]) -> bool:
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):
        return False


def _parse(line: str) -> Mention:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object (a mention)")
    return Mention.from_json(data)


def _batches(source: IO[str], size: int) -> Iterator[list[tuple[int, str]]]:
    batch: list[tuple[int, str]] = []
    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        batch.append((number, line))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def run_group(
    source: IO[str],
    sink: IO[str],
    *,
    brand_name: str | None = None,
    similarity: float | None = None,
    embed: Any = None,
    progress: Any = None,
) -> int:
    """Group every mention of ``source`` into stories, writing one JSON line per mention.

    ``similarity``: the join threshold (default: the daemon's, ``detection.story_similarity``);
    ``embed``: texts -> vectors instead of the topic embedder (benchmarks reuse vectors).
    """
    from monitor.detect.phrases import brand_words
    from monitor.detect.stage import build_story_stage
    from monitor.detect.topic import topic_embedder, without_brand
    from monitor.pipeline import example_of

    stage = build_story_stage(
        engine=None, classifier=None, embed=embed or topic_embedder(), example_of=example_of,
        complaint_threshold=0.0, brand_names={BRAND: brand_name or ""},
        story_similarity=similarity,
    )
    name_words = brand_words(brand_name or "")
    next_id = 1
    written = 0
    size = FILE_BATCH if _is_regular_file(source) else 1
    for batch in _batches(source, size):
        parsed: list[tuple[int, Mention | str]] = []
        for number, line in batch:
            try:
                parsed.append((number, _parse(line)))
            except ValueError as exc:
                print(f"uproar group: line {number}: {exc}; skipped", file=sys.stderr)
                parsed.append((number, str(exc)))
        good = [m for _, m in parsed if isinstance(m, Mention)]
        texts = [m.text for m in good]
        if brand_name:
            texts = [without_brand(t, name_words) for t in texts]
        vectors = stage.embed_texts(texts)
        k = 0
        for _number, item in parsed:
            if not isinstance(item, Mention):
                sink.write(json.dumps({"source_id": None, "story": None, "title": None,
                                       "error": item}) + "\n")
                written += 1
                continue
            vec = vectors[k] if vectors is not None else None
            k += 1
            assigned = stage.assign_one(item, BRAND, vec)
            story = assigned.story
            if story.id is None:
                story.id, next_id = next_id, next_id + 1
            out: dict[str, Any] = {"source_id": item.source_id, "story": story.id,
                                   "title": story.title}
            if assigned.merged:
                out["merged"] = [s.id for s in assigned.merged]
            sink.write(json.dumps(out, ensure_ascii=False) + "\n")
            written += 1
        stage.tracker.take_dirty()  # nothing to save here; keeps merged stories from piling up
        if progress is not None:
            progress.update(len(batch))
        sink.flush()
    return written


@click.command(
    "group",
    epilog="""\b
Examples:
  uproar group --input mentions.jsonl > stories.jsonl
  uproar poll --source rss --dry-run | uproar group
""",
)
@click.option("-i", "--input", "input_", type=click.File("r"), default="-", show_default=True,
              help="Mentions as JSON lines (DESIGN.md shape), in time order; '-' is stdin.")
@click.option("--brand-name", default=None,
              help="The brand's name, as in the config: its words are left out when comparing "
              "posts, as the daemon does (default: none, nothing is left out).")
@click.option("--similarity", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Join threshold (default: the daemon's detection.story_similarity default).")
@click.option("--progress/--no-progress", default=None,
              help="A progress bar on stderr (default: when reading a file on a terminal).")
def group(
    input_: IO[str], brand_name: str | None, similarity: float | None, progress: bool | None
) -> None:
    """Group mentions into stories with the daemon's own story stage, as one brand's
    complaints: writes {"source_id", "story", "title"} per input line, streaming.
    """
    show = progress if progress is not None else (
        _is_regular_file(input_) and sys.stderr.isatty())
    try:
        if show:
            with open(input_.name, encoding="utf-8") as counted:
                total = sum(1 for line in counted if line.strip())
            with click.progressbar(length=total, label="grouping", file=sys.stderr) as bar:
                run_group(input_, sys.stdout, brand_name=brand_name, similarity=similarity,
                          progress=bar)
        else:
            run_group(input_, sys.stdout, brand_name=brand_name, similarity=similarity)
    except BrokenPipeError:
        sys.stderr.close()


if __name__ == "__main__":
    group()
