"""Secret masking: which values are secret, how they may be spelled, and `****` in their place.

A declared secret (a name in any `secrets:` list) is secret by its value in the environment of the
process that reads the config. Like GitHub Actions' runner (its SecretMasker and ValueEncoders),
each value is masked wherever it appears, in every spelling output may give it:

- the value itself, and each line of a multi-line value (a PEM key) on its own, stripped, when it
  has at least `MIN_LINE` characters (shorter lines are masked only as part of the whole value:
  masking every `}` of a JSON secret would garble all output, as it does on GitHub);
- each of these escaped as JSON (`\\"`, `\\\\`, `\\uXXXX`, also with `<` as `\\u003c`, and without
  ASCII escapes), as Python's `repr`, `ascii` and bytes `repr` write them, HTML-escaped, escaped as
  a GitHub workflow command, and as a Markdown table cell;
- the whole value percent-encoded as in URLs;
- the whole value in base64 at each of the three byte alignments (as GitHub does), when at least
  8 base64 characters are fully determined by the value.

`Masker` does it for text and bytes; `Masker.stream()` masks a stream fed in chunks, holding back
only what could be the start of a secret, so a value split across two reads is still masked. The
CLI installs `console()` around each command: stdout and stderr are masked with every secret
`declare`d while it runs (the config loader declares what each config read names).

Example::

    masker = Masker(["s3cr3t-value", "line one\\nline two"])
    masker.text('token "s3cr3t-value"')           # 'token "****"'
    masker.value({"key": "s3cr3t-value"})        # {'key': '****'}
    masker.binary(b"line two")                   # b"****"
    stream = masker.stream()
    stream.feed(b"a s3cr3") + stream.feed(b"t-value!") + stream.close()   # b"a ****!"
"""

from __future__ import annotations

import base64
import html
import json
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, AnyStr, Generic, TextIO
from urllib.parse import quote

from flyte_decl.runtime import datetimes

MASK = "****"
MIN_LINE = 4  # characters of a line of a multi-line secret to be masked on its own
_MIN_BASE64 = 8

_ENCODERS: tuple[Callable[[str], str], ...] = (
    lambda s: s,
    lambda s: json.dumps(s)[1:-1],
    lambda s: json.dumps(s)[1:-1].replace("<", "\\u003c"),  # JSON inside an HTML <script>
    lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    lambda s: repr(s)[1:-1],
    lambda s: ascii(s)[1:-1],
    lambda s: repr(s.encode())[2:-1],
    lambda s: html.escape(s),
    lambda s: html.escape(s, quote=False),
    lambda s: s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"),  # GitHub ::error::
    lambda s: s.replace("\n", " ").replace("|", "\\|"),  # a Markdown table cell
)


def spellings(value: str) -> set[str]:
    """Every text that masks `value`: its lines and their encodings (see the module docstring)."""
    if not value:
        return set()
    forms = {value} | {line.strip() for line in value.splitlines() if len(line.strip()) >= MIN_LINE}
    found = {encode(form) for form in forms for encode in _ENCODERS} | {quote(value, safe="")}
    data = value.encode()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data).decode()
        # Only the characters that depend on the value's bits alone (not on what surrounds it).
        core = encoded[-(-8 * shift // 6) : 8 * (shift + len(data)) // 6]
        if len(core) >= _MIN_BASE64:
            found.add(core)
    return {form for form in found if form}


class Masker:
    """Replaces every spelling of the given secret values with `****`; falsy when it has none."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self.values = frozenset(value for value in values if value)
        texts = sorted({form for value in self.values for form in spellings(value)}, key=len, reverse=True)
        raw = sorted({text.encode() for text in texts}, key=len, reverse=True)
        # Longest first: where spellings overlap, the whole of the longer one is masked.
        self._text = _Patterns(texts, MASK)
        self._bytes = _Patterns(raw, MASK.encode())

    @classmethod
    def of_names(cls, names: Iterable[str], environ: Mapping[str, str] = os.environ) -> Masker:
        """A masker for the values that these variable names have in `environ` (unset ones: none)."""
        return cls(environ.get(name, "") for name in names)

    def __bool__(self) -> bool:
        return bool(self.values)

    def text(self, text: str) -> str:
        """`text` with every secret spelling masked."""
        return self._text.sub(text)

    def binary(self, data: bytes) -> bytes:
        """`data` with every secret spelling (UTF-8) masked."""
        return self._bytes.sub(data)

    def holds(self, data: bytes) -> bool:
        """Whether any secret spelling occurs in `data` (e.g. a pickled payload)."""
        return self._bytes.search(data)

    def value(self, value: Any) -> Any:
        """`value` as JSON data (its repr when JSON cannot carry it) with every string in it masked."""
        try:
            data = json.loads(json.dumps(value, default=datetimes.json_default))
        except (TypeError, ValueError, RecursionError):
            return self.text(repr(value))
        return self.deep(data) if self else data

    def deep(self, value: Any) -> Any:
        """`value` with every string in it masked, in dicts (keys too), lists, tuples and sets; other
        objects as they are (their text is masked where it is shown). Masking each string before it is encoded (as JSON, say) also masks a
        secret that the string holds encoded already (a repr inside a returned string)."""
        if not self:
            return value
        try:
            return self._deep(value)
        except RecursionError:
            return MASK

    def _deep(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self._deep(key): self._deep(item) for key, item in value.items()}
        if type(value) in (list, tuple, set, frozenset):  # not subclasses: a namedtuple takes fields
            return type(value)(self._deep(item) for item in value)
        return value

    def stream(self) -> StreamMasker[bytes]:
        """A masker for one byte stream fed in chunks (a log pipe)."""
        return StreamMasker(self._bytes)

    def text_stream(self) -> StreamMasker[str]:
        """A masker for one text stream fed in chunks (a console)."""
        return StreamMasker(self._text)


class _Patterns(Generic[AnyStr]):
    """Literal spellings, str or bytes, longest first.

    Each is looked for with one C-level substring search: a regex alternation of them is 10 to 50
    times slower, as it tries every spelling at every position.
    """

    def __init__(self, literals: list[AnyStr], mask: AnyStr) -> None:
        self.literals: list[AnyStr] = literals
        self.mask: AnyStr = mask

    def sub(self, data: AnyStr) -> AnyStr:
        for literal in self.literals:
            if literal in data:
                data = data.replace(literal, self.mask)
        return data

    def search(self, data: AnyStr) -> bool:
        return any(literal in data for literal in self.literals)

    def straddling(self, data: AnyStr, cut: int) -> int:
        """Where to cut `data` instead of `cut` so that no spelling in it is cut in two."""
        moved = True
        while moved:
            moved = False
            for literal in self.literals:
                size = len(literal)
                at = data.find(literal, max(0, cut - size + 1), cut + size - 1)
                if at != -1 and at < cut < at + size:
                    cut, moved = at + size, True
        return cut


class StreamMasker(Generic[AnyStr]):
    """Masks a stream given in chunks: `feed` returns what is safe to show, `close` the rest.

    What is held back is at most the longest spelling less one character: the end of the data
    seen so far when it is the beginning of a spelling.
    """

    def __init__(self, patterns: _Patterns[AnyStr]) -> None:
        self.patterns: _Patterns[AnyStr] = patterns
        self.pending: AnyStr | None = None

    def feed(self, chunk: AnyStr) -> AnyStr:
        patterns = self.patterns
        if not patterns.literals:
            return chunk
        data = chunk if self.pending is None else self.pending + chunk
        hold = _held_from(data, patterns.literals)
        if hold < len(data):  # a whole spelling across the cut is masked now, not cut in two
            hold = patterns.straddling(data, hold)
        self.pending = data[hold:]
        return patterns.sub(data[:hold])

    def close(self) -> AnyStr | None:
        """The rest, masked (None if nothing was held back)."""
        rest, self.pending = self.pending, None
        return self.patterns.sub(rest) if rest else rest


def _held_from(data: AnyStr, literals: list[AnyStr]) -> int:
    """Where the longest end of `data` that starts some literal (and is shorter than it) begins."""
    n = hold = len(data)
    for literal in literals:
        start = max(0, n - len(literal) + 1)
        head = literal[:8]  # found by one search, rather than checking each place its first byte is
        at = data.find(head, start)
        while at != -1 and at < hold:
            if literal.startswith(data[at:]):
                hold = at
                break
            at = data.find(head, at + 1)
        for at in range(max(start, n - len(head) + 1), hold):  # too close to the end to hold `head`
            if literal.startswith(data[at:]):
                hold = at
                break
    return hold


# --------------------------------------------------------------------------- the CLI's console

_lock = threading.RLock()
_declared: set[str] = set()  # secret values
_names: set[str] = set()  # secret names
_given: dict[str, str] = {}  # the command's own environment values (`run -e NAME=value`)
_current = Masker()


def declare(names: Iterable[str]) -> None:
    """Add these secret names: from now on the console masks their values (from os.environ, and
    from `declare_environment`)."""
    with _lock:
        _names.update(names)
        _refresh()


def declare_environment(env: Mapping[str, str]) -> None:
    """Values the command gives its actions' environment (`run -e NAME=value`): the value of a
    declared secret name given this way is masked like one from os.environ, whichever is declared first."""
    with _lock:
        _given.update(env)
        _refresh()


def _refresh() -> None:
    global _current
    values = {source.get(name, "") for name in _names for source in (os.environ, _given)} - {""}
    if not values <= _current.values:
        _declared.update(values)
        _current = Masker(_declared)


def current() -> Masker:
    """The masker of every secret declared so far in this command."""
    return _current


def secret_names(document: Any, blocks: Iterable[Any] = ()) -> set[str]:
    """The names under `secrets:` in every settings block of a config document (defaults,
    environments, tasks, override sets, and each profile's), and in these other blocks."""
    found = list(blocks)
    for doc in [document, *_mapping(_mapping(document).get("profiles")).values()]:
        doc = _mapping(doc)
        found.append(doc.get("defaults"))
        for env in _mapping(doc.get("environments")).values():
            found.append(env)
            found.extend(_mapping(_mapping(env).get("tasks")).values())
        overrides = doc.get("overrides")
        found.extend(_mapping(item).get("set") for item in (overrides if isinstance(overrides, list) else []))
    names: set[str] = set()
    for block in found:
        value = _mapping(block).get("secrets")
        if isinstance(value, str):
            names.add(value)
        elif isinstance(value, list):
            names.update(item for item in value if isinstance(item, str))
    return names


def _mapping(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


class _MaskedConsole:
    """A text stream that masks what is written to it with `current()` and passes it on.

    No `buffer` attribute: click would write bytes there, around the masking; bytes written here
    (click's shell completion writes some) are decoded and masked like text.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._masker: Masker | None = None
        self._pending: StreamMasker[str] | None = None

    def write(self, text: str | bytes) -> int:
        if isinstance(text, bytes):
            text = text.decode(getattr(self.stream, "encoding", None) or "utf-8", "replace")
        elif not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        size = len(text)
        with _lock:
            masker = _current
            if masker is not self._masker:  # a secret was declared: from here on, mask all of them
                held = self._pending.pending if self._pending is not None else None
                self._masker, self._pending = masker, masker.text_stream()
                text = (held or "") + text
            assert self._pending is not None
            text = self._pending.feed(text)
            if text:
                self.stream.write(text)
        return size

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def release(self) -> None:
        """Write what is held back (masked) and flush."""
        with _lock:
            rest = self._pending.close() if self._pending else None
            if rest:
                self.stream.write(rest)
            self.flush()

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:
        return getattr(self.stream, "errors", None)

    @property
    def closed(self) -> bool:
        return bool(getattr(self.stream, "closed", False))


@contextmanager
def console() -> Iterator[None]:
    """Mask sys.stdout and sys.stderr for the duration; secrets declared inside are forgotten after."""
    global _current
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _MaskedConsole(stdout), _MaskedConsole(stderr)  # type: ignore[assignment]
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, _MaskedConsole):
                stream.release()
        sys.stdout, sys.stderr = stdout, stderr
        with _lock:
            _declared.clear()
            _names.clear()
            _given.clear()
            _current = Masker()
