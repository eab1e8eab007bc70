"""`uproar classify` reads text and nothing else: binary input is refused in one line, blank
lines are skipped, a JSON line without "text" is named, an overlong text is cut with a note,
and an empty input says so. Results already written stay written."""

from __future__ import annotations

import json
import random
from pathlib import Path

from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.cli.classify_input import MAX_TEXT_CHARS

COMPLAINT = "@united you broke my guitar and nobody at the desk cares, worst airline ever"
HAPPY = "Lovely crew on my flight to Denver today, thank you!"


def classify(path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["classify", "--input", str(path), *args])


def results(result: Result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_an_empty_input_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    result = classify(empty)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"uproar: error: {empty}: no text to classify: the input is empty" in result.output
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n\n")
    assert "holds only 3 blank lines" in classify(blank).output


def test_binary_input_is_refused_in_one_line(tmp_path: Path) -> None:
    data = tmp_path / "blob.bin"
    data.write_bytes(random.Random(15).randbytes(20_000))  # 20 KB of binary, as in the issue
    result = classify(data)
    assert result.exit_code == 1
    assert result.stdout == ""  # not one "result" for it
    [line] = result.output.splitlines()
    assert line.startswith(f"uproar: error: {data}:1: ")
    assert "not text" in line or "not UTF-8" in line


def test_latin1_and_nul_lines_are_named(tmp_path: Path) -> None:
    latin = tmp_path / "latin.txt"
    latin.write_bytes(f"{HAPPY}\n".encode() + "caf\xe9 awful\n".encode("latin-1"))
    result = classify(latin)
    assert result.exit_code == 1
    assert len(results(result)) == 1  # the line before it was classified and written
    assert f"{latin}:2: not UTF-8 text (byte 0xe9 at column 4)" in result.output
    nul = tmp_path / "nul.txt"
    nul.write_bytes(b"hello\x00world\n")
    assert f"{nul}:1: binary data (a NUL byte at column 6)" in classify(nul).output


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_text(f"\n{COMPLAINT}\n\n   \n{HAPPY}\n\n")
    result = classify(path)
    assert result.exit_code == 0, result.output
    rows = results(result)
    assert [r["sentiment"] for r in rows] == ["negative", "positive"]


def test_a_json_line_without_text_is_named(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"text": COMPLAINT}) + "\n" + json.dumps({"txt": HAPPY}) + "\n")
    result = classify(path)
    assert result.exit_code == 1
    assert len(results(result)) == 1
    assert (f'uproar: error: {path}:2: a JSON object with no "text" key (its keys: txt)'
            in result.output)


def test_a_huge_line_is_cut_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    word = "the airline lost my bag again "
    path.write_text(word * (5_000_000 // len(word)) + "\n" + HAPPY + "\n")
    result = classify(path)
    assert result.exit_code == 0, result.output
    rows = results(result)
    assert len(rows) == 2 and rows[1]["sentiment"] == "positive"
    assert f"{path}:1: a line of 4,999,980 bytes: only its first 1,048,576 are read" in (
        result.output)
    assert f"cut to its first {MAX_TEXT_CHARS:,} (the model reads only a text's start)" in (
        result.output)
    # Cutting changes nothing the model sees: the same as the text's start alone.
    start = tmp_path / "start.txt"
    start.write_text((word * (5_000_000 // len(word)))[:MAX_TEXT_CHARS] + "\n")
    assert results(classify(start))[0] == rows[0]
