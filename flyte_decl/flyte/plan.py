"""From a resolved configuration to Flyte declarations, as plain data (no `flyte` import needed).

The plan says which `flyte.TaskEnvironment(...)` and `@env.task(...)` calls reproduce every resolved
task's effective settings. Values that need the `flyte` package are `Call`s: `flyte_decl.flyte.build`
turns them into objects, `flyte_decl.flyte.source` into the text of a Python module, so both read
the same plan. Settings Flyte cannot carry become one warning each.

Where the settings go, as in Flyte (`TaskEnvironment` and `TaskEnvironment.task`):
resources, env_vars, secrets, reusable and image belong to the environment only; cache, queue and
interruptible to the environment, and a task that differs gets its own in the decorator; retries,
timeout and max_inline_io_bytes to the decorator only. An environment holds the value that all its
tasks share (so an `overrides:` entry that hits every task of an environment is carried), else its
own resolved value.

    plan = export_plan(load(["environments.yaml"], profile="prod"))
    plan.environments[0].kwargs["resources"]   # Call("Resources", kwargs=(("cpu", (1, 1)), ...))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from flyte_decl.config.resolve import Fields, Resolved, ResolvedTask
from flyte_decl.quantity import parse_bytes_or_quantity, parse_duration
from flyte_decl.spec import DEFAULT_MAX_INLINE_IO_BYTES, DEFAULT_QUEUE

# Flyte refuses a shorter idle_ttl on a ReusePolicy.
MIN_IDLE_TTL = 30
_ENVIRONMENT_ONLY = ("resources", "env_vars", "secrets", "reusable", "image")
_ENVIRONMENT_OR_TASK = ("cache", "queue", "interruptible")


@dataclass(frozen=True)
class Call:
    """A call into the `flyte` package: `flyte.NAME(*args, **kwargs)`, or `receiver.NAME(...)`."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    receiver: Call | None = None


@dataclass
class TaskPlan:
    """One declared task: the function bound by dotted path and its decorator arguments."""

    full: str  # ENV.TASK as declared in the config
    fn: str  # "pkg.module:func"
    function_name: str  # what Flyte names the task after: ENV.<function_name>
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class EnvironmentPlan:
    """One `flyte.TaskEnvironment`: its arguments, the environments it depends on, its tasks."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)
    tasks: list[TaskPlan] = field(default_factory=list)


@dataclass
class ExportPlan:
    """Every environment, dependencies first, and one warning per setting Flyte cannot carry."""

    environments: list[EnvironmentPlan]
    warnings: list[str]
    root_dir: Path  # the config's folder: bound modules and image requirement files are relative to it


def export_plan(
    resolved: Resolved,
    function_names: dict[str, str] | None = None,
    code_environments: dict[str, dict[str, Any]] | None = None,
) -> ExportPlan:
    """The plan for a resolved configuration (without errors).

    `function_names` (full task name -> the bound function's `__name__`) lets the plan warn where
    Flyte's task name (ENV.FUNCTION) differs from the config's (ENV.TASK). `code_environments`
    (name -> {"description", "depends_on"}) are what code declares beneath the file for the two
    keys that are not settings.
    """
    warnings = _run_wide_warnings(resolved)
    environments = {
        name: {**(code_environments or {}).get(name, {}), **{k: v for k, v in env.items() if v is not None}}
        for name, env in resolved.environments.items()
    }
    plans = {}
    for name in _dependency_order(environments):
        tasks = [t for t in resolved.tasks.values() if t.environment == name]
        plans[name] = _environment_plan(
            resolved, name, environments[name], tasks, function_names or {}, warnings
        )
    return ExportPlan(list(plans.values()), warnings, resolved.document.root_dir)


def _run_wide_warnings(resolved: Resolved) -> list[str]:
    out = []
    for queue in resolved.queues.values():
        if queue.concurrency is not None:
            out.append(
                f"queues.{queue.name}.concurrency ({queue.concurrency}) is not exported: a Flyte queue's "
                "limits are set in the cluster's queue configuration"
            )
        if queue.description:
            out.append(
                f"queues.{queue.name}.description is not exported: a Flyte queue is described in the "
                "cluster's queue configuration"
            )
    capacity = resolved.document.data.get("capacity")
    if capacity:
        out.append("capacity is not exported: it bounds the local scheduler only; a cluster has its own")
    if resolved.document.data.get("run"):
        out.append(
            "run is not exported: it says where `flyte-decl run` executes (local or Ray); Flyte runs on its cluster"
        )
    return out


def _dependency_order(environments: dict[str, dict[str, Any]]) -> list[str]:
    """Environment names in file order, each after the environments it depends on."""
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        for dependency in environments.get(name, {}).get("depends_on") or []:
            visit(dependency)
        ordered.append(name)

    for name in environments:
        visit(name)
    return ordered


def _group(fields: Fields, head: str) -> dict[str, Any]:
    """The leaves at or below `head` ("resources" -> {"resources.cpu.limit": 1, ...})."""
    prefix = head + "."
    return {path: value for path, (value, _) in fields.items() if path == head or path.startswith(prefix)}


def _environment_plan(
    resolved: Resolved,
    name: str,
    env_data: dict[str, Any],
    tasks: list[ResolvedTask],
    function_names: dict[str, str],
    warnings: list[str],
) -> EnvironmentPlan:
    own = resolved.environment_fields[name]
    plan = EnvironmentPlan(name, depends_on=list(env_data.get("depends_on") or []))
    if env_data.get("description"):
        plan.kwargs["description"] = env_data["description"]
    held: dict[str, dict[str, Any]] = {}
    for head in (*_ENVIRONMENT_ONLY, *_ENVIRONMENT_OR_TASK):
        groups = [_group(t.fields, head) for t in tasks]
        held[head] = groups[0] if groups and all(g == groups[0] for g in groups) else _group(own, head)
        value = _environment_value(head, held[head], name, warnings, resolved.document.root_dir)
        if value is not None:
            plan.kwargs[head] = value
    for task in tasks:
        description = ((env_data.get("tasks") or {}).get(task.task) or {}).get("description")
        plan.tasks.append(_task_plan(task, held, description, function_names, warnings))
    return plan


def _environment_value(
    head: str, group: dict[str, Any], env: str, warnings: list[str], root_dir: Path
) -> Any:
    if not group:
        return None
    if head == "resources":
        return _resources(group)
    if head == "env_vars":
        return {path.removeprefix("env_vars."): str(v) for path, v in group.items()}
    if head == "secrets":
        return [Call("Secret", kwargs=(("key", s), ("as_env_var", s))) for s in group["secrets"]]
    if head == "reusable":
        return _reuse_policy(group, env, warnings)
    if head == "image":
        return _image(group, root_dir)
    if head == "cache":
        return None if group.get("cache") == "disable" else _cache(group)
    if head == "queue":
        return None if group["queue"] == DEFAULT_QUEUE else group["queue"]
    return group["interruptible"] or None


def _task_plan(
    task: ResolvedTask,
    held: dict[str, dict[str, Any]],
    description: str | None,
    function_names: dict[str, str],
    warnings: list[str],
) -> TaskPlan:
    function_name = function_names.get(task.name, task.task)
    plan = TaskPlan(task.name, task.fn, function_name)
    if function_name != task.task:
        warnings.append(
            f"{task.name}: Flyte names a task after its function, so it deploys as "
            f"{task.environment}.{function_name}"
        )
    for head in _ENVIRONMENT_ONLY:
        if _group(task.fields, head) != held[head]:
            warnings.append(
                f"{task.name}: its {head} differ from its environment's and Flyte sets {head} per "
                f"environment only; on Flyte it gets {task.environment}'s"
            )
    for head in _ENVIRONMENT_OR_TASK:
        group = _group(task.fields, head)
        if group != held[head]:
            plan.kwargs[head] = _cache(group) if head == "cache" else group.get(head)
    retries = task.section("retries")
    if retries.get("on_oom.memory") is not None:
        warnings.append(
            f"{task.name}: retries.on_oom is not exported: Flyte retries an OOM-killed attempt with the "
            "same memory"
        )
    count = int(retries.get("count") or 0)
    if count:
        backoff = retries.get("backoff")
        plan.kwargs["retries"] = _retry_strategy(count, backoff) if backoff is not None else count
    bounds = tuple(
        (name, _timedelta(value))
        for name, path in (
            ("max_runtime", "timeout"),
            ("max_queued_time", "timeout.max_queued_time"),
            ("deadline", "timeout.deadline"),
        )  # fmt: skip
        if (value := task.value(path)) is not None and parse_duration(value)
    )
    if bounds:
        plan.kwargs["timeout"] = Call("Timeout", kwargs=bounds)
    inline = parse_bytes_or_quantity(task.value("max_inline_io_bytes"), field="max_inline_io_bytes")
    if inline != DEFAULT_MAX_INLINE_IO_BYTES:
        plan.kwargs["max_inline_io_bytes"] = inline
    if description:
        plan.kwargs["docs"] = Call("Documentation", kwargs=(("description", description),))
    return plan


def _resources(group: dict[str, Any]) -> Call:
    """Flyte's `(request, limit)` pairs: a scalar there is a request only, so both are always given."""
    kwargs = []
    for key in ("cpu", "memory"):
        request, limit = group.get(f"resources.{key}.request"), group.get(f"resources.{key}.limit")
        if request is not None and limit is not None:
            kwargs.append((key, (request, limit)))
        elif request is not None:
            kwargs.append((key, request))
        elif limit is not None:  # Kubernetes: a limit alone is also the request
            kwargs.append((key, (limit, limit)))
    for key in ("gpu", "disk", "shm"):
        if group.get(f"resources.{key}") is not None:
            kwargs.append((key, group[f"resources.{key}"]))
    return Call("Resources", kwargs=tuple(kwargs))


def _timedelta(duration: Any) -> timedelta:
    return timedelta(seconds=float(parse_duration(duration)))


def _retry_strategy(count: int, backoff: Any) -> Call:
    """Local retries wait `backoff * 2**(n-1)` before retry n; Flyte's Backoff needs a cap, the last wait."""
    base = parse_duration(backoff)
    cap = timedelta(seconds=float(base * Decimal(2) ** (count - 1)))
    factor = 2.0 if count > 1 else 1.0
    kwargs: tuple[tuple[str, Any], ...] = (("base", timedelta(seconds=float(base))), ("factor", factor))
    if factor > 1:
        kwargs += (("cap", cap),)
    return Call("RetryStrategy", kwargs=(("count", count), ("backoff", Call("Backoff", kwargs=kwargs))))


def _cache(group: dict[str, Any]) -> Call:
    """`flyte.Cache(...)` of a task's `cache` leaves (behavior at `cache`, the rest below it)."""
    kwargs: list[tuple[str, Any]] = [("behavior", group.get("cache", "disable"))]
    for key in ("version_override", "ignored_inputs", "salt", "serialize", "max_age"):
        value = group.get(f"cache.{key}")
        if value is None:
            continue
        if key == "ignored_inputs":
            value = tuple(value)
        elif key == "max_age":
            value = _timedelta(value)
        kwargs.append((key, value))
    return Call("Cache", kwargs=tuple(kwargs))


def _reuse_policy(group: dict[str, Any], env: str, warnings: list[str]) -> Call | None:
    if group.get("reusable") == "off":
        return None
    ttl = group.get("reusable.idle_ttl")
    seconds = float(parse_duration(ttl)) if ttl is not None else float(MIN_IDLE_TTL)
    if seconds < MIN_IDLE_TTL:
        warnings.append(
            f"{env}: reusable.idle_ttl ({ttl}) is below Flyte's minimum of {MIN_IDLE_TTL}s; "
            f"exported as {MIN_IDLE_TTL}s"
        )
        seconds = MIN_IDLE_TTL
    return Call(
        "ReusePolicy",
        kwargs=(
            ("replicas", int(group.get("reusable.replicas") or 1)),
            ("idle_ttl", timedelta(seconds=seconds)),
            ("concurrency", int(group.get("reusable.concurrency") or 1)),
        ),
    )


def _image(group: dict[str, Any], root_dir: Path) -> str | Call:
    """A URI as it is; a mapping as Flyte's image builder: a base, then one layer per key."""
    if "image" in group:
        return str(group["image"])
    spec = {path.removeprefix("image."): v for path, v in group.items()}
    env = {k.removeprefix("env."): str(v) for k, v in spec.items() if k.startswith("env.")}
    named = tuple((k, spec[k]) for k in ("registry", "name") if spec.get(k) is not None)
    python = spec.get("python_version")
    python_kwargs = (("python_version", tuple(int(p) for p in str(python).split("."))),) if python else ()
    layered = any(spec.get(k) for k in ("requirements", "pip_packages", "apt_packages")) or bool(env)
    if spec.get("base_image") is not None:
        image = Call("Image.from_base", (spec["base_image"],))
        if named or python_kwargs or layered:  # layers go on a clone marked extendable, as Flyte asks
            extendable = (("extendable", True),) if layered else ()
            image = Call("clone", kwargs=named + python_kwargs + extendable, receiver=image)
    else:
        image = Call("Image.from_debian_base", kwargs=python_kwargs + named)
    if spec.get("requirements") is not None:
        image = Call("with_requirements", ((root_dir / str(spec["requirements"])).resolve(),), receiver=image)
    if spec.get("pip_packages"):
        image = Call("with_pip_packages", tuple(spec["pip_packages"]), receiver=image)
    if spec.get("apt_packages"):
        image = Call("with_apt_packages", tuple(spec["apt_packages"]), receiver=image)
    if env:
        image = Call("with_env_vars", (env,), receiver=image)
    return image
