"""Read YAML and TOML config files into plain data that remembers where every value came from.

YAML goes through libyaml's safe parser (no Python tags), composed node by node as our own walk
asks for them (`_Composer`: the whole node tree of a large file never exists at once); the walk refuses
duplicate keys, caps alias and merge-key expansion and nesting, and interpolates `${VAR}`,
`${VAR:-default}` and `${VAR-default}`. TOML goes through tomllib, and a small scanner recovers the
line and column of each key and value. Both refuse integers outside 64 bits (as TOML specifies) and
accept a UTF-8 byte-order mark. Only regular files are read (not pipes or devices), at most 16 MiB.

    doc = read_file(Path("environments.yaml"))
    doc.data["environments"]["env2"]["resources"]["memory"]   # "250Mi"
    doc.mark(("environments", "env2", "resources", "memory"))  # Mark("environments.yaml", 14, 15)
"""

from __future__ import annotations

import errno
import os
import re
import stat
import sys
from bisect import bisect_right
from collections.abc import Iterator
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
MAX_ALIAS_EXPANSION = 100_000  # nodes copied by aliases and `<<:` merge keys, all told
MAX_DEPTH = 32  # nesting levels; the format itself needs at most 8
INT_MIN, INT_MAX = -(2**63), 2**63 - 1  # TOML's integers; YAML's are held to the same range


@dataclass
class Document:
    """A parsed config: plain data plus the mark of every value and every mapping key."""

    data: dict[str, Any]
    marks: dict[Path_, Mark] = field(default_factory=dict)
    key_marks: dict[Path_, Mark] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    root_dir: Path = field(default_factory=Path.cwd)
    # The text as written of every plain YAML scalar that is not a string ("0755", "on", "3.10"),
    # so that messages quote what the user wrote rather than what YAML 1.1 made of it.
    texts: dict[Path_, str] = field(default_factory=dict)
    # The `${VAR}` names interpolated into the value at each path, so that errors can name them.
    variables: dict[Path_, tuple[str, ...]] = field(default_factory=dict)
    # Subtrees set by a layer other than the file's own place, e.g. "profile prod" after --profile.
    layers: dict[Path_, str] = field(default_factory=dict)

    def mark(self, path: Path_) -> Mark:
        """Where the value at `path` is written, or its nearest written ancestor."""
        for end in range(len(path), -1, -1):
            found = self.marks.get(path[:end])
            if found is not None:
                return found
        return Mark(self.files[0] if self.files else "<config>", 1, 1)

    def layer(self, path: Path_) -> str | None:
        """The layer that set the value at `path` when it is not the file's own place ("profile prod")."""
        if self.layers:
            for end in range(len(path), 0, -1):
                found = self.layers.get(path[:end])
                if found is not None:
                    return found
        return None

    def key_mark(self, path: Path_) -> Mark:
        """Where the key of `path` is written (falls back to the value's mark)."""
        return self.key_marks.get(path) or self.mark(path)


def display_path(path: str | Path) -> str:
    """A file as shown in messages and provenance: relative to the working directory when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError, RuntimeError):  # outside it; or a symlink loop, reported when read
        return str(path)


def read_file(path: Path, *, display: str | None = None) -> Document:
    """Read one YAML or TOML file (or the [tool.flyte-decl] table of a pyproject.toml)."""
    name = display or str(path)
    doc = read_text(read_file_text(path, name), path, display=name)
    doc.root_dir = path.resolve().parent
    return doc


def read_file_text(path: Path, name: str) -> str:
    """A config file's text, checked for kind, size and encoding; `name` is how errors show the file.

    Raises ConfigLoadError for a missing or unreadable file, a symlink loop, an over-long name, a
    directory, a pipe or device (never read: a FIFO would block, /dev/zero never ends), more than
    MAX_FILE_BYTES, or text that is not UTF-8.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise _open_error(exc, name) from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise _fail(name, 0, 0, "is a directory, not a config file", "name a .yaml or .toml file")
        if not stat.S_ISREG(info.st_mode):
            raise _fail(
                name, 0, 0, "is not a regular file", "name a .yaml or .toml file, not a pipe or device"
            )
        try:
            data = b"" if info.st_size > MAX_FILE_BYTES else file.read(MAX_FILE_BYTES + 1)
        except OSError as exc:  # e.g. /proc/self/mem: a regular file by its type, unreadable
            raise _open_error(exc, name) from None
    size = max(info.st_size, len(data))
    if size > MAX_FILE_BYTES:
        raise _fail(name, 1, 1, f"file is {size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit", "split it")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise _fail(name, line, col, f"not UTF-8 text ({exc.reason})", "save the file as UTF-8") from None


def _open_error(exc: OSError, name: str) -> ConfigLoadError:
    if exc.errno == errno.ENOENT:
        return _fail(name, 0, 0, "file not found", "check the path given to -c/--config")
    if exc.errno == errno.ELOOP:
        return _fail(
            name, 0, 0, "too many levels of symbolic links", "a symlink points to itself; fix the link"
        )
    if exc.errno == errno.ENAMETOOLONG:
        shown = name if len(name) <= 80 else name[:60] + "..."
        return _fail(shown, 0, 0, "file name too long", "check the path given to -c/--config")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return _fail(name, 0, 0, "permission denied", "make the file readable")
    return _fail(name, 0, 0, f"cannot read: {exc.strerror or exc}", "check the path given to -c/--config")


def read_text(text: str, path: PurePath | str, *, display: str | None = None) -> Document:
    """Parse config text as the file at `path` would be read (its name picks YAML, TOML or pyproject).

    For text that is not on disk, such as a file at a git revision::

        doc = read_text(blob, "environments.yaml", display="HEAD~1:environments.yaml")
    """
    path = PurePath(path)
    name = display or str(path)
    text = text.removeprefix("\ufeff")  # a UTF-8 byte-order mark, as editors on Windows write it
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


class _Once:
    """A node composed when the walk reaches it and dropped after it: never reached twice (no anchor)."""


class _OnceScalar(_Once, yaml.ScalarNode):
    pass


class _OnceSequence(_Once, yaml.SequenceNode):
    pass


class _OnceMapping(_Once, yaml.MappingNode):
    pass


class _Composer:
    """Nodes from libyaml's events as the walk asks for them, so that the whole tree never exists at once.

    A file of 100,000 tasks composes to some 400 MB of nodes and marks; walked this way, only the
    path being walked, every anchored subtree (an alias may copy it later) and the values of `<<`
    merge keys are held. The nodes and errors are those of `yaml.compose`.
    """

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.anchors: dict[str, yaml.Node] = {}
        self.pending: Any = None  # the container handed out last, until the walk enters it
        self.kept: list[yaml.Node] = []
        self.root: Any = None

    def document(self) -> yaml.Node | None:
        """The root of the only document (None for an empty stream); `end()` after walking it."""
        self.loader.get_event()  # StreamStartEvent
        if self.loader.check_event(yaml.StreamEndEvent):
            return None
        self.loader.get_event()  # DocumentStartEvent
        self.root = self.node(whole=False)
        return self.root

    def end(self) -> None:
        self.finish()
        self.loader.get_event()  # DocumentEndEvent
        if not self.loader.check_event(yaml.StreamEndEvent):
            event = self.loader.get_event()
            raise yaml.composer.ComposerError(
                "expected a single document in the stream",
                self.root.start_mark,
                "but found another document",
                event.start_mark,
            )

    def finish(self) -> None:
        """Read past the container handed out last if the walk did not enter it (too deep to walk).

        Iterative, so that nesting of any depth is skipped; an anchored subtree in it is still
        composed, as a later alias may copy it.
        """
        pending, self.pending = self.pending, None
        depth = 0 if pending is None else 1
        loader = self.loader
        while depth:
            event = loader.peek_event()
            if getattr(event, "anchor", None) is not None and not isinstance(event, yaml.AliasEvent):
                self.node(whole=True)
                continue
            loader.get_event()
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
            elif isinstance(event, yaml.AliasEvent) and event.anchor not in self.anchors:
                raise _undefined_alias(event)

    def node(self, *, whole: bool) -> yaml.Node:
        if self.pending is not None:
            self.finish()
        return self.compose(self.loader.get_event(), whole)

    def compose(self, event: Any, whole: bool) -> yaml.Node:
        """The node `event` starts (its events read as far as `whole` asks); an alias's anchored node."""
        kind = type(event)
        if kind is yaml.AliasEvent:
            if event.anchor not in self.anchors:
                raise _undefined_alias(event)
            return self.anchors[event.anchor]
        anchor = event.anchor
        if anchor is not None:
            if anchor in self.anchors:
                raise yaml.composer.ComposerError(
                    "found duplicate anchor; first occurrence",
                    self.anchors[anchor].start_mark,
                    "second occurrence",
                    event.start_mark,
                )
            whole = True
        tag = event.tag
        node: Any
        if kind is yaml.ScalarEvent:
            if tag is None or tag == "!":
                tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
            node = (yaml.ScalarNode if whole else _OnceScalar)(
                tag, event.value, event.start_mark, event.end_mark, style=event.style
            )
        else:
            mapping = kind is yaml.MappingStartEvent
            if tag is None or tag == "!":
                tag = self.loader.resolve(
                    yaml.MappingNode if mapping else yaml.SequenceNode, None, event.implicit
                )
            if whole:
                node = (yaml.MappingNode if mapping else yaml.SequenceNode)(
                    tag, [], event.start_mark, None, flow_style=event.flow_style
                )
                if anchor is not None:  # before its content, as yaml.compose does
                    self.anchors[anchor] = node
                node.value = list(self.pairs(node) if mapping else self.items(node))
            else:
                node = (_OnceMapping if mapping else _OnceSequence)(
                    tag, None, event.start_mark, None, flow_style=event.flow_style
                )
                node.value = self.pairs(node) if mapping else self.items(node)
                self.pending = node
        if anchor is not None:
            self.anchors[anchor] = node
        return node

    def pairs(self, node: yaml.Node) -> Iterator[tuple[yaml.Node, yaml.Node]]:
        whole = not isinstance(node, _Once)
        for event in self.children(node, yaml.MappingEndEvent):
            key = self.compose(event, True)
            if key.tag != _MERGE_TAG:
                yield key, self.compose(self.loader.get_event(), whole)
            else:  # merged after the mapping's own keys: it must outlive its turn (and keep its id)
                value = self.compose(self.loader.get_event(), True)
                self.kept.append(value)
                yield key, value

    def items(self, node: yaml.Node) -> Iterator[yaml.Node]:
        whole = not isinstance(node, _Once)
        for event in self.children(node, yaml.SequenceEndEvent):
            yield self.compose(event, whole)

    def children(self, node: yaml.Node, end: Any) -> Iterator[Any]:
        """The event that starts each entry of `node` (a mapping's keys), up to its `end` event."""
        if self.pending is node:  # entered by the walk
            self.pending = None
        get = self.loader.get_event
        while True:
            if self.pending is not None:
                self.finish()
            event = get()
            if type(event) is end:
                node.end_mark = event.end_mark
                return
            yield event


def _undefined_alias(event: Any) -> yaml.composer.ComposerError:
    return yaml.composer.ComposerError(None, None, "found undefined alias", event.start_mark)


def _compose(text: str) -> tuple[_Composer, yaml.Node | None]:
    loader = _Loader(text)
    composer = _Composer(loader)
    return composer, composer.document()


def read_yaml(text: str, file: str) -> Document:
    """Parse YAML text; every problem (syntax, duplicate key, unset variable) raises ConfigLoadError."""
    walker = _YamlWalker(file)
    try:
        composer, root = _compose(text)
        if root is not None:
            data = walker.convert(root, ())
            composer.end()
    except yaml.MarkedYAMLError as exc:
        raise _yaml_syntax_error(exc, file, text) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, such as a control character
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        character = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise _fail(
            file,
            line,
            col,
            f"invalid YAML: character {character!r} is not allowed",
            "remove it, or write it as an escape inside double quotes",
        ) from None
    except yaml.YAMLError as exc:
        raise _fail(file, 1, 1, "invalid YAML: " + " ".join(str(exc).split())) from None
    except RecursionError:
        raise _fail(
            file, 1, 1, f"nested more than {MAX_DEPTH} levels deep", "flatten the structure"
        ) from None
    if root is None:
        raise _fail(file, 1, 1, "the file is empty", "start with 'version: 1'")
    if walker.problems:
        raise ConfigLoadError(walker.problems)
    if not isinstance(data, dict):
        raise _fail(
            file, root.start_mark.line + 1, root.start_mark.column + 1, "the top level must be a mapping"
        )
    return Document(
        data, walker.marks, walker.key_marks, [file], texts=walker.texts, variables=walker.variables
    )


def read_value(text: str, file: str) -> tuple[Any, dict[Path_, str], list[Problem]]:
    """One YAML value given on the command line (`--set retries=3`), read by the same rules as a file.

    Returns the value (the text itself when it is not YAML), the texts of its non-string scalars
    (as `Document.texts`, relative to the value) and the problems found (an integer out of range).
    """
    try:
        root = yaml.compose(text, Loader=_Loader)  # noqa: S506 - CSafeLoader/SafeLoader only
    except yaml.YAMLError:
        return text, {}, []
    if root is None:
        return None, {}, []
    walker = _YamlWalker(file)
    try:
        value = walker.convert(root, ())
    except ConfigLoadError as exc:
        return None, {}, exc.problems
    return value, walker.texts, walker.problems


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
        self.texts: dict[Path_, str] = {}
        self.variables: dict[Path_, tuple[str, ...]] = {}
        self.problems: list[Problem] = []
        self.constructor = yaml.constructor.SafeConstructor()
        self.seen: set[int] = set()
        self.expanded = 0
        self.reported: set[tuple[Mark, str]] = set()

    def at(self, node: yaml.Node) -> Mark:
        return Mark(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def problem(self, node: yaml.Node, path: Path_, message: str, hint: str = "") -> None:
        mark = self.at(node)
        if (mark, message) not in self.reported:  # once, not again for each alias or merge that copies it
            self.reported.add((mark, message))
            self.problems.append(Problem(mark, dotted(path), message, hint))

    def convert(self, node: yaml.Node, path: Path_) -> Any:
        if id(node) in self.seen:
            # A node visited again is a copy made by an alias or a `<<:` merge key: count every one,
            # scalars too, so that "billion laughs" and nested-merge files fail fast.
            self.expanded += 1
            if self.expanded > MAX_ALIAS_EXPANSION:
                raise _fail(
                    self.file,
                    node.start_mark.line + 1,
                    node.start_mark.column + 1,
                    f"aliases expand to more than {MAX_ALIAS_EXPANSION:,} nodes",
                    "this looks like an alias bomb; write the values out",
                )
        elif not isinstance(node, _Once):
            self.seen.add(id(node))
        self.marks[path] = self.at(node)
        if len(path) > MAX_DEPTH and not isinstance(node, yaml.ScalarNode):
            self.problem(node, path, f"nested more than {MAX_DEPTH} levels deep", "flatten the structure")
            return None
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
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
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
            child = (*path, key)  # one tuple for both marks: a large file has hundreds of thousands
            self.key_marks[child] = self.at(key_node)
            result[key] = self.convert(value_node, child)
        for merge in merges:
            self.merge(merge, path, result)
        return result

    def merge(self, node: yaml.Node, path: Path_, result: dict[str, Any]) -> None:
        """Add the keys of `<<: *a` or `<<: [*a, *b]` that `result` lacks (earlier sources win, as YAML says).

        Keys written in the mapping itself keep their own marks: each source is walked with marks of
        its own, and only the marks of the keys it adds are kept.
        """
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                self.problem(source, path, "'<<' must merge a mapping or a list of mappings")
                continue
            outer = self.marks, self.key_marks, self.texts, self.variables
            self.marks, self.key_marks, self.texts, self.variables = {}, {}, {}, {}
            try:
                value = self.mapping(source, path)
            finally:
                scoped = self.marks, self.key_marks, self.texts, self.variables
                self.marks, self.key_marks, self.texts, self.variables = outer
            added = [key for key in value if key not in result]
            for key in added:
                result[key] = value[key]
            if added:
                n = len(path)
                keep = set(added)
                for own, theirs in zip(outer, scoped, strict=True):
                    own.update({p: v for p, v in theirs.items() if len(p) > n and p[n] in keep})  # type: ignore[attr-defined]

    def scalar(self, node: yaml.Node, path: Path_) -> Any:
        if node.tag not in _SAFE_TAGS:
            if node.tag == "tag:yaml.org,2002:timestamp":
                return node.value  # dates stay text; nothing in the format is a date
            self.problem(node, path, f"unsupported YAML tag {node.tag}", "remove the tag")
            return None
        # Plain strings are most of a config; skip the generic constructor for them.
        if node.tag == _STR_TAG:
            value = node.value
        else:
            self.texts[path] = node.value
            try:  # the tag's own constructor: construct_object() keeps state that an error leaves stale
                value = self.constructor.yaml_constructors[node.tag](self.constructor, node)
            except ValueError:  # int() refuses thousands of decimal digits
                value = INT_MAX + 1
            if type(value) is int and not INT_MIN <= value <= INT_MAX:
                self.problem(node, path, _too_large(node.value), f"integers are at most {INT_MAX:,}")
                return None
        if isinstance(value, str) and "$" in value:
            value, problems, names = interpolate(value, self.at(node), path)
            for problem in problems:
                self.problem(node, path, problem.message, problem.hint)
            if names:
                self.variables[path] = names
        return value


def _too_large(text: str) -> str:
    shown = text if len(text) <= 25 else f"{text[:12]}...{text[-6:]} ({len(text):,} characters)"
    return f"integer {shown} is out of range"


_INTERPOLATION = re.compile(
    r"\$\$\{|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}"
)


def interpolate(value: str, mark: Mark, path: Path_) -> tuple[str, list[Problem], tuple[str, ...]]:
    """Replace `${VAR}`, `${VAR:-default}` and `${VAR-default}` from the environment.

    As in POSIX shells and Docker Compose, `:-` takes the default when VAR is unset or empty, `-`
    only when it is unset; `$${` stands for a literal `${`. Returns the text, the problems (an
    unset variable without a default) and the names of the variables read.
    """
    problems: list[Problem] = []
    names: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$${":
            return "${"
        name, op, default = match["name"], match["op"], match["default"]
        names.append(name)
        found = os.environ.get(name)
        if found is not None and not (op == ":-" and found == ""):
            return found
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

    return _INTERPOLATION.sub(replace, value), problems, tuple(dict.fromkeys(names))


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
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise _too_deep(text, file) from None
    except ValueError:  # int() refuses thousands of decimal digits
        raise _toml_int_error(text, file) from None
    if _depth(data) > MAX_DEPTH:
        raise _too_deep(text, file)
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
    variables: dict[Path_, tuple[str, ...]] = {}
    data = _check_tree(data, (), file, marks, problems, variables)
    if problems:
        raise ConfigLoadError(problems)
    return Document(data, marks, key_marks, [file], variables=variables)


def _depth(value: Any) -> int:
    """How deeply lists and tables nest (iteratively: the value may be deeper than the stack allows)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth <= MAX_DEPTH:
            children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
            stack.extend((child, depth + 1) for child in children)
    return deepest


_TOML_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#[^\n]*|[\[\]{}]|\n')


def _too_deep(text: str, file: str) -> ConfigLoadError:
    """Where brackets first nest more than MAX_DEPTH levels (strings and comments skipped)."""
    depth, line, line_start = 0, 1, 0
    for match in _TOML_TOKEN.finditer(text):
        token = match[0]
        if token == "\n":
            line, line_start = line + 1, match.end()
        elif token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return _fail(
                    file, line, match.start() - line_start + 1,
                    f"nested more than {MAX_DEPTH} levels deep", "flatten the structure",
                )  # fmt: skip
        elif token in "]}":
            depth = max(0, depth - 1)
    return _fail(file, 1, 1, f"nested more than {MAX_DEPTH} levels deep", "flatten the structure")


def _toml_int_error(text: str, file: str) -> ConfigLoadError:
    found = re.search(r"[+-]?\d[\d_]{4299,}", text)
    start = found.start() if found else 0
    line = text.count("\n", 0, start) + 1
    col = start - (text.rfind("\n", 0, start) + 1) + 1
    digits = found[0] if found else "?"
    return _fail(file, line, col, _too_large(digits), f"integers are at most {INT_MAX:,}")


def _check_tree(
    value: Any,
    path: Path_,
    file: str,
    marks: dict[Path_, Mark],
    out: list[Problem],
    variables: dict[Path_, tuple[str, ...]],
) -> Any:
    """Interpolate `${VAR}` in every string and refuse integers outside 64 bits, as TOML specifies."""
    if isinstance(value, dict):
        return {k: _check_tree(v, (*path, k), file, marks, out, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_check_tree(v, (*path, i), file, marks, out, variables) for i, v in enumerate(value)]
    if isinstance(value, str) and "$" in value:
        result, problems, names = interpolate(value, marks.get(path, Mark(file, 1, 1)), path)
        out.extend(problems)
        if names:
            variables[path] = names
        return result
    if type(value) is int and not INT_MIN <= value <= INT_MAX:
        mark = marks.get(path, Mark(file, 1, 1))
        out.append(Problem(mark, dotted(path), _too_large(str(value)), f"integers are at most {INT_MAX:,}"))
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
