"""One side of `flyte-decl diff`: a config file, or `git:REV[:PATH]` read through git without a checkout.

    read_side(parse_side("git:HEAD~1"))                  # ./environments.yaml (or .yml, ...) at HEAD~1
    read_side(parse_side("git:main:conf/envs.yaml"))     # `git show main:conf/envs.yaml`
    read_side(parse_side("environments.yaml"))           # the file on disk

Marks of a git side name the file as git does, `REV:PATH` (`HEAD~1:environments.yaml:12`), so an
error or a provenance says which side it is about.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from flyte_decl.config.load import CONFIG_NAMES
from flyte_decl.config.read import MAX_FILE_BYTES, Document, read_file, read_text
from flyte_decl.problems import UsageError

GIT_PREFIX = "git:"
_PYPROJECT_TABLE = re.compile(r"^\[tool\.flyte-decl[.\]]", re.M)


@dataclass(frozen=True)
class Side:
    """A side as given on the command line: `spec` as typed, and either a git `rev` or a file `path`.

    `path` of a git side is None when it is to be discovered at the revision.
    """

    spec: str
    rev: str | None
    path: str | None


def parse_side(spec: str) -> Side:
    """`git:REV`, `git:REV:PATH` or a file path.

    Example::

        parse_side("git:main:conf/environments.yaml")  # Side(spec=..., rev="main", path="conf/environments.yaml")
    """
    if not spec.startswith(GIT_PREFIX):
        return Side(spec, None, spec)
    rev, _, path = spec[len(GIT_PREFIX) :].partition(":")
    if not rev:
        raise UsageError(f"{spec}: no revision given (write git:REV or git:REV:PATH, e.g. git:HEAD~1)")
    return Side(spec, rev, path or None)


def read_side(side: Side, cwd: Path | None = None) -> Document:
    """Read one side into a Document; every failure is a one-line UsageError naming the side."""
    folder = cwd or Path.cwd()
    if side.rev is None:
        assert side.path is not None
        path = folder / side.path
        if not path.exists():
            raise UsageError(
                f"{side.spec}: file not found (give a config file, or git:REV[:PATH] for one at a git revision)"
            )
        return read_file(path, display=side.spec)
    return _read_git(side, side.rev, folder)


def _read_git(side: Side, rev: str, cwd: Path) -> Document:
    prefix = _git_text(["rev-parse", "--show-prefix"], cwd)
    if prefix is None:
        raise UsageError(
            f"{side.spec}: not inside a git repository (run flyte-decl diff in the repository, or compare files)"
        )
    commit = None
    if not rev.startswith("-"):
        commit = _git_text(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd)
    if commit is None:
        raise UsageError(
            f"{side.spec}: unknown git revision {rev!r} "
            "(check it with `git log --oneline --all`; a shallow CI checkout needs the revision fetched)"
        )
    sha = commit.strip()
    if side.path is None:
        name, text = _discover(side, sha, rev, cwd)
        return read_text(text, name, display=f"{rev}:{prefix.strip()}{name}")
    found = _blob(side, f"{sha}:{side.path}", rev, cwd)
    if found is None:
        raise UsageError(
            f"{side.spec}: no file {side.path!r} at revision {rev} "
            f"(list the files with `git ls-tree -r --name-only {rev}`)"
        )
    return read_text(found, side.path, display=f"{rev}:{side.path}")


def _discover(side: Side, sha: str, rev: str, cwd: Path) -> tuple[str, str]:
    """The config at the revision, found in the same order as on disk (relative to the working directory)."""
    for name in CONFIG_NAMES:
        text = _blob(side, f"{sha}:./{name}", rev, cwd)
        if text is not None:
            return name, text
    text = _blob(side, f"{sha}:./pyproject.toml", rev, cwd)
    if text is not None and _PYPROJECT_TABLE.search(text):
        return "pyproject.toml", text
    searched = ", ".join(CONFIG_NAMES) + ", [tool.flyte-decl] in pyproject.toml"
    raise UsageError(
        f"{side.spec}: no config at revision {rev} (searched {searched}; name it: git:{rev}:PATH)"
    )


def _blob(side: Side, name: str, rev: str, cwd: Path) -> str | None:
    """The text of a file at a revision, None if there is no such file."""
    info = _git_text(["cat-file", "--batch-check"], cwd, stdin=name)
    parts = (info or "").split()
    if len(parts) != 3:
        return None
    _, kind, size = parts
    if kind != "blob":
        raise UsageError(f"{side.spec}: {name.partition(':')[2]!r} at revision {rev} is a {kind}, not a file")
    if int(size) > MAX_FILE_BYTES:
        raise UsageError(f"{side.spec}: file is {int(size):,} bytes, over the {MAX_FILE_BYTES:,}-byte limit")
    try:
        return _git(["cat-file", "blob", name], cwd).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{side.spec}: not UTF-8 text ({exc.reason}); save the file as UTF-8") from None


def _git_text(args: list[str], cwd: Path, *, stdin: str | None = None) -> str | None:
    """git's output as text, or None when git fails."""
    try:
        return _git(args, cwd, stdin=stdin).decode("utf-8", errors="replace")
    except subprocess.CalledProcessError:
        return None


def _git(args: list[str], cwd: Path, *, stdin: str | None = None) -> bytes:
    """git's output; raises CalledProcessError when git fails."""
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            input=stdin.encode() if stdin is not None else None,
            capture_output=True,
            check=True,
        )
    except FileNotFoundError:
        raise UsageError("git is not installed or not on PATH (install git, or compare two files)") from None
    return done.stdout
