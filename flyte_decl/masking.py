"""Secret masking: which values are secret, how they may be spelled, and `****` in their place.

A declared secret (a name in any `secrets:` list) is secret by its value in the environment of the
process that reads the config. Like GitHub Actions' runner (its SecretMasker and ValueEncoders),
each value is masked wherever it appears, in every spelling output may give it:

- the value itself, and each line of a multi-line value (a PEM key) on its own, stripped, when it
  has at least `MIN_LINE` characters (shorter lines are masked only as part of the whole value:
  masking every `}` of a JSON secret would garble all output, as it does on GitHub);
- each of these escaped as JSON (`\\"`, `\\\\`, `\\uXXXX`, also with `<` as `\\u003c`, and without
  ASCII escapes), as Python's `repr`, `ascii` and bytes `repr` write them, percent-encoded as in
  URLs, HTML-escaped, escaped as a GitHub workflow command, and as a Markdown table cell;
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
    masker.binary(b"line two")                     # b"****"
    stream = masker.stream()
    stream.feed(b"a s3cr3") + stream.feed(b"t-value!") + stream.close()   # b"a ****!"
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, AnyStr, Generic, TextIO
from urllib.parse import quote

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
    lambda s: quote(s, safe=""),
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
    found = {encode(form) for form in forms for encode in _ENCODERS}
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
            data = json.loads(json.dumps(value))
        except (TypeError, ValueError, RecursionError):
            return self.text(repr(value))
        return self.deep(data) if self else data

    def deep(self, value: Any) -> Any:
        """`value` with every string in it masked, in dicts (keys too), lists, tuples and sets; other
        objects as they are. Masking each string before it is encoded (as JSON, say) also masks a
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
        if isinstance(value, (list, tuple, set, frozenset)):
            return type(value)(self._deep(item) for item in value)
        return value

    def stream(self) -> StreamMasker[bytes]:
        """A masker for one byte stream fed in chunks (a log pipe)."""
        return StreamMasker(self._bytes)

    def text_stream(self) -> StreamMasker[str]:
        """A masker for one text stream fed in chunks (a console)."""
        return StreamMasker(self._text)


class _Patterns(Generic[AnyStr]):
    """Literal patterns, str or bytes, compiled into one alternation."""

    def __init__(self, literals: list[AnyStr], mask: AnyStr) -> None:
        self.literals: list[AnyStr] = literals
        self.mask: AnyStr = mask
        self.regex: re.Pattern[AnyStr] | None = None
        if literals:
            bar: Any = b"|" if isinstance(mask, bytes) else "|"
            self.regex = re.compile(bar.join(re.escape(literal) for literal in literals))
        self.longest = max(map(len, literals), default=0)

    def sub(self, data: AnyStr) -> AnyStr:
        return self.regex.sub(self.mask, data) if self.regex is not None else data

    def search(self, data: AnyStr) -> bool:
        return self.regex is not None and self.regex.search(data) is not None


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
        if patterns.regex is None:
            return chunk
        data = chunk if self.pending is None else self.pending + chunk
        hold = _held_from(data, patterns.literals)
        if hold < len(data):
            for match in patterns.regex.finditer(data, max(0, hold - patterns.longest)):
                if match.start() < hold < match.end():  # a whole spelling: mask it now, do not cut it
                    hold = match.end()
                    break
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
        first = literal[:1]
        i = data.find(first, max(0, n - len(literal) + 1), hold)
        while i != -1:
            if literal.startswith(data[i:]):
                hold = i
                break
            i = data.find(first, i + 1, hold)
    return hold


# --------------------------------------------------------------------------- the CLI's console

_lock = threading.RLock()
_declared: set[str] = set()
_current = Masker()


def declare(names: Iterable[str]) -> None:
    """Add these secret names: from now on the console masks their values (from os.environ)."""
    global _current
    values = {os.environ.get(name, "") for name in names} - {""}
    with _lock:
        if not values <= _current.values:
            _declared.update(values)
            _current = Masker(_declared)


def current() -> Masker:
    """The masker of every secret declared so far in this command."""
    return _current


def secret_names(*trees: Any) -> set[str]:
    """Every name listed under a `secrets` key anywhere in these config trees (dicts, lists, tuples)."""
    names: set[str] = set()
    stack = list(trees)
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key != "secrets":
                    stack.append(value)
                elif isinstance(value, str):
                    names.add(value)
                elif isinstance(value, list):
                    names.update(item for item in value if isinstance(item, str))
                    stack.append(value)
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return names


class _MaskedConsole:
    """A text stream that masks what is written to it with `current()` and passes it on.

    No `buffer` attribute: click would write bytes there, around the masking.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._masker: Masker | None = None
        self._pending: StreamMasker[str] | None = None

    def write(self, text: str) -> int:
        if not isinstance(text, str):
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
            _current = Masker()
