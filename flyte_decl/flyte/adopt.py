"""`init --from prog.py`: a program's code declarations as environments.yaml data.

Reads what importing the program declares: environments and `@env.task` arguments made with
`flyte_decl` (`import flyte_decl as flyte`), and real `flyte.TaskEnvironment`s when the `flyte`
package is installed (as `flyte-decl export flyte` writes them). Only what the code sets is
written, so the file resolves to the same effective settings as the code.

    data, notes = program_config(Path("hello.py"))
    data["environments"]["env2"]["resources"]      # {"cpu": 1, "memory": "250Mi"}

A real Flyte scalar resource (`cpu=1`) is a request only, written `{request: 1}`; a pair
`(1, 2)` is `{request: 1, limit: 2}`, and an equal pair the scalar `1`.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from flyte_decl.spec import DEFAULT_MAX_INLINE_IO_BYTES

_FLYTE_IMAGE_PREFIX = "ghcr.io/flyteorg/flyte:"  # Flyte's Debian base images (Image.from_debian_base)


def program_config(program: Path, out_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """(environments.yaml data, notes on what could not be written) for the declarations of `program`.

    Raises UsageError when the program cannot be imported or declares no environment.
    """
    from flyte_decl import _task_environment
    from flyte_decl.problems import UsageError
    from flyte_decl.session import import_script

    flyte_registry = _flyte_registry()
    before = len(flyte_registry)
    module = import_script(program)  # a program that raises is one located UsageError
    notes: list[str] = []
    environments: dict[str, Any] = {}
    # Real Flyte environments first: when a program declares both kinds under one name (an exported
    # module binding a flyte_decl program's functions), the real one is what it deploys.
    real = list(flyte_registry[before:]) + [v for v in vars(module).values() if _is_flyte_environment(v)]
    for env in real:
        if env.name not in environments:
            environments[env.name] = _flyte_environment(env, out_dir, notes)
    for name, env in _task_environment.declared_environments().items():
        environments.setdefault(name, _decl_environment(env))
    if not environments:
        raise UsageError(
            f"{program} declares no task environment (hint: declare one with "
            "flyte.TaskEnvironment(name=...) at module level)"
        )
    queues = {e.get("queue") for e in environments.values()}
    queues |= {t.get("queue") for e in environments.values() for t in (e.get("tasks") or {}).values()}
    data: dict[str, Any] = {"version": 1}
    if queues - {None, "default"}:  # a queue must be declared before environments use it
        data["queues"] = {q: {} for q in sorted(queues - {None, "default"})}
    data["environments"] = environments
    return data, notes


def _flyte_registry() -> list[Any]:
    if "flyte" not in sys.modules:
        try:
            import flyte  # noqa: F401
        except ImportError:
            return []
    from flyte._environment import _ENVIRONMENT_REGISTRY

    return _ENVIRONMENT_REGISTRY


def _is_flyte_environment(value: Any) -> bool:
    flyte = sys.modules.get("flyte")
    return flyte is not None and isinstance(value, flyte.TaskEnvironment)


def _decl_environment(env: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if env.description:
        entry["description"] = env.description
    if env.depends_on:
        entry["depends_on"] = [d.name for d in env.depends_on]
    entry.update(env.settings)
    tasks = {full.partition(".")[2]: {"fn": t.fn, **t.settings} for full, t in env.tasks.items()}
    if tasks:
        entry["tasks"] = tasks
    return entry


# --------------------------------------------------------------------------- real flyte objects


def _seconds(value: Any) -> int | float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    return int(seconds) if float(seconds).is_integer() else seconds


def _resources(resources: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("cpu", "memory"):
        value = getattr(resources, key)
        if isinstance(value, tuple):
            out[key] = value[0] if value[0] == value[1] else {"request": value[0], "limit": value[1]}
        elif value is not None:
            out[key] = {"request": value}
    for key in ("gpu", "disk", "shm"):
        value = getattr(resources, key)
        if value is not None:
            out[key] = value if isinstance(value, (int, str)) else str(value)
    return out


def _cache(cache: Any) -> str | dict[str, Any]:
    """The `cache:` value of a Flyte cache argument: its behavior, or a mapping when it sets more."""
    from flyte._cache.cache import cache_from_request

    policy = cache_from_request(cache)
    entry: dict[str, Any] = {"behavior": policy.behavior}
    if policy.version_override is not None:
        entry["version_override"] = policy.version_override
    if policy.get_ignored_inputs():
        entry["ignored_inputs"] = list(policy.get_ignored_inputs())
    for key in ("salt", "serialize"):
        if getattr(policy, key):
            entry[key] = getattr(policy, key)
    if getattr(policy, "max_age", None):
        entry["max_age"] = _seconds(policy.max_age)
    return entry if len(entry) > 1 else policy.behavior


def _timeout(timeout: Any) -> int | float | dict[str, int | float] | None:
    """The `timeout:` value of a Flyte timeout argument: seconds, or a mapping of Timeout's bounds."""
    bounds = {
        name: _seconds(bound)
        for name in ("max_runtime", "max_queued_time", "deadline")
        if (bound := getattr(timeout, name, timeout if name == "max_runtime" else None))
    }
    if list(bounds) == ["max_runtime"]:
        return bounds["max_runtime"]
    return bounds or None


def _secrets(secrets: Any) -> list[str]:
    items = [secrets] if isinstance(secrets, str) or not isinstance(secrets, (list, tuple)) else secrets
    return [item if isinstance(item, str) else (item.as_env_var or item.key) for item in items]


def _image(image: Any, out_dir: Path, notes: list[str], where: str) -> str | dict[str, Any] | None:
    if image is None or image == "auto":
        return None
    if isinstance(image, str):
        return image
    layers: dict[str, Any] = {}
    for layer in image._layers:
        kind = type(layer).__name__
        if kind == "Requirements":
            layers["requirements"] = Path(layer.file).resolve().relative_to(out_dir.resolve()).as_posix()
        elif kind == "PipPackages":
            layers.setdefault("pip_packages", []).extend(layer.packages or ())
        elif kind == "AptPackages":
            layers.setdefault("apt_packages", []).extend(layer.packages)
        elif kind == "Env":
            layers.setdefault("env", {}).update(dict(layer.env_vars))
        else:
            notes.append(f"{where}: image layer {kind} has no config key; add it to the image by hand")
    debian = str(image.base_image or "").startswith(_FLYTE_IMAGE_PREFIX)
    if not layers and not debian and image.base_image:
        return str(image.base_image)
    out: dict[str, Any] = {}
    if not debian and image.base_image:
        out["base_image"] = image.base_image
    if image.python_version:
        out["python_version"] = ".".join(str(p) for p in image.python_version)
    out.update(layers)
    for key in ("name", "registry"):
        value = getattr(image, key)
        if value and not (key == "name" and value == "flyte"):
            out[key] = value
    return out


def _flyte_environment(env: Any, out_dir: Path, notes: list[str]) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if env.description:
        entry["description"] = env.description
    if env.depends_on:
        entry["depends_on"] = [d.name for d in env.depends_on]
    if env.resources is not None:
        entry["resources"] = _resources(env.resources)
    if env.env_vars:
        entry["env_vars"] = dict(env.env_vars)
    if env.secrets:
        entry["secrets"] = _secrets(env.secrets)
    if env.queue:
        entry["queue"] = env.queue
    if _cache(env.cache) != "disable":
        entry["cache"] = _cache(env.cache)
    if env.reusable is not None:
        policy = env.reusable
        replicas = policy.replicas[1] if isinstance(policy.replicas, tuple) else policy.replicas
        if isinstance(policy.replicas, tuple):
            notes.append(
                f"{env.name}: reusable replicas {policy.replicas} written as {replicas} (a fixed count)"
            )
        entry["reusable"] = {
            "replicas": replicas,
            "idle_ttl": _seconds(policy.idle_ttl),
            "concurrency": policy.concurrency,
        }
    if env.interruptible:
        entry["interruptible"] = True
    image = _image(env.image, out_dir, notes, env.name)
    if image is not None:
        entry["image"] = image
    tasks = {}
    for full, template in env.tasks.items():
        tasks[full.partition(".")[2]] = _flyte_task(template, env, notes)
    if tasks:
        entry["tasks"] = tasks
    return entry


def _flyte_task(template: Any, env: Any, notes: list[str]) -> dict[str, Any]:
    from flyte_decl._task import module_name

    entry: dict[str, Any] = {"fn": f"{module_name(template.func)}:{template.func.__qualname__}"}
    if _cache(template.cache) != _cache(env.cache):
        entry["cache"] = _cache(template.cache)
    if template.queue and template.queue != env.queue:
        entry["queue"] = template.queue
    if template.interruptible is not None and bool(template.interruptible) != bool(env.interruptible):
        entry["interruptible"] = bool(template.interruptible)
    retries = template.retries
    count = retries if isinstance(retries, int) else retries.count
    if count:
        entry["retries"] = count
        backoff = getattr(retries, "backoff", None)
        if backoff is not None:
            entry["retries"] = {"count": count, "backoff": _seconds(backoff.base)}
            if backoff.factor not in (1.0, 2.0):
                notes.append(
                    f"{template.name}: retry backoff factor {backoff.factor} written as doubling "
                    "(flyte-decl's backoff doubles each retry)"
                )
    timeout = _timeout(template.timeout)
    if timeout:
        entry["timeout"] = timeout
    if template.max_inline_io_bytes != DEFAULT_MAX_INLINE_IO_BYTES:
        entry["max_inline_io_bytes"] = template.max_inline_io_bytes
    if template.docs is not None and template.docs.description:
        entry["description"] = template.docs.description
    return entry
