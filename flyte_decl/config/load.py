"""From command-line arguments to a resolved configuration: discover, read, overlay, check, resolve.

resolved = load(["environments.yaml"], profile="prod")
resolved.tasks["env2.square"].value("resources.memory.limit")   # "1Gi"
"""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from flyte_decl import masking
from flyte_decl.config import focus
from flyte_decl.config.check import check_references, check_resources, check_shape
from flyte_decl.config.model import ENV_VAR_PATTERN
from flyte_decl.config.read import (
    Document,
    Path_,
    display_path,
    dotted,
    read_file,
    read_file_text,
    read_text,
    read_value,
)
from flyte_decl.config.resolve import CodeLayers, Origin, Resolved, flatten, resolve
from flyte_decl.problems import ConfigLoadError, Mark, Problem, UsageError, did_you_mean

CONFIG_NAMES = ("environments.yaml", "environments.yml", "environments.toml")
SET_SOURCE = "<cli --set>"
RUN_SET_PREFIX = "run."  # `--set run.backend=ray` sets the document's `run:` section, not the root task


def discover(cwd: Path | None = None) -> Path:
    """The config file of a folder, in the documented order; a usage error names what was searched."""
    folder = cwd or Path.cwd()
    for name in CONFIG_NAMES:
        if (folder / name).is_file():
            return folder / name
    pyproject = folder / "pyproject.toml"
    if pyproject.is_file() and re.search(
        r"^\[tool\.flyte-decl[.\]]", pyproject.read_text(errors="replace"), re.M
    ):
        return pyproject
    searched = ", ".join(f"./{n}" for n in CONFIG_NAMES) + ", [tool.flyte-decl] in ./pyproject.toml"
    raise UsageError(f"no config found (searched {searched}); create environments.yaml or pass -c PATH")


def _has_config(cwd: Path | None) -> bool:
    try:
        discover(cwd)
    except UsageError:
        return False
    return True


def read_documents(
    paths: Sequence[str | Path] | None, cwd: Path | None = None, snapshot: dict[str, str] | None = None
) -> Document:
    """Read every -c file and overlay each on the ones before it (or discover one).

    With `snapshot` (absolute path -> text), a file found in it is read from there and any other
    file is read from disk and added to it: run history keeps the texts a run was resolved from, and
    a rerun resolves from them again.
    """
    documents = [_read(path, snapshot) for path in _files(paths, cwd)]
    return _overlaid(documents)


def _files(paths: Sequence[str | Path] | None, cwd: Path | None) -> list[Path]:
    return [Path(p) for p in paths] if paths else [discover(cwd)]


def _overlaid(documents: list[Document]) -> Document:
    for document in documents[1:]:
        overlay(documents[0], document)
    return documents[0]


def _read(path: Path, snapshot: dict[str, str] | None) -> Document:
    display = display_path(path)
    if snapshot is None:
        return read_file(path, display=display)
    key = str(path.resolve())
    if key not in snapshot:
        snapshot[key] = read_file_text(path, display)
    document = read_text(snapshot[key], path, display=display)
    document.root_dir = path.resolve().parent
    return document


def overlay(
    base: Document, top: Document, source: Path_ = (), target: Path_ = (), layer: str | None = None
) -> None:
    """Merge `top`'s subtree at `source` into `base` at `target`: mappings merge, the rest replaces.

    With `layer` ("profile prod"), the values it sets are labelled as that layer in provenance.
    """
    value = _get(top.data, source)
    _merge_into(base, top, source, target, value, layer)
    base.files.extend(f for f in top.files if f not in base.files)


def _merge_into(
    base: Document, top: Document, source: Path_, target: Path_, value: Any, layer: str | None
) -> None:
    current = _get(base.data, target)
    if isinstance(value, dict) and isinstance(current, dict):
        for key, child in value.items():
            _merge_into(base, top, (*source, key), (*target, key), child, layer)
        return
    parent = _get(base.data, target[:-1])
    parent[target[-1]] = value
    n, m = len(target), len(source)
    for own, theirs in ((base.marks, top.marks), (base.key_marks, top.key_marks), (base.texts, top.texts)):
        # Only a container has paths below it: replacing a scalar touches one entry (keeps overlays linear).
        if isinstance(current, (dict, list)):
            for path in [p for p in own if p[:n] == target]:
                del own[path]
        else:
            own.pop(target, None)
        if isinstance(value, (dict, list)):
            for path, mark in list(theirs.items()):
                if path[:m] == source:
                    own[(*target, *path[m:])] = mark  # type: ignore[assignment]
        elif source in theirs:
            own[target] = theirs[source]  # type: ignore[assignment]
    if top.variables.get(source):
        base.variables[target] = top.variables[source]
    if layer:
        base.layers[target] = layer


def _get(data: Any, path: Path_) -> Any:
    for part in path:
        if not isinstance(data, dict):
            return None
        data = data.setdefault(part, {}) if part not in data else data[part]
    return data


def apply_profiles(document: Document, profiles: Sequence[str]) -> None:
    """Overlay each named profile, in order, onto the document."""
    declared = document.data.get("profiles") or {}
    for name in profiles:
        if name not in declared:
            hint = did_you_mean(name, declared) if declared else "the config declares no profiles"
            raise UsageError(f"unknown profile {name!r} ({hint})")
        for key, value in (declared[name] or {}).items():
            if isinstance(value, dict):
                document.data.setdefault(key, {})
                if document.data[key] is None:
                    document.data[key] = {}
            overlay(document, document, ("profiles", name, key), (key,), layer=f"profile {name}")


def parse_profiles(profile: str | Sequence[str] | None) -> list[str]:
    """`--profile a,b` and repeated `--profile` both give ["a", "b"]."""
    if not profile:
        return []
    items = [profile] if isinstance(profile, str) else list(profile)
    return [name.strip() for item in items for name in item.split(",") if name.strip()]


def parse_sets(sets: Sequence[str]) -> tuple[list[tuple], list[Problem]]:
    """Run-level `--set PATH=VALUE` items, checked by the same model as the file, as layer assignments."""
    settings: dict[str, Any] = {}
    texts: dict[Path_, str] = {}
    problems: list[Problem] = []
    mark = Mark(SET_SOURCE)
    for item in sets:
        path, sep, text = item.partition("=")
        if not sep or not path or not re.fullmatch(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*", path):
            problems.append(Problem(mark, item, "expected PATH=VALUE", "e.g. --set resources.memory=1Gi"))
            continue
        value: Any = text  # variables stay text: `--set env_vars.PORT=8080` means "8080"
        keys = path.split(".")
        if not path.startswith("env_vars.") and text:
            value, value_texts, read_problems = read_value(text, SET_SOURCE)
            texts.update({("defaults", *keys, *p): t for p, t in value_texts.items()})
            problems += [Problem(mark, path, p.message, p.hint) for p in read_problems]
        elif not text:
            value = None
        node = settings
        for key in keys[:-1]:
            node = node.setdefault(key, {}) if isinstance(node.get(key, {}), dict) else {}
        node[keys[-1]] = value
    if problems:
        return [], problems
    wrapped = Document({"version": 1, "defaults": settings}, {(): mark}, {}, [SET_SOURCE], texts=texts)
    for problem in check_shape(wrapped) + check_resources(wrapped):
        path = problem.path.removeprefix("defaults.")
        problems.append(Problem(mark, path, problem.message, problem.hint, problem.severity))
    assignments = flatten(settings, (), None, "cli --set")
    return [(path, value, Origin("cli --set", mark)) for path, value, _ in assignments], problems


def apply_run_sets(document: Document, items: Sequence[str]) -> list[Problem]:
    """Overlay `--set run.KEY=VALUE` items on the document's `run:` section (over file and profiles),
    labelled as the layer "cli --set"; returns the document's shape problems after it."""
    values: dict[str, Any] = {}
    texts: dict[Path_, str] = {}
    for item in items:
        key, _, text = item.removeprefix(RUN_SET_PREFIX).partition("=")
        value, value_texts, _ = read_value(text, SET_SOURCE) if text else (None, {}, [])
        values[key] = value
        texts.update({("run", key, *path): written for path, written in value_texts.items()})
    marks: dict[Path_, Mark] = {
        ("run", *path): Mark(SET_SOURCE) for path in [(), *((key,) for key in values)]
    }
    wrapped = Document({"version": 1, "run": values}, marks, dict(marks), [SET_SOURCE], texts=texts)
    if not isinstance(document.data.get("run"), dict):
        document.data["run"] = {}
    overlay(document, wrapped, ("run",), ("run",), layer="cli --set")
    return check_shape(document)


def check_code_layers(code: CodeLayers) -> list[Problem]:
    """Settings declared in Python code (`TaskEnvironment`, `@env.task`), checked by the file's rules
    (ranges, the cpu limit's minimum), each at the line that declares it."""
    layers = [(name, settings, mark) for name, (settings, mark) in code.environments.items()]
    layers += [(name, settings, mark) for name, (_, settings, mark) in code.tasks.items()]
    problems = []
    for name, settings, mark in layers:
        wrapped = Document({"version": 1, "defaults": settings}, {(): mark}, {}, [mark.file])
        for problem in check_shape(wrapped) + check_resources(wrapped):
            path = f"{name}.{problem.path.removeprefix('defaults.')}"
            problems.append(Problem(mark, path, problem.message, problem.hint, problem.severity))
    return problems


def parse_env(items: Sequence[str]) -> dict[str, str]:
    """Run-level `-e KEY=VALUE` items."""
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(ENV_VAR_PATTERN, key):
            raise UsageError(f"-e {item!r}: expected KEY=VALUE with a variable name like LOG_LEVEL")
        env[key] = value
    return env


@dataclass
class Checked:
    """Everything `validate` reports: the resolution (if it got that far) and every problem."""

    document: Document
    resolved: Resolved | None
    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def check(
    paths: Sequence[str | Path] | None = None,
    *,
    profile: str | Sequence[str] | None = None,
    sets: Sequence[str] = (),
    queue: str | None = None,
    root_task: str | None = None,
    strict: bool = False,
    cwd: Path | None = None,
    code: CodeLayers | None = None,
    snapshot: dict[str, str] | None = None,
    only_root: bool = False,
    keep_fields: bool = True,
) -> Checked:
    """Read, check and resolve; unreadable files raise ConfigLoadError, other problems are returned.

    With `code` (declarations from Python), a missing config file is fine: the code alone is the config.
    `snapshot` is as in `read_documents`; `keep_fields` as in `resolve`.
    """
    with _gc_paused():
        if code is not None and not paths and not _has_config(cwd):
            root = code.root_dir or cwd or Path.cwd()
            document = Document({"version": 1}, {(): Mark("<code>")}, {}, ["<code>"], root)
        else:
            if only_root and root_task and code is None and snapshot is None:
                # One task's view: every value is read and checked, only the task's places are
                # located. Any problem is reported from the usual reading, as `validate` does.
                focused = focus.read_focused(_files(paths, cwd), root_task, parse_profiles(profile))
                if focused is not None:
                    document = _overlaid(focused)
                    checked = _check(
                        document, profile, sets, queue, root_task, strict, None, True, keep_fields
                    )
                    if not checked.problems:
                        return checked
            document = read_documents(paths, cwd, snapshot)
        return _check(document, profile, sets, queue, root_task, strict, code, only_root, keep_fields)


def check_document(
    document: Document, *, profile: str | Sequence[str] | None = None, strict: bool = False
) -> Checked:
    """Check and resolve a document that is already read, such as one read from a git revision.

    Example::

        checked = check_document(read_text(blob, "environments.yaml"), profile="prod")
    """
    with _gc_paused():
        return _check(document, profile, (), None, None, strict, None)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Loading builds hundreds of thousands of small acyclic objects; cycle collection during it doubles the time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _check(
    document: Document,
    profile: str | Sequence[str] | None,
    sets: Sequence[str],
    queue: str | None,
    root_task: str | None,
    strict: bool,
    code: CodeLayers | None,
    only_root: bool = False,
    keep_fields: bool = True,
) -> Checked:
    # Before anything is shown: values of the secrets it declares are masked in all output.
    blocks = (
        [s for s, _ in code.environments.values()] + [s for _, s, _ in code.tasks.values()] if code else []
    )
    masking.declare(masking.secret_names(document.data, blocks))
    problems = check_shape(document)
    profiles = parse_profiles(profile)
    if profiles and not problems:
        apply_profiles(document, profiles)
        problems = check_shape(document)
    run_sets = [item for item in sets if item.startswith(RUN_SET_PREFIX)]
    if run_sets and not problems:
        sets = [item for item in sets if not item.startswith(RUN_SET_PREFIX)]
        problems = apply_run_sets(document, run_sets)
    references = check_references(document, code.environments if code else (), code.tasks if code else ())
    problems += _not_following_from(problems, references)
    if code is not None:
        problems += check_code_layers(code)
    run_level, set_problems = parse_sets(sets) if sets else ([], [])
    problems += set_problems
    if queue is not None:
        if queue not in (document.data.get("queues") or {}) and queue != "default":
            known = list(document.data.get("queues") or {}) + ["default"]
            problems.append(
                Problem(
                    Mark("<cli --queue>"), "queue", f"unknown queue {queue!r}", did_you_mean(queue, known)
                )
            )
        run_level.append(("queue", queue, Origin("cli --queue", Mark("<cli --queue>"))))
    resolved = None
    if not [p for p in problems if p.severity == "error"]:
        resolved = resolve(
            document,
            run_level=run_level,
            root_task=root_task,
            code=code,
            only_root=only_root,
            keep_fields=keep_fields,
        )
        problems += resolved.problems
    if strict:
        problems = [Problem(p.mark, p.path, p.message, p.hint, "error") for p in problems]
    if document.variables:
        problems = name_variables(document, problems)
    problems.sort(key=lambda p: (p.mark.file, p.mark.line, p.mark.col))
    return Checked(document, resolved, problems)


def _not_following_from(reported: list[Problem], found: list[Problem]) -> list[Problem]:
    """`found` less the problems at or below a path already reported: one mistake, one error."""
    paths = {p.path for p in reported if p.severity == "error" and p.path}
    if not paths:
        return found

    def follows(path: str) -> bool:
        return path in paths or any(c in ".[" and path[:i] in paths for i, c in enumerate(path))

    return [p for p in found if not follows(p.path)]


def name_variables(document: Document, problems: list[Problem]) -> list[Problem]:
    """Say which `${VAR}` a wrong value came from (and when it was set but empty)."""
    by_path = {dotted(path): names for path, names in document.variables.items()}
    out = []
    for problem in problems:
        names = by_path.get(problem.path)
        if names:
            origin = ", ".join(
                f"${{{name}}}" + (" (set but empty)" if os.environ.get(name) == "" else "") for name in names
            )
            hint = f"{problem.hint}; " if problem.hint else ""
            problem = replace(problem, hint=f"{hint}the value comes from {origin}")
        out.append(problem)
    return out


def load(
    paths: Sequence[str | Path] | None = None,
    *,
    profile: str | Sequence[str] | None = None,
    sets: Sequence[str] = (),
    queue: str | None = None,
    root_task: str | None = None,
    strict: bool = False,
    cwd: Path | None = None,
    code: CodeLayers | None = None,
    snapshot: dict[str, str] | None = None,
    only_root: bool = False,
) -> Resolved:
    """The validated, resolved configuration; raises ConfigLoadError listing every error.

    With `only_root`, the whole file is read and checked but only `root_task` is resolved (see `resolve`).

    Example::

        resolved = flyte_decl.load(["environments.yaml"], profile="prod")
        spec = resolved.run_config().tasks["env2.square"]
    """
    checked = check(paths, profile=profile, sets=sets, queue=queue, root_task=root_task, strict=strict,
                    cwd=cwd, code=code, snapshot=snapshot, only_root=only_root)  # fmt: skip
    if checked.errors or checked.resolved is None:
        raise ConfigLoadError(checked.errors)
    return checked.resolved


def find_task(resolved: Resolved, name: str) -> str:
    """The full name of a task given by full or unique short name; a usage error otherwise."""
    if name in resolved.tasks:
        return name
    matches = [full for full, task in resolved.tasks.items() if task.task == name]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UsageError(
            f"task {name!r} is ambiguous: {', '.join(sorted(matches))} (use the full ENV.TASK name)"
        )
    # Every declared name, also those a resolution of one task (`only_root`) left out.
    declared = [
        f"{env}.{task}" for env, data in resolved.environments.items() for task in data.get("tasks") or {}
    ]
    choices = list(dict.fromkeys([*resolved.tasks, *declared]))
    choices += [full.partition(".")[2] for full in choices]
    raise UsageError(
        f"unknown task {name!r} ({did_you_mean(name, choices) or 'the config declares no tasks'})"
    )
