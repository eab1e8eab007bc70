"""Randomly mutated configs: `uproar check-config` answers with clear one-line problems (or a
summary), never a traceback. Mutations start from the shipped, commented config.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.cli import cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "config.yaml").read_text()
LINES = EXAMPLE.splitlines()
# A problem line longer than this is not "one clear line" any more.
MAX_LINE = 400

NASTY = st.sampled_from([
    "", "~", "null", "[", "]", "{", "}", "{]", ": :", "- -", "*undefined_alias", "&a [*a]",
    "!!python/object/apply:os.system ['true']", "!!binary AAAA", "\t", "'unclosed", '"\\x',
    "0x1F", "1e999", "-1", "0", "9" * 40, "true", "no", "5 parsecs", "10ms", "-5m", "P1D",
    "ftp://x", "http://", "${UNSET_VARIABLE}", "${", "? complex key", "%TAG ! x", "---", "...",
    "\u202e", "\x00", "🙂", "a" * 3000,
])


@st.composite
def mutated(draw: st.DrawFn) -> str:
    lines = list(LINES)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["value", "delete", "insert", "indent", "truncate", "dup"]))
        i = draw(st.integers(0, len(lines) - 1)) if lines else 0
        if not lines:
            lines = [draw(NASTY)]
        elif kind == "value" and ":" in lines[i]:
            key, _, _ = lines[i].partition(":")
            value = draw(st.one_of(NASTY, st.text(max_size=30), st.integers().map(str)))
            lines[i] = f"{key}: {value}"
        elif kind == "delete":
            del lines[i]
        elif kind == "insert":
            lines.insert(i, draw(st.one_of(NASTY, st.text(max_size=40))))
        elif kind == "indent":
            lines[i] = " " * draw(st.integers(0, 7)) + lines[i].lstrip()
        elif kind == "truncate":
            lines = lines[:i]
        else:
            lines.insert(i, lines[i])
    return "\n".join(lines) + "\n"


def _check(text: str | bytes, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    result = CliRunner().invoke(cli, ["check-config", "-c", str(path)], env={})
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{type(result.exception).__name__}: {result.exception}\n{text}")
    assert result.exit_code in (0, 1), output
    assert "Traceback" not in output
    for line in output.splitlines():
        assert len(line) <= MAX_LINE, line[:200]
    if result.exit_code == 1:
        first = output.splitlines()[0]
        assert first.startswith("uproar: "), output


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=mutated())
def test_mutated_configs_get_clear_errors(text: str, tmp_path_factory: pytest.TempPathFactory
                                          ) -> None:
    _check(text, tmp_path_factory.mktemp("cfg"))


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=400))
def test_random_bytes_get_clear_errors(data: bytes, tmp_path_factory: pytest.TempPathFactory
                                       ) -> None:
    _check(data, tmp_path_factory.mktemp("cfg"))


@pytest.mark.slow
@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=mutated())
def test_many_mutated_configs_get_clear_errors(
    text: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _check(text, tmp_path_factory.mktemp("cfg"))
