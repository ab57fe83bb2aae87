"""Read a config for one task's view (`explain TASK`): all of its data, the marks of what the task uses.

`explain` checks the whole file but shows one task, so it needs every value and only some places.
Each YAML file is read twice, both times by libyaml's parser:

1. `read_plain`: every value, straight from the parser's events, with no node tree and no marks.
   It gives up (returns None) on anything but plain data: anchors, aliases, `<<` merge keys, tags,
   duplicate keys, deep nesting, an unset `${VAR}`, an integer out of range, a scalar that YAML 1.1
   types from an unusual form (`on`, `0755`), a syntax error. Each of those is either a problem
   `read_yaml` reports or a feature it alone implements, so the caller reads the file the usual way.
2. `read_yaml` (`config/read.py`, the one reader that keeps marks) of the same text with the lines of
   every environment the task does not need made empty: line and column numbers stay those of the file.

`read_focused` gives each file's Document: the first read's data with the second read's marks. The
caller checks it whole; should it find any problem (a warning too), the marks of an environment left
out may be wanted, so it reads the files the usual way and reports from that, as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any

import yaml

from flyte_decl.config.check import _CANONICAL
from flyte_decl.config.read import (
    _STR_TAG,
    INT_MAX,
    INT_MIN,
    MAX_DEPTH,
    Document,
    _Loader,
    display_path,
    interpolate,
    read_file_text,
    read_yaml,
)
from flyte_decl.problems import ConfigLoadError, Mark

_TYPED = {
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}
_NO_MARK = Mark("<plain>")
_MISSING = object()

_NULLS = ("", "~", "null", "Null", "NULL")  # with _CANONICAL: the forms check.py lets pass
_SCALAR, _MAPPING_START, _MAPPING_END = yaml.ScalarEvent, yaml.MappingStartEvent, yaml.MappingEndEvent


class _NotPlain(Exception):
    """The text holds something only `read_yaml` reads (or reports): read it that way."""


@dataclass
class Plain:
    """A YAML file's data and, when `environments:` is a block mapping, where its entries are written.

    `keys` holds each environment's name and the 0-based line and column of its key, in file order;
    `end` the line and column of the top-level key after the last entry (None: the text ends first).
    """

    data: dict[str, Any]
    keys: list[tuple[str, int, int]]
    end: tuple[int, int] | None = None


def read_plain(text: str) -> Plain | None:
    """The data `read_yaml(text)` gives, or None where that read must do it (see the module docstring)."""
    reader = _PlainReader(_Loader(text))
    try:
        return reader.read()
    except (_NotPlain, yaml.YAMLError, RecursionError, ValueError):
        return None
    finally:
        reader.loader.dispose()


class _PlainReader:
    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.get = loader.get_event
        self.constructor = yaml.constructor.SafeConstructor()
        self.plain: dict[str, Any] = {}  # plain scalar -> its value: a config repeats them
        # First characters of the plain scalars the resolver may type (any other is a string), as
        # registered now; a resolver for every first character (key None) is left to read_yaml.
        self.typed_first = {*loader.yaml_implicit_resolvers, ""}
        self.keys: list[tuple[str, int, int]] = []
        self.end: tuple[int, int] | None = None

    def read(self) -> Plain:
        if None in self.typed_first:
            raise _NotPlain
        get = self.get
        get()  # StreamStartEvent
        if type(get()) is not yaml.DocumentStartEvent:
            raise _NotPlain  # an empty file
        event = get()
        self.container(event, yaml.MappingStartEvent)
        data = self.top(event)
        get()  # DocumentEndEvent
        if type(get()) is not yaml.StreamEndEvent:
            raise _NotPlain  # a second document
        return Plain(data, self.keys, self.end)

    def container(self, event: Any, kind: Any) -> None:
        if type(event) is not kind or event.anchor is not None or event.tag is not None:
            raise _NotPlain

    def top(self, start: Any) -> dict[str, Any]:
        """The top-level mapping; where the environments' entries are written, when it is block style."""
        result: dict[str, Any] = {}
        after_environments = False
        while True:
            event = self.get()
            if type(event) is _MAPPING_END:
                return result
            key = self.key(event, result)
            if after_environments:
                self.end = (event.start_mark.line, event.start_mark.column)
                after_environments = False
            event = self.get()
            block = type(event) is _MAPPING_START and not (start.flow_style or event.flow_style)
            if key == "environments" and block:
                self.container(event, _MAPPING_START)
                result[key] = self.environments()
                after_environments = True
                continue
            result[key] = self.value(event, 1)

    def environments(self) -> dict[str, Any]:
        """`environments:`'s entries, noting where each key is written."""
        result: dict[str, Any] = {}
        while True:
            event = self.get()
            if type(event) is _MAPPING_END:
                return result
            name = self.key(event, result)
            self.keys.append((name, event.start_mark.line, event.start_mark.column))
            result[name] = self.value(self.get(), 2)

    def key(self, event: Any, result: dict[str, Any]) -> str:
        if type(event) is not _SCALAR or event.anchor is not None or event.tag is not None:
            raise _NotPlain
        key: str = event.value
        if key in result or (key == "<<" and event.implicit[0]):
            raise _NotPlain  # a duplicate key, a merge key
        return key

    def value(self, event: Any, depth: int) -> Any:
        # The loops are written out (no call per key or string): this runs once per node of the file.
        kind = type(event)
        if kind is _SCALAR:
            return self.scalar(event)
        if depth >= MAX_DEPTH:
            raise _NotPlain
        get, scalar = self.get, self.scalar
        if kind is _MAPPING_START:
            self.container(event, kind)
            result: dict[str, Any] = {}
            while True:
                event = get()
                if type(event) is not _SCALAR:
                    if type(event) is _MAPPING_END:
                        return result
                    raise _NotPlain  # a key that is a mapping or a list
                key = event.value
                if event.anchor is not None or event.tag is not None or key in result:
                    raise _NotPlain
                if key == "<<" and event.implicit[0]:
                    raise _NotPlain
                event = get()
                result[key] = scalar(event) if type(event) is _SCALAR else self.value(event, depth + 1)
        self.container(event, yaml.SequenceStartEvent)
        items = []
        while True:
            event = get()
            if type(event) is _SCALAR:
                items.append(scalar(event))
            elif type(event) is yaml.SequenceEndEvent:
                return items
            else:
                items.append(self.value(event, depth + 1))

    def scalar(self, event: Any) -> Any:
        if event.anchor is not None or event.tag is not None:
            raise _NotPlain
        text: str = event.value
        if "$" in text:
            return self.interpolated(event)
        if not event.implicit[0] or text[:1] not in self.typed_first:
            return text  # quoted, or plain and no type's first character
        found = self.plain.get(text, _MISSING)
        if found is _MISSING:
            tag = self.loader.resolve(yaml.ScalarNode, text, event.implicit)
            found = text if tag == _STR_TAG else self.typed_value(tag, text)
            if len(self.plain) < 100_000:
                self.plain[text] = found
        return found

    def interpolated(self, event: Any) -> str:
        text: str = event.value
        if event.implicit[0] and self.loader.resolve(yaml.ScalarNode, text, event.implicit) != _STR_TAG:
            raise _NotPlain  # `${` in a typed scalar: not expected, and read_yaml's to say
        text, problems, _ = interpolate(text, _NO_MARK, ())
        if problems:
            raise _NotPlain  # an unset variable: read_yaml reports it
        return text

    def typed_value(self, tag: str, text: str) -> Any:
        if tag not in _TYPED or not (text in _NULLS or _CANONICAL.fullmatch(text)):
            raise _NotPlain
        value = self.constructor.yaml_constructors[tag](self.constructor, yaml.ScalarNode(tag, text))
        if type(value) is int and not INT_MIN <= value <= INT_MAX:
            raise _NotPlain
        return value


def read_focused(
    files: Sequence[Path], root_task: str, profiles: Sequence[str] = ()
) -> list[Document] | None:
    """Each file's Document for `root_task`'s view with `profiles`: all its data, and the marks that
    the task's resolution uses.

    None when a file is TOML or is not plain data (see `read_plain`): read them the usual way.
    Raises ConfigLoadError, as `read_file` does, for a file that cannot be read at all.
    """
    read = []
    for path in files:
        if path.suffix == ".toml":
            return None
        display = display_path(path)
        text = read_file_text(path, display).removeprefix("\ufeff")
        plain = read_plain(text)
        if plain is None:
            return None
        read.append((path, display, text, plain))
    needed = needed_environments([plain.data for *_, plain in read], root_task, profiles)
    documents = []
    for path, display, text, plain in read:
        try:
            located = read_yaml(focused_text(text, plain, needed), display)
        except ConfigLoadError:  # not expected of text read_plain read; the usual way will say
            return None
        documents.append(
            Document(
                plain.data,
                located.marks,
                located.key_marks,
                [display],
                path.resolve().parent,
                texts=located.texts,
                variables=located.variables,
            )
        )
    return documents


def needed_environments(
    datas: Iterable[dict[str, Any]], root_task: str, profiles: Sequence[str] = ()
) -> set[str]:
    """The environments whose marks resolving `root_task` with `profiles` may use, in these files' data.

    Those that declare a task `root_task` names (as ENV.TASK or a short name) and those their
    `extends` lead to, in any of the files and in the profiles (a profile may add either).
    """
    sections = []
    for data in datas:
        sections.append(data.get("environments"))
        declared = data.get("profiles")
        for name in profiles:
            profile = declared.get(name) if isinstance(declared, dict) else None
            sections.append(profile.get("environments") if isinstance(profile, dict) else None)
    entries = [s for s in sections if isinstance(s, dict)]
    needed = {root_task.partition(".")[0]}
    for section in entries:
        for env, entry in section.items():
            tasks = entry.get("tasks") if isinstance(entry, dict) else None
            if isinstance(tasks, dict) and any(root_task in (f"{env}.{t}", t) for t in tasks):
                needed.add(env)
    todo = list(needed)
    while todo:
        env = todo.pop()
        for section in entries:
            entry = section.get(env)
            parent = entry.get("extends") if isinstance(entry, dict) else None
            if isinstance(parent, str) and parent not in needed:
                needed.add(parent)
                todo.append(parent)
    return needed


def focused_text(text: str, plain: Plain, needed: set[str]) -> str:
    """`text` with the lines of the environments not `needed` made empty, or `text` itself when its
    lines do not allow that. The first environment is kept: the mark of `environments:` is its key's."""
    if not plain.keys or "\x85" in text or "\u2028" in text or "\u2029" in text:
        return text  # line breaks that libyaml counts and str.split("\n") does not
    if text.count("\r") != text.count("\r\n"):
        return text
    starts = [0, *accumulate(len(line) + 1 for line in text.split("\n"))]
    ends = [(line, column) for _, line, column in plain.keys[1:]] + [plain.end or (len(starts) - 1, 0)]
    starts[-1] = len(text)  # the end of the text, also when it does not end with a line break
    for line, column in [(line, column) for _, line, column in plain.keys] + ends[-1:]:
        if text[starts[line] : starts[line] + column].strip(" "):
            return text  # a key that does not start its line (`? key`): the lines are not all its own
    pieces = []
    position = 0
    for (name, line, _), (end, _) in list(zip(plain.keys, ends, strict=True))[1:]:
        if name not in needed:
            start, stop = starts[line], starts[end]
            pieces += [text[position:start], "\n" * text.count("\n", start, stop)]
            position = stop
    pieces.append(text[position:])
    return "".join(pieces)
