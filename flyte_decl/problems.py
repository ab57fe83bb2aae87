"""User-facing problems: every one has a location, a path, a message and (usually) a hint.

A `Problem` is data; renderers in `flyte_decl.render` turn lists of them into text, JSON or
GitHub annotations. Exceptions carry problems up to the one CLI handler that prints them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple


class Mark(NamedTuple):
    """A place in a config file (1-based line and column), or a pseudo-file like `<cli --set>`."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}" if self.line else self.file

    @property
    def short(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class Problem:
    """One error or warning about the configuration."""

    mark: Mark
    path: str  # dotted path in the document, e.g. "environments.env2.resources.memory"
    message: str
    hint: str = ""
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        text = f"{self.mark}: {self.severity}: "
        if self.path:
            text += f"{self.path}: "
        text += self.message
        if self.hint:
            text += f" ({self.hint})"
        return text

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.mark.file,
            "line": self.mark.line,
            "col": self.mark.col,
            "severity": self.severity,
            "path": self.path,
            "message": self.message,
            "hint": self.hint,
        }


class FlyteDeclError(Exception):
    """Base for errors shown to the user as one line each, never as a traceback."""

    exit_code = 1

    def lines(self) -> list[str]:
        return [f"error: {self}"]


class UsageError(FlyteDeclError):
    """Bad command-line usage, or no config to load: exit 2."""

    exit_code = 2


class ConfigLoadError(FlyteDeclError):
    """The configuration cannot be read or is invalid; carries every problem found."""

    exit_code = 2

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A "did you mean 'x'?" hint for a near miss, or a list of what is valid."""
    options = sorted(set(choices))
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    if not options:
        return ""
    shown = ", ".join(options[:8]) + (", ..." if len(options) > 8 else "")
    return f"expected one of: {shown}"
