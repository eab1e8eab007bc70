"""``uproar group``: the daemon's story stage over mentions from a file or stdin, streaming.

``tests/data/headlines_sample.jsonl`` holds 30 real headlines from
``../shared/data/stories/news_headlines_dev.csv`` (UCI News Aggregator, CC BY 4.0): six each of
five stories (a Metro-North worker killed, SAC Capital renamed Point72, elephants telling voices
apart, George Zimmerman at a gun show, volcanoes sheltering life in ice ages), re-timed one minute
apart and interleaved, so only the words tell the stories apart. The known answer: five stories.
"""

from __future__ import annotations

import json

from click.testing import CliRunner

from monitor.cli import cli
from tests.paths import DATA

SAMPLE = DATA / "headlines_sample.jsonl"


def _lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_group_finds_the_five_stories_of_a_real_sample() -> None:
    mentions = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    result = CliRunner().invoke(cli, ["group", "--input", str(SAMPLE)])
    assert result.exit_code == 0, result.output
    out = _lines(result.output)
    assert [o["source_id"] for o in out] == [m["source_id"] for m in mentions]  # one per line
    truth = [i % 5 for i in range(len(mentions))]  # interleaved: story = position mod 5
    story_of: dict[int, set[object]] = {}
    for answer, line in zip(truth, out, strict=True):
        story_of.setdefault(answer, set()).add(line["story"])
    assert all(len(ids) == 1 for ids in story_of.values()), story_of  # no story split
    assert len({next(iter(ids)) for ids in story_of.values()}) == 5  # none merged
    # titles are the first headline's own words, and stay put
    titles = {o["story"]: o["title"] for o in out}
    assert titles[out[0]["story"]] == "Metro-North Worked Killed in Harlem"
    assert titles[out[4]["story"]] == "Volcano heat, steam helped species survive ice ages: study"


def test_group_reads_stdin_and_a_bad_line_loses_nothing() -> None:
    lines = SAMPLE.read_text().splitlines()[:6]
    lines.insert(3, '{"source": "rss", "text": "no id"')
    result = CliRunner().invoke(cli, ["group", "--input", "-"], input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    out = _lines(result.stdout)
    assert len(out) == 7
    assert out[3]["story"] is None and "not JSON" in str(out[3]["error"])
    assert "line 4: not JSON" in result.stderr
    assert [o["source_id"] for o in out if o["story"] is not None] == [
        json.loads(line)["source_id"] for line in lines if line.endswith("}")
    ]


def test_group_help_shows_an_example() -> None:
    result = CliRunner().invoke(cli, ["group", "--help"])
    assert result.exit_code == 0 and "uproar group --input mentions.jsonl" in result.output
