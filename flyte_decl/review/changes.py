"""What effectively changes between two resolved configs: per task, setting by setting, as data.

Values are compared by meaning, not spelling: `1Gi` equals `1024Mi`, cpu `1` equals `"1000m"`,
`30s` equals `30`, and the order of `secrets` does not matter. Where a value is set (a different
layer or line) is not a change; a different value is.

    diff = compare(old_resolved, new_resolved, "git:main", "environments.yaml")
    diff.changes[0]   # Change("env2.square", "task", "resources.memory.limit", "250Mi", "1Gi", Origin(...))
    diff.risks[0]     # Risk("env2.square", "memory_doubled", "memory more than doubled (250Mi -> 1Gi)")
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from flyte_decl.config.read import Document, Path_
from flyte_decl.config.resolve import Fields, Origin, Resolved, ResolvedTask
from flyte_decl.quantity import (
    QuantityError,
    parse_bytes_or_quantity,
    parse_cpu,
    parse_duration,
    parse_memory,
)


def _as_set(value: Any) -> Any:
    return tuple(sorted(set(map(str, value)))) if isinstance(value, list) else value


def _memory_or_auto(value: Any) -> Any:
    return value if value == "auto" else parse_memory(value)


def _inline_bytes(value: Any) -> Any:
    return parse_bytes_or_quantity(value, field="max_inline_io_bytes")


# How to read a value for comparison, by setting path; anything else compares as written.
_MEANING: dict[str, Callable[[Any], Any]] = {
    "resources.cpu.request": parse_cpu,
    "resources.cpu.limit": parse_cpu,
    "resources.memory.request": parse_memory,
    "resources.memory.limit": parse_memory,
    "resources.disk": parse_memory,
    "resources.shm": _memory_or_auto,
    "retries.backoff": parse_duration,
    "retries.on_oom.max": parse_memory,
    "reusable.idle_ttl": parse_duration,
    "timeout": parse_duration,
    "max_inline_io_bytes": _inline_bytes,
    "secrets": _as_set,
    "depends_on": _as_set,
    "cpu": parse_cpu,  # capacity
    "memory": parse_memory,  # capacity
}


def meaning(path: str, value: Any) -> Any:
    """The value as compared: `meaning("resources.memory.limit", "1Gi") == meaning(..., "1024Mi")`."""
    if value is None:
        return None
    parse = _MEANING.get(path)
    if parse is not None:
        try:
            return parse(value)
        except QuantityError:
            pass  # both sides passed validation; keep the text if a value still does not parse
    # true and 1 are different settings, though Python finds them equal.
    return (type(value).__name__, value) if isinstance(value, bool) else value


@dataclass(frozen=True)
class Change:
    """One effective setting that differs. `old`/`new` are as written; None means unset on that side.

    `subject` is a task's full name (`kind` "task"), `queue NAME`, `environment NAME`, `capacity` or `run`;
    `source` is where the new value is set, `was` where the old one was (None where unset).
    """

    subject: str
    kind: str
    path: str
    old: Any
    new: Any
    source: Origin | None
    was: Origin | None


@dataclass(frozen=True)
class Risk:
    """A change a reviewer should look at twice, e.g. `memory_doubled` or `secret_added`."""

    subject: str
    kind: str
    message: str


@dataclass(frozen=True)
class Rename:
    """An environment removed and another added with the same tasks (same names and functions)."""

    old: str
    new: str
    tasks: tuple[str, ...]


@dataclass
class ConfigDiff:
    """Everything that effectively differs between two configs, labelled as they were given."""

    old: str
    new: str
    changes: list[Change] = field(default_factory=list)
    tasks_added: list[str] = field(default_factory=list)
    tasks_removed: list[str] = field(default_factory=list)
    environments_added: list[str] = field(default_factory=list)
    environments_removed: list[str] = field(default_factory=list)
    renamed: list[Rename] = field(default_factory=list)
    risks: list[Risk] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """True when anything effective differs (the exit code of `diff` is 1 then)."""
        return bool(
            self.changes
            or self.tasks_added
            or self.tasks_removed
            or self.environments_added
            or self.environments_removed
            or self.renamed
        )


def compare(old: Resolved, new: Resolved, old_label: str, new_label: str) -> ConfigDiff:
    """Compare two resolved configs (both without errors)."""
    diff = ConfigDiff(old_label, new_label)
    old_envs, new_envs = set(old.environments), set(new.environments)
    diff.renamed = _renames(old, new, sorted(old_envs - new_envs), sorted(new_envs - old_envs))
    renamed_old = {r.old for r in diff.renamed}
    renamed_new = {r.new for r in diff.renamed}
    diff.environments_removed = sorted(old_envs - new_envs - renamed_old)
    diff.environments_added = sorted(new_envs - old_envs - renamed_new)

    # Tasks of a renamed environment are compared with their old selves under the new name.
    was = {name: name for name in new.tasks if name in old.tasks}
    for rename in diff.renamed:
        for task in rename.tasks:
            was[f"{rename.new}.{task}"] = f"{rename.old}.{task}"
    diff.tasks_added = sorted(set(new.tasks) - set(was))
    diff.tasks_removed = sorted(set(old.tasks) - set(was.values()))

    for name in sorted(was):
        before, after = old.tasks[was[name]], new.tasks[name]
        diff.changes += _task_changes(name, before, after, old.document, new.document)
        diff.risks += _task_risks(name, before, after)
    diff.changes += _document_changes(old, new)
    return diff


def _document_changes(old: Resolved, new: Resolved) -> list[Change]:
    """Settings outside tasks that still change how they run: depends_on, queues, capacity, run."""

    def settings(resolved: Resolved, base: Path_, layer: str, values: dict[str, Any]) -> Fields:
        return {
            key: (value, Origin(layer, resolved.document.mark((*base, key))))
            for key, value in values.items()
            if value is not None and key != "description"
        }

    changes = []
    for env in sorted(set(old.environments) & set(new.environments)):
        depends = [{"depends_on": r.environments[env].get("depends_on")} for r in (old, new)]
        where, layer = ("environments", env), f"environment {env}"
        changes += _changes(
            f"environment {env}",
            "environment",
            settings(old, where, layer, depends[0]),
            settings(new, where, layer, depends[1]),
        )
    queues = [_section(r.document.data, "queues") for r in (old, new)]
    for queue in sorted(set(queues[0]) | set(queues[1])):
        changes += _changes(
            f"queue {queue}",
            "queue",
            settings(old, ("queues", queue), "queues", _section(queues[0], queue)),
            settings(new, ("queues", queue), "queues", _section(queues[1], queue)),
        )
    for section in ("capacity", "run"):
        changes += _changes(
            section,
            section,
            settings(old, (section,), section, _section(old.document.data, section)),
            settings(new, (section,), section, _section(new.document.data, section)),
        )
    return changes


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _renames(old: Resolved, new: Resolved, removed: list[str], added: list[str]) -> list[Rename]:
    def signatures(resolved: Resolved, envs: list[str]) -> dict[str, frozenset[tuple[str, str]]]:
        tasks: dict[str, set[tuple[str, str]]] = {env: set() for env in envs}
        for task in resolved.tasks.values():
            if task.environment in tasks:
                tasks[task.environment].add((task.task, task.fn))
        return {env: frozenset(found) for env, found in tasks.items()}

    renames = []
    candidates = signatures(new, added)
    for env, tasks in signatures(old, removed).items():
        match = next((a for a, s in candidates.items() if tasks and s == tasks), None)
        if match is not None:
            del candidates[match]
            renames.append(Rename(env, match, tuple(sorted(t for t, _ in tasks))))
    return renames


def _task_changes(
    name: str, before: ResolvedTask, after: ResolvedTask, old: Document, new: Document
) -> list[Change]:
    def with_fn(task: ResolvedTask, doc: Document) -> Fields:
        fn_path = ("environments", task.environment, "tasks", task.task, "fn")
        return {"fn": (task.fn, Origin("task", doc.mark(fn_path))), **task.fields}

    return _changes(name, "task", with_fn(before, old), with_fn(after, new))


def _changes(subject: str, kind: str, old: Fields, new: Fields) -> list[Change]:
    changes = []
    for path in sorted(set(old) | set(new)):
        before, was = old.get(path, (None, None))
        after, source = new.get(path, (None, None))
        if type(before) is type(after) and before == after:
            continue  # written the same: no need to parse
        if meaning(path, before) != meaning(path, after):
            changes.append(Change(subject, kind, path, before, after, source, was))
    return changes


# --------------------------------------------------------------------------- risks


def _task_risks(name: str, before: ResolvedTask, after: ResolvedTask) -> list[Risk]:
    risks = []
    for resource in ("memory", "cpu"):
        grown = _more_than_doubled(before, after, resource)
        if grown:
            risks.append(Risk(name, f"{resource}_doubled", f"{resource} more than doubled ({grown})"))
        limit = f"resources.{resource}.limit"
        if before.value(limit) is not None and after.value(limit) is None:
            risks.append(
                Risk(
                    name, f"{resource}_limit_removed", f"{resource} limit removed (was {before.value(limit)})"
                )
            )
    old_queue, new_queue = before.value("queue"), after.value("queue")
    if old_queue != new_queue:
        risks.append(Risk(name, "queue_changed", f"queue changed ({old_queue} -> {new_queue})"))
    old_retries, new_retries = before.value("retries.count") or 0, after.value("retries.count") or 0
    if old_retries and not new_retries:
        risks.append(Risk(name, "retries_removed", f"retries removed (was {old_retries})"))
    if before.value("timeout") is not None and after.value("timeout") is None:
        risks.append(Risk(name, "timeout_removed", f"timeout removed (was {before.value('timeout')})"))
    added = sorted(set(after.value("secrets") or ()) - set(before.value("secrets") or ()))
    if added:
        risks.append(Risk(name, "secret_added", f"secret{'s' * (len(added) > 1)} added: {', '.join(added)}"))
    return risks


def _more_than_doubled(before: ResolvedTask, after: ResolvedTask, resource: str) -> str:
    """'250Mi -> 1Gi' when the limit (or, without limits, the request) more than doubled, else ''."""
    for which in ("limit", "request"):
        path = f"resources.{resource}.{which}"
        old, new = before.value(path), after.value(path)
        if old is not None and new is not None:
            old_amount, new_amount = meaning(path, old), meaning(path, new)
            if isinstance(old_amount, (int, Decimal)) and isinstance(new_amount, (int, Decimal)):
                return f"{old} -> {new}" if new_amount > 2 * old_amount else ""
    return ""
