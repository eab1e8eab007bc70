"""Read YAML keeping each value's line; expand ``${VAR}`` and ``${VAR:-default}`` from env.

The environment is read here and only here (through the mapping passed in), once, at load time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from monitor.errors import ConfigError

Path = tuple[str | int, ...]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class LoadedYaml:
    data: Any
    lines: dict[Path, int] = field(default_factory=dict)  # 1-based line of each value
    unset_vars: list[str] = field(default_factory=list)  # ${VAR} without default, not set
    quoted: set[Path] = field(default_factory=set)  # values written in quotes ("5", '5')
    var_lines: dict[str, int] = field(default_factory=dict)  # where each unset ${VAR} is used

    def unset_with_lines(self, names: list[str] | None = None) -> list[str]:
        """``VAR (line 12)`` for each unset variable (of ``names``, or all)."""
        return [f"{name} (line {self.var_lines[name]})" if name in self.var_lines else name
                for name in (self.unset_vars if names is None else names)]

    def line_of(self, path: Path) -> int | None:
        """The line of ``path``, or of its closest ancestor that has one."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def load_yaml(text: str, source: str, environ: Mapping[str, str]) -> LoadedYaml:
    """Parse YAML text; raises :class:`ConfigError` with the line of a syntax error."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError([syntax_problem(exc, text)], source) from exc
    loaded = LoadedYaml(data=None)
    if node is None:
        loaded.data = {}
        return loaded
    problems: list[str] = []
    loaded.data = _convert(node, (), loaded, environ, problems)
    if problems:
        raise ConfigError(problems, source)
    return loaded


def syntax_problem(exc: yaml.YAMLError, text: str) -> str:
    """One line for a YAML syntax error. The parser often notices a wrong indentation only on
    the line after the mistake: then both lines are named."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is None:
        return f"YAML syntax error: {problem}"
    line = mark.line + 1
    message = f"line {line}: YAML syntax error: {problem}"
    if "\t" in problem or "'\\t'" in problem:
        return message + " (YAML indents with spaces, not tabs)"
    if "block end" in problem or "mapping values are not allowed" in problem:
        before = _previous_content_line(text, line)
        if before is not None:
            return (f"line {line}: YAML syntax error: {problem}; check the indentation of "
                    f"line {before} and line {line} (the mistake is often on the line before)")
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    if context and context_mark is not None and context_mark.line != mark.line:
        message += f" ({context} that begins on line {context_mark.line + 1})"
    return message


def _previous_content_line(text: str, line: int) -> int | None:
    """The 1-based number of the last non-blank, non-comment line before ``line``."""
    lines = text.splitlines()
    for number in range(min(line - 1, len(lines)), 0, -1):
        stripped = lines[number - 1].strip()
        if stripped and not stripped.startswith("#"):
            return number
    return None


def _convert(
    node: yaml.Node,
    path: Path,
    out: LoadedYaml,
    environ: Mapping[str, str],
    problems: list[str],
    inside: frozenset[int] = frozenset(),
) -> Any:
    out.lines[path] = node.start_mark.line + 1
    if id(node) in inside:  # an alias to a node that contains it (`model: &a [*a]`)
        problems.append(f"{format_path(path)} (line {node.start_mark.line + 1}): an alias "
                        "refers to a value that contains it; remove the self-reference")
        return None
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        inside = inside | {id(node)}
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            if key in result:
                line = key_node.start_mark.line + 1
                problems.append(f"{format_path((*path, key))} (line {line}): duplicate key")
            result[key] = _convert(value_node, (*path, key), out, environ, problems, inside)
            # A key's own line: where a nested mapping's problem is looked for, not its first
            # child's line.
            out.lines[(*path, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _convert(item, (*path, i), out, environ, problems, inside)
            for i, item in enumerate(node.value)
        ]
    value = _scalar(node)
    if isinstance(node, yaml.ScalarNode) and node.style in ("'", '"'):
        out.quoted.add(path)
    if isinstance(value, str) and "${" in value:
        value = _expand(value, out, environ, node.start_mark.line + 1)
    return value


def _scalar(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _expand(value: str, out: LoadedYaml, environ: Mapping[str, str], line: int) -> str:
    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ and environ[name] != "":
            return environ[name]
        if default is not None:
            return default
        if name not in out.unset_vars:
            out.unset_vars.append(name)
            out.var_lines[name] = line
        return ""

    return _VAR.sub(repl, value)
