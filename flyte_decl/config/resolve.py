"""Resolve every task through the layers, remembering where each effective value came from.

Layers, lowest first: built-in defaults, `defaults:`, the environment (base first along `extends`),
the task entry, `overrides:` in file order, then run level (`--set`, `-e`, `--queue`).

Settings are flattened to leaf paths ("resources.memory.limit", "env_vars.LOG_LEVEL"), so "mappings
merge key by key" is a dict update, and "an explicit null resets to the built-in default" deletes
the leaves under that path. A scalar `cpu: 1` stands for `{request: 1, limit: 1}`; `retries: 3`
for `{count: 3}`; `task_queue` for `queue`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from flyte_decl.config.read import Document, Path_, dotted
from flyte_decl.problems import Mark, Problem
from flyte_decl.quantity import (
    parse_bytes_or_quantity,
    parse_cpu,
    parse_duration,
    parse_memory,
)
from flyte_decl.spec import (
    DEFAULT_QUEUE,
    CacheOptions,
    Capacity,
    OnOOM,
    QueueSpec,
    RetryPolicy,
    ReusePolicy,
    RunConfig,
    TaskSpec,
)


@dataclass(frozen=True, slots=True)
class Origin:
    """Which layer set a value, and where: a file position or a command-line flag."""

    layer: str
    mark: Mark | None = None

    def __str__(self) -> str:
        return f"{self.layer} ({self.mark.short})" if self.mark else self.layer

    def as_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "file": self.mark.file if self.mark else None,
            "line": self.mark.line if self.mark and self.mark.line else None,
        }


BUILT_IN = Origin("built-in")
BUILT_IN_DEFAULTS: dict[str, Any] = {
    "queue": DEFAULT_QUEUE,
    "retries.count": 0,
    "max_inline_io_bytes": "10Mi",
    "cache": "disable",
    "interruptible": False,
}

Fields = dict[str, tuple[Any, Origin]]


@dataclass
class CodeLayers:
    """Declarations made in Python (TaskEnvironment, @env.task), as settings in the file's shape."""

    environments: dict[str, tuple[dict[str, Any], Mark]] = field(default_factory=dict)
    tasks: dict[str, tuple[str, dict[str, Any], Mark]] = field(default_factory=dict)  # full name -> (fn, ...)
    root_dir: Path | None = None  # where the code's modules import from, when there is no config file

    def task_names_by_environment(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for full in self.tasks:
            env, _, task = full.partition(".")
            out.setdefault(env, []).append(task)
        return out


@dataclass(slots=True)
class ResolvedTask:
    """One task's effective settings: leaf path -> (value as written, origin)."""

    name: str
    environment: str
    task: str
    fn: str
    fields: Fields
    overrides: list[int] = field(default_factory=list)  # indices of the matching `overrides:` entries
    mark: Mark | None = None  # where the task entry is declared

    def value(self, path: str, default: Any = None) -> Any:
        entry = self.fields.get(path)
        return entry[0] if entry else default

    def section(self, prefix: str) -> dict[str, Any]:
        """The leaves under `prefix.` as a dict keyed by the rest of the path."""
        start = prefix + "."
        return {k[len(start) :]: v for k, (v, _) in self.fields.items() if k.startswith(start)}


@dataclass
class Resolved:
    """The outcome of resolution: tasks by full name, queues, capacity, and what was found on the way."""

    document: Document
    tasks: dict[str, ResolvedTask]
    environments: dict[str, dict[str, Any]]
    queues: dict[str, QueueSpec]
    capacity: Capacity
    problems: list[Problem] = field(default_factory=list)
    # Each environment's own effective fields (defaults, extends, code and YAML layers; no task entries).
    environment_fields: dict[str, Fields] = field(default_factory=dict)

    def run_config(self) -> RunConfig:
        """Typed specs for the runtime (call only when there are no errors)."""
        return RunConfig(
            tasks={name: to_spec(task, self.document) for name, task in self.tasks.items()},
            queues=self.queues,
            capacity=self.capacity,
            respec=self.with_call_settings,
        )

    def with_call_settings(self, name: str, settings: dict[str, Any]) -> TaskSpec:
        """Layer 6: the spec of `name` with `.override(...)` settings merged over its effective fields."""
        task = self.tasks[name]
        fields = dict(task.fields)
        apply(fields, flatten(settings, (), None, "call-site override", Mark("<code .override()>")))
        return to_spec(replace(task, fields=fields), self.document)


# --------------------------------------------------------------------------- flattening


def flatten(
    settings: dict[str, Any], base: Path_, doc: Document | None, origin_layer: str, mark: Mark | None = None
) -> list[tuple]:
    """A layer's settings as assignments: (leaf path, value, origin); value None means reset.

    Origins point into `doc` when the settings come from a file, else to the fixed `mark`.
    """
    out: list[tuple] = []

    def origin(path: Path_) -> Origin:
        if doc is None:
            return Origin(origin_layer, mark)
        return Origin(doc.layer(path) or origin_layer, doc.mark(path))

    for key, value in settings.items():
        if key in ("fn", "description", "extends", "depends_on", "tasks"):
            continue
        path = (*base, key)
        name = "queue" if key == "task_queue" else key
        if key == "resources" and isinstance(value, dict):
            for rkey, rvalue in value.items():
                rpath = (*path, rkey)
                if rkey in ("cpu", "memory") and rvalue is not None and not isinstance(rvalue, dict):
                    out.append((f"resources.{rkey}.request", rvalue, origin(rpath)))
                    out.append((f"resources.{rkey}.limit", rvalue, origin(rpath)))
                else:
                    _walk(out, origin, f"resources.{rkey}", rvalue, rpath)
        elif key == "retries" and isinstance(value, int) and not isinstance(value, bool):
            out.append(("retries.count", value, origin(path)))
        elif key in _WHOLE and isinstance(value, dict):
            # Flyte's Cache and Timeout are replaced whole: the head leaf (behavior, max_runtime) goes
            # first and clears what a lower layer set below it, then the rest of the mapping.
            head = _WHOLE[key]
            out.append((key, value.get(head), origin((*path, head) if head in value else path)))
            for sub, sub_value in value.items():
                if sub != head and sub_value is not None:
                    out.append((f"{key}.{sub}", sub_value, origin((*path, sub))))
        elif key in ("env_vars",) and isinstance(value, dict):
            for var, var_value in value.items():
                out.append((f"env_vars.{var}", var_value, origin((*path, var))))
        else:
            _walk(out, origin, name, value, path)
    return out


def _walk(out: list[tuple], origin: Callable[[Path_], Origin], prefix: str, value: Any, path: Path_) -> None:
    # Module-level, not a closure of `flatten`: a recursive closure is a reference cycle, and
    # loading runs with the cycle collector paused (each task's assignments would stay until the end).
    if isinstance(value, dict):
        for key, child in value.items():
            _walk(out, origin, f"{prefix}.{key}", child, (*path, key))
    else:
        out.append((prefix, value, origin(path)))


# Settings whose mapping form is one Flyte object, by the key its scalar form stands for.
_WHOLE = {"cache": "behavior", "timeout": "max_runtime"}
# Paths that hold a mapping: a scalar or null written there replaces everything below it.
_SUBTREES = frozenset(
    {"resources", "resources.cpu", "resources.memory", "env_vars", "retries", "retries.on_oom", "reusable"}
    | {"image", "image.env", *_WHOLE}
)


def apply(fields: Fields, assignments: list[tuple]) -> None:
    """Apply one layer's assignments: field by field; None deletes the leaf and everything below it."""
    for path, value, origin in assignments:
        if path in _SUBTREES:
            prefix = path + "."
            for key in [k for k in fields if k.startswith(prefix)]:
                del fields[key]
        elif path.startswith(("reusable.", "image.")):
            fields.pop(path.partition(".")[0], None)  # a mapping replacing "reusable: off" or an image URI
        if value is None:
            fields.pop(path, None)
            if path in BUILT_IN_DEFAULTS:
                fields[path] = (BUILT_IN_DEFAULTS[path], Origin(f"built-in (reset by {origin})"))
        else:
            fields[path] = (value, origin)


# --------------------------------------------------------------------------- resolution


def resolve(
    doc: Document,
    *,
    run_level: list[tuple] | None = None,
    root_task: str | None = None,
    code: CodeLayers | None = None,
    only_root: bool = False,
    keep_fields: bool = True,
) -> Resolved:
    """Resolve every task of a checked document (plus declarations from code beneath it).

    `run_level` assignments apply to `root_task` only. With `only_root`, only the tasks `root_task`
    names (by full or short name) are resolved, for one task's view (`explain`): the other tasks'
    effective-value problems and overrides that match no task go unreported. With
    `keep_fields=False` every task is resolved and checked as usual, but its `fields` are left
    empty afterwards (names, `fn`, marks and matched overrides remain): what `validate` needs, in
    a fraction of the memory (a task's effective fields take about 1 KB).
    """
    data = doc.data
    code = code or CodeLayers()
    problems: list[Problem] = []
    environments = {k: (v or {}) for k, v in (data.get("environments") or {}).items()}
    for name in code.environments:
        environments.setdefault(name, {})
    code_tasks = code.task_names_by_environment()
    defaults_layer = flatten(data.get("defaults") or {}, ("defaults",), doc, "defaults")
    base_fields: Fields = {k: (v, BUILT_IN) for k, v in BUILT_IN_DEFAULTS.items()}
    apply(base_fields, defaults_layer)

    env_fields: dict[str, Fields] = {}

    def environment_fields(name: str) -> Fields:
        # Iterative along `extends` (a chain may be thousands long); a cycle stops where it closes.
        chain: list[str] = []
        while name not in env_fields and name not in chain:
            chain.append(name)
            parent = (environments.get(name) or {}).get("extends")
            if not (isinstance(parent, str) and parent in environments):
                break
            name = parent
        for link in reversed(chain):
            parent = (environments.get(link) or {}).get("extends")
            inherited = env_fields.get(parent) if isinstance(parent, str) and parent != link else None
            fields = dict(inherited if inherited is not None else base_fields)
            if link in code.environments:
                settings, mark = code.environments[link]
                apply(fields, flatten(settings, (), None, f"code environment {link}", mark))
            apply(
                fields,
                flatten(environments.get(link) or {}, ("environments", link), doc, f"environment {link}"),
            )
            env_fields[link] = fields
        return env_fields[chain[0]] if chain else env_fields[name]

    overrides = [o for o in (data.get("overrides") or []) if isinstance(o, dict)]
    override_layers = [
        (
            index,
            o.get("match") or {},
            flatten(o.get("set") or {}, ("overrides", index, "set"), doc, f"overrides[{index}]"),
        )
        for index, o in enumerate(overrides)
    ]
    override_index = _OverrideIndex(override_layers)
    matched: set[int] = set()
    tasks: dict[str, ResolvedTask] = {}
    for env_name, env in environments.items():
        yaml_tasks = env.get("tasks") or {}
        names = [*yaml_tasks, *(t for t in code_tasks.get(env_name, []) if t not in yaml_tasks)]
        if only_root:
            names = [t for t in names if root_task in (f"{env_name}.{t}", t)]
            if not names:
                continue
        base = environment_fields(env_name)
        for task_name in names:
            entry = yaml_tasks.get(task_name) or {}
            task_path = ("environments", env_name, "tasks", task_name)
            full = f"{env_name}.{task_name}"
            fields = dict(base)
            code_fn, declared_at = "", doc.key_marks.get(task_path)
            if full in code.tasks:
                code_fn, settings, mark = code.tasks[full]
                apply(fields, flatten(settings, (), None, "code task", mark))
                declared_at = declared_at or mark
            apply(fields, flatten(entry, task_path, doc, "task"))
            hits = []
            for index, match, layer in override_index.candidates(env_name, task_name, full):
                if _matches(match, env_name, task_name, full, fields):
                    apply(fields, layer)
                    hits.append(index)
                    matched.add(index)
            if run_level and root_task in (full, task_name):
                apply(fields, run_level)
            task = ResolvedTask(
                full,
                env_name,
                task_name,
                str(entry.get("fn") or code_fn),
                fields,
                hits,
                declared_at,
            )
            problems.extend(_effective_problems(task))
            if not keep_fields:
                task.fields = {}
            tasks[full] = task

    unmatched = [i for i in range(len(overrides)) if i not in matched and not only_root]
    for index in unmatched:
        path = ("overrides", index, "match")
        problems.append(
            Problem(
                doc.mark(path),
                dotted(path),
                "selector matches no task",
                "check the environment and task names; `flyte-decl list` shows them",
                severity="warning",
            )
        )
    return Resolved(doc, tasks, environments, _queues(data), _capacity(data), problems, env_fields)


class _OverrideIndex:
    """The overrides that may match a task, in file order: those naming its environment or task
    literally, plus every glob selector. Resolution stays linear in tasks + overrides when selectors
    are names (a file of 10,000 tasks and 10,000 overrides would otherwise test 10**8 pairs)."""

    def __init__(self, layers: list[tuple[int, dict[str, Any], list[tuple]]]) -> None:
        self.layers = layers
        self.by_name: dict[tuple[str, str], list[int]] = {}
        self.globbed: list[int] = []
        for position, (_, match, _) in enumerate(layers):
            env, task = match.get("environment"), match.get("task")
            if isinstance(env, str) and not _GLOB.search(env):
                self.by_name.setdefault(("environment", env), []).append(position)
            elif isinstance(task, str) and not _GLOB.search(task):
                self.by_name.setdefault(("task", task), []).append(position)
            else:
                self.globbed.append(position)

    def candidates(self, env: str, task: str, full: str) -> list[tuple[int, dict[str, Any], list[tuple]]]:
        found = [
            *self.by_name.get(("environment", env), ()),
            *self.by_name.get(("task", task), ()),
            *(self.by_name.get(("task", full), ()) if full != task else ()),
            *self.globbed,
        ]
        return [self.layers[position] for position in sorted(set(found))]


_GLOB = re.compile(r"[*?\[]")


def _matches(match: dict[str, Any], env: str, task: str, full: str, fields: Fields) -> bool:
    env_glob, task_glob, queue_glob = match.get("environment"), match.get("task"), match.get("queue")
    if env_glob is not None and not fnmatch.fnmatchcase(env, env_glob):
        return False
    if task_glob is not None and not (
        fnmatch.fnmatchcase(task, task_glob) or fnmatch.fnmatchcase(full, task_glob)
    ):
        return False
    return not (queue_glob is not None and not fnmatch.fnmatchcase(str(fields["queue"][0]), queue_glob))


def _effective_problems(task: ResolvedTask) -> list[Problem]:
    """Mistakes that only show once layers combine: a request above its limit."""
    problems = []
    for key, parse in (("cpu", parse_cpu), ("memory", parse_memory)):
        request = task.fields.get(f"resources.{key}.request")
        limit = task.fields.get(f"resources.{key}.limit")
        if request and limit:
            try:
                above = parse(request[0]) > parse(limit[0])
            except ValueError:
                continue
            if above:
                where = request[1].mark or limit[1].mark or Mark("<config>")
                problems.append(
                    Problem(
                        where,
                        f"{task.name}.resources.{key}",
                        f"request {request[0]} ({request[1].layer}) is above the limit {limit[0]} ({limit[1].layer})",
                        "a request cannot exceed its limit",
                    )
                )
    return problems


def _queues(data: dict[str, Any]) -> dict[str, QueueSpec]:
    queues = {DEFAULT_QUEUE: QueueSpec(DEFAULT_QUEUE)}
    for name, queue in (data.get("queues") or {}).items():
        queue = queue or {}
        queues[name] = QueueSpec(name, queue.get("concurrency"), queue.get("description"))
    return queues


def _capacity(data: dict[str, Any]) -> Capacity:
    capacity = data.get("capacity") or {}
    cpu, memory = capacity.get("cpu"), capacity.get("memory")
    return Capacity(
        cpu=float(parse_cpu(cpu)) if cpu is not None else None,
        memory=parse_memory(memory) if memory is not None else None,
    )


# --------------------------------------------------------------------------- typed specs


def to_spec(task: ResolvedTask, doc: Document) -> TaskSpec:
    """The runtime's TaskSpec for a resolved task (values parsed into cores, bytes and seconds)."""
    value = task.value

    def cpu(path: str) -> float | None:
        raw = value(path)
        return float(parse_cpu(raw)) if raw is not None else None

    def memory(path: str) -> int | None:
        raw = value(path)
        return parse_memory(raw) if raw is not None else None

    def seconds(path: str) -> float | None:
        raw = value(path)
        return (float(parse_duration(raw)) or None) if raw is not None else None  # 0: no limit, as in Flyte

    env = doc.data.get("environments", {}).get(task.environment) or {}
    return TaskSpec(
        name=task.name,
        environment=task.environment,
        task=task.task,
        fn=task.fn,
        root_dir=doc.root_dir,
        cpu_request=cpu("resources.cpu.request"),
        cpu_limit=cpu("resources.cpu.limit"),
        memory_request=memory("resources.memory.request"),
        memory_limit=memory("resources.memory.limit"),
        gpu=_gpu_count(value("resources.gpu")),
        accelerator=_gpu_accelerator(value("resources.gpu")),
        queue=str(value("queue", DEFAULT_QUEUE)),
        env_vars={k: str(v) for k, v in task.section("env_vars").items()},
        secrets=tuple(value("secrets") or ()),
        timeout=seconds("timeout"),
        max_queued_time=seconds("timeout.max_queued_time"),
        deadline=seconds("timeout.deadline"),
        retries=_retry_policy(task),
        max_inline_io_bytes=parse_bytes_or_quantity(
            value("max_inline_io_bytes"), field="max_inline_io_bytes"
        ),
        cache=str(value("cache", "disable")),
        cache_options=CacheOptions(
            version_override=_optional_str(value("cache.version_override")),
            ignored_inputs=tuple(value("cache.ignored_inputs") or ()),
            salt=str(value("cache.salt") or ""),
            max_age=seconds("cache.max_age"),
            serialize=bool(value("cache.serialize")),
        ),
        reusable=_reuse_policy(task),
        depends_on=tuple(env.get("depends_on") or ()),
    )


def _optional_str(raw: Any) -> str | None:
    return None if raw is None else str(raw)


def _gpu_count(gpu: Any) -> int:
    if gpu is None:
        return 0
    if isinstance(gpu, int):
        return gpu
    _, _, count = str(gpu).partition(":")
    return int(count) if count.isdigit() else 1


def _gpu_accelerator(gpu: Any) -> str | None:
    """The accelerator of `gpu: "A100:2"` ("A100"); None for a plain count."""
    if gpu is None or isinstance(gpu, int):
        return None
    return str(gpu).partition(":")[0] or None


def _retry_policy(task: ResolvedTask) -> RetryPolicy:
    retries = task.section("retries")
    backoff = retries.get("backoff")
    grow = retries.get("on_oom.memory")
    on_oom = None
    if grow is not None:
        grow = str(grow)
        limit = retries.get("on_oom.max")
        on_oom = OnOOM(
            factor=float(Decimal(grow[:-1])) if grow.endswith("x") else None,
            add=parse_memory(grow[1:]) if grow.startswith("+") else None,
            max=parse_memory(limit) if limit is not None else None,
        )
    return RetryPolicy(
        count=int(retries.get("count") or 0),
        backoff=float(parse_duration(backoff)) if backoff is not None else 0.0,
        on_oom=on_oom,
    )


def _reuse_policy(task: ResolvedTask) -> ReusePolicy | None:
    reusable = task.section("reusable")
    if not reusable:
        return None
    ttl = reusable.get("idle_ttl")
    return ReusePolicy(
        replicas=int(reusable.get("replicas") or 1),
        idle_ttl=float(parse_duration(ttl)) if ttl is not None else 30.0,
        concurrency=int(reusable.get("concurrency") or 1),
    )
