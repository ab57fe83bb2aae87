"""Read YAML and TOML config files into plain data that remembers where every value came from.

YAML goes through the safe libyaml composer (no Python tags), then our own walk, which refuses
duplicate keys, caps alias expansion and interpolates `${VAR}` / `${VAR:-default}`. TOML goes
through tomllib, and a small scanner recovers the line and column of each key and value.

    doc = read_file(Path("environments.yaml"))
    doc.data["environments"]["env2"]["resources"]["memory"]   # "250Mi"
    doc.mark(("environments", "env2", "resources", "memory"))  # Mark("environments.yaml", 14, 15)
"""

from __future__ import annotations

import os
import re
import sys
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import yaml

from flyte_decl.problems import ConfigLoadError, Mark, Problem

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

Path_ = tuple[str | int, ...]

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_ALIAS_EXPANSION = 100_000


@dataclass
class Document:
    """A parsed config: plain data plus the mark of every value and every mapping key."""

    data: dict[str, Any]
    marks: dict[Path_, Mark] = field(default_factory=dict)
    key_marks: dict[Path_, Mark] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    root_dir: Path = field(default_factory=Path.cwd)

    def mark(self, path: Path_) -> Mark:
        """Where the value at `path` is written, or its nearest written ancestor."""
        for end in range(len(path), -1, -1):
            found = self.marks.get(path[:end])
            if found is not None:
                return found
        return Mark(self.files[0] if self.files else "<config>", 1, 1)

    def key_mark(self, path: Path_) -> Mark:
        """Where the key of `path` is written (falls back to the value's mark)."""
        return self.key_marks.get(path) or self.mark(path)


def display_path(path: str | Path) -> str:
    """A file as shown in messages and provenance: relative to the working directory when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def read_file(path: Path, *, display: str | None = None) -> Document:
    """Read one YAML or TOML file (or the [tool.flyte-decl] table of a pyproject.toml)."""
    name = display or str(path)
    doc = read_text(read_file_text(path, name), path, display=name)
    doc.root_dir = path.resolve().parent
    return doc


def read_file_text(path: Path, name: str) -> str:
    """A config file's text, checked for size and encoding; `name` is how errors show the file."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise _fail(
                name, 1, 1, f"file is {size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit", "split it"
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _fail(name, 0, 0, "file not found", "check the path given to -c/--config") from None
    except UnicodeDecodeError as exc:
        raise _fail(name, 1, 1, f"not UTF-8 text ({exc.reason})", "save the file as UTF-8") from None
    except IsADirectoryError:
        raise _fail(name, 0, 0, "is a directory, not a config file", "name a .yaml or .toml file") from None
    return text


def read_text(text: str, path: PurePath | str, *, display: str | None = None) -> Document:
    """Parse config text as the file at `path` would be read (its name picks YAML, TOML or pyproject).

    For text that is not on disk, such as a file at a git revision::

        doc = read_text(blob, "environments.yaml", display="HEAD~1:environments.yaml")
    """
    path = PurePath(path)
    name = display or str(path)
    if path.suffix == ".toml":
        return read_toml(text, name, table=("tool", "flyte-decl") if path.name == "pyproject.toml" else ())
    return read_yaml(text, name)


def _fail(file: str, line: int, col: int, message: str, hint: str = "") -> ConfigLoadError:
    return ConfigLoadError([Problem(Mark(file, line, col), "", message, hint)])


# --------------------------------------------------------------------------- YAML

_SAFE_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}
_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe loader with a memo on tag resolution: config files repeat the same keys thousands of times."""

    _resolved: dict[tuple[Any, str, Any], str] = {}

    def resolve(self, kind: Any, value: str, implicit: Any) -> str:
        key = (kind, value, implicit)
        tag = self._resolved.get(key)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            if len(self._resolved) < 100_000:
                self._resolved[key] = tag
        return tag


def read_yaml(text: str, file: str) -> Document:
    """Parse YAML text; every problem (syntax, duplicate key, unset variable) raises ConfigLoadError."""
    try:
        root = yaml.compose(text, Loader=_Loader)  # noqa: S506 - CSafeLoader/SafeLoader only
    except yaml.MarkedYAMLError as exc:
        raise _yaml_syntax_error(exc, file, text) from None
    except yaml.YAMLError as exc:
        raise _fail(file, 1, 1, f"invalid YAML: {exc}") from None
    if root is None:
        raise _fail(file, 1, 1, "the file is empty", "start with 'version: 1'")
    walker = _YamlWalker(file)
    data = walker.convert(root, ())
    if walker.problems:
        raise ConfigLoadError(walker.problems)
    if not isinstance(data, dict):
        raise _fail(
            file, root.start_mark.line + 1, root.start_mark.column + 1, "the top level must be a mapping"
        )
    return Document(data, walker.marks, walker.key_marks, [file])


def _yaml_syntax_error(exc: yaml.MarkedYAMLError, file: str, text: str) -> ConfigLoadError:
    context = (exc.context or "").strip()
    problem = (exc.problem or "syntax error").strip()
    mark = exc.problem_mark or exc.context_mark
    hint = ""
    if "quoted scalar" in context:
        mark, hint = exc.context_mark or mark, "this quote is never closed"
    elif context:
        hint = context + (f" at line {exc.context_mark.line + 1}" if exc.context_mark else "")
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    lines = text.splitlines()
    if 0 < line <= len(lines) and "\t" in lines[line - 1][:col]:
        hint = "indent with spaces; YAML does not allow tabs for indentation"
    return _fail(file, line, col, f"invalid YAML: {problem}", hint)


class _YamlWalker:
    def __init__(self, file: str) -> None:
        self.file = file
        self.marks: dict[Path_, Mark] = {}
        self.key_marks: dict[Path_, Mark] = {}
        self.problems: list[Problem] = []
        self.constructor = yaml.constructor.SafeConstructor()
        self.seen: set[int] = set()
        self.expanded = 0

    def at(self, node: yaml.Node) -> Mark:
        return Mark(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def problem(self, node: yaml.Node, path: Path_, message: str, hint: str = "") -> None:
        self.problems.append(Problem(self.at(node), dotted(path), message, hint))

    def convert(self, node: yaml.Node, path: Path_) -> Any:
        if id(node) in self.seen and not isinstance(node, yaml.ScalarNode):
            # An alias: count what it expands to, so "billion laughs" files fail fast.
            self.expanded += 1
            if self.expanded > MAX_ALIAS_EXPANSION:
                raise _fail(
                    self.file,
                    node.start_mark.line + 1,
                    node.start_mark.column + 1,
                    f"aliases expand to more than {MAX_ALIAS_EXPANSION:,} nodes",
                    "this looks like an alias bomb; write the values out",
                )
        self.seen.add(id(node))
        self.marks[path] = self.at(node)
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                self.problem(node, path, f"unsupported YAML tag {node.tag}", "remove the tag")
            return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.scalar(node, path)

    def mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        if node.tag != _MAP_TAG:
            self.problem(node, path, f"unsupported YAML tag {node.tag}", "remove the tag")
        result: dict[str, Any] = {}
        first_seen: dict[str, yaml.Node] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.update(self.merge_sources(value_node, path))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(key_node, path, "mapping keys must be plain strings")
                continue
            key = str(key_node.value)
            if key in first_seen:
                self.problem(
                    key_node,
                    (*path, key),
                    "duplicate key",
                    f"first defined at line {first_seen[key].start_mark.line + 1}; remove one of them",
                )
                continue
            first_seen[key] = key_node
            self.key_marks[(*path, key)] = self.at(key_node)
            result[key] = self.convert(value_node, (*path, key))
        for key, value in merged.items():
            result.setdefault(key, value)
        return result

    def merge_sources(self, node: yaml.Node, path: Path_) -> dict[str, Any]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        merged: dict[str, Any] = {}
        for source in reversed(sources):  # earlier sources win, as YAML specifies
            if not isinstance(source, yaml.MappingNode):
                self.problem(source, path, "'<<' must merge a mapping or a list of mappings")
                continue
            value = self.convert(source, path)
            merged.update(value)
        return merged

    def scalar(self, node: yaml.Node, path: Path_) -> Any:
        if node.tag not in _SAFE_TAGS:
            if node.tag == "tag:yaml.org,2002:timestamp":
                return node.value  # dates stay text; nothing in the format is a date
            self.problem(node, path, f"unsupported YAML tag {node.tag}", "remove the tag")
            return None
        # Plain strings are most of a config; skip the generic constructor for them.
        value = node.value if node.tag == _STR_TAG else self.constructor.construct_object(node)
        if isinstance(value, str) and "$" in value:
            value, problems = interpolate(value, self.at(node), path)
            self.problems.extend(problems)
        return value


_INTERPOLATION = re.compile(r"\$\$\{|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def interpolate(value: str, mark: Mark, path: Path_) -> tuple[str, list[Problem]]:
    """Replace `${VAR}` and `${VAR:-default}` from the environment; `$${` stands for a literal `${`."""
    problems: list[Problem] = []

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$${":
            return "${"
        name, default = match["name"], match["default"]
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        problems.append(
            Problem(
                mark,
                dotted(path),
                f"environment variable {name} is not set",
                f"export {name}, or give a default: ${{{name}:-value}}",
            )
        )
        return ""

    return _INTERPOLATION.sub(replace, value), problems


def dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# --------------------------------------------------------------------------- TOML


def read_toml(text: str, file: str, *, table: tuple[str, ...] = ()) -> Document:
    """Parse TOML text; `table` selects a sub-table (pyproject's [tool.flyte-decl])."""
    try:
        data: Any = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = re.search(r"\(at line (\d+), column (\d+)\)", message)
        line, col = (int(found[1]), int(found[2])) if found else (1, 1)
        message = re.sub(r"\s*\(at line \d+, column \d+\)|\s*\(at end of document\)", "", message)
        raise _fail(file, line, col, f"invalid TOML: {message}") from None
    marks, key_marks = _TomlScanner(text, file).scan()
    for part in table:
        if not isinstance(data, dict) or part not in data:
            raise _fail(file, 1, 1, f"no [{'.'.join(table)}] table", f"add a [{'.'.join(table)}] table")
        data = data[part]
    if table:
        n = len(table)
        marks = {p[n:]: m for p, m in marks.items() if p[:n] == table}
        key_marks = {p[n:]: m for p, m in key_marks.items() if p[:n] == table}
    problems: list[Problem] = []
    data = _interpolate_tree(data, (), file, marks, problems)
    if problems:
        raise ConfigLoadError(problems)
    return Document(data, marks, key_marks, [file])


def _interpolate_tree(
    value: Any, path: Path_, file: str, marks: dict[Path_, Mark], out: list[Problem]
) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate_tree(v, (*path, k), file, marks, out) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate_tree(v, (*path, i), file, marks, out) for i, v in enumerate(value)]
    if isinstance(value, str) and "$" in value:
        result, problems = interpolate(value, marks.get(path, Mark(file, 1, 1)), path)
        out.extend(problems)
        return result
    return value


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class _TomlScanner:
    """Finds the line and column of every key and value in a TOML text that tomllib accepted."""

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.pos = 0
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.marks: dict[Path_, Mark] = {(): Mark(file, 1, 1)}
        self.key_marks: dict[Path_, Mark] = {}
        self.array_counts: dict[Path_, int] = {}

    def mark_at(self, pos: int) -> Mark:
        line = bisect_right(self.line_starts, pos)
        return Mark(self.file, line, pos - self.line_starts[line - 1] + 1)

    def scan(self) -> tuple[dict[Path_, Mark], dict[Path_, Mark]]:
        table: Path_ = ()
        while True:
            self.skip(newlines=True)
            if self.pos >= len(self.text):
                break
            if self.text.startswith("[[", self.pos):
                start = self.pos
                self.pos += 2
                keys = self.keys()
                self.pos = self.text.index("]]", self.pos) + 2
                index = self.array_counts.get(keys, 0)
                self.array_counts[keys] = index + 1
                table = (*keys, index)
                self.marks.setdefault(keys, self.mark_at(start))
                self.marks[table] = self.mark_at(start)
                self.key_marks[table] = self.mark_at(start)
            elif self.text[self.pos] == "[":
                start = self.pos
                self.pos += 1
                table = self.keys()
                self.pos = self.text.index("]", self.pos) + 1
                self.marks[table] = self.mark_at(start)
                self.key_marks.setdefault(table, self.mark_at(start))
            else:
                self.key_value(table)
        return self.marks, self.key_marks

    def skip(self, *, newlines: bool) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t\r" or (newlines and char == "\n"):
                self.pos += 1
            elif char == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            else:
                break

    def keys(self) -> tuple[str, ...]:
        keys: list[str] = []
        while True:
            self.skip(newlines=False)
            keys.append(self.key())
            self.skip(newlines=False)
            if self.pos < len(self.text) and self.text[self.pos] == ".":
                self.pos += 1
                continue
            return tuple(keys)

    def key(self) -> str:
        char = self.text[self.pos]
        if char in "\"'":
            return str(self.string())
        match = _BARE_KEY.match(self.text, self.pos)
        assert match, "tomllib accepted the text, so a key starts here"
        self.pos = match.end()
        return match[0]

    def key_value(self, table: Path_) -> None:
        key_start = self.pos
        path = (*table, *self.keys())
        self.skip(newlines=False)
        self.pos += 1  # "="
        self.skip(newlines=False)
        self.key_marks[path] = self.mark_at(key_start)
        self.value(path)

    def value(self, path: Path_) -> None:
        self.marks[path] = self.mark_at(self.pos)
        char = self.text[self.pos]
        if char == "{":
            self.pos += 1
            while True:
                self.skip(newlines=True)
                if self.text[self.pos] == "}":
                    self.pos += 1
                    return
                if self.text[self.pos] == ",":
                    self.pos += 1
                    continue
                self.key_value(path)
        elif char == "[":
            self.pos += 1
            index = 0
            while True:
                self.skip(newlines=True)
                if self.text[self.pos] == "]":
                    self.pos += 1
                    return
                if self.text[self.pos] == ",":
                    self.pos += 1
                    continue
                self.value((*path, index))
                index += 1
        elif char in "\"'":
            self.string()
        else:
            match = re.compile(r"[^,\]}\s#]+").match(self.text, self.pos)
            self.pos = match.end() if match else self.pos + 1
            # Date-times may contain one space ("1979-05-27 07:32:00").
            spaced = re.compile(r" \d{2}:\d{2}[^,\]}\s#]*").match(self.text, self.pos)
            if spaced:
                self.pos = spaced.end()

    def string(self) -> object:
        text, start = self.text, self.pos
        for quote in ('"""', "'''"):
            if text.startswith(quote, start):
                end = start + 3
                while True:
                    end = text.index(quote, end)
                    if quote == '"""' and _escaped(text, end):
                        end += 1
                        continue
                    break
                while text.startswith(quote[0], end + 3):  # up to two quotes may close the content
                    end += 1
                self.pos = end + 3
                return text[start + 3 : end]
        quote = text[start]
        end = start + 1
        while True:
            end = text.index(quote, end)
            if quote == '"' and _escaped(text, end):
                end += 1
                continue
            break
        self.pos = end + 1
        raw = text[start + 1 : end]
        return raw if quote == "'" else tomllib.loads(f"k = {text[start : end + 1]}")["k"]


def _escaped(text: str, pos: int) -> bool:
    backslashes = 0
    while pos - backslashes - 1 >= 0 and text[pos - backslashes - 1] == "\\":
        backslashes += 1
    return backslashes % 2 == 1
