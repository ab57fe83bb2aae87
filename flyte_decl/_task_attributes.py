"""Flyte's task attributes (`task.resources`, `task.cache`, `task.reusable`, ...) of a declared task.

Each is the value declared in code, as the Flyte object: the task's own argument (decorator, then
each `.override()` on top) else its environment's, else Flyte's default. environments.yaml layers
are not part of it: they apply when a run resolves the task (`flyte-decl explain` shows the result).

    t = env.task(oomer).override(resources=Resources(memory="500Mi"))
    t.resources      # Resources(cpu=1, memory="500Mi"): the environment's cpu is kept, as a run merges it
    t.cache          # Cache(behavior="disable")

Resources and env_vars merge field by field across the environment and the overrides, as the run
merges them (Flyte's override replaces them whole); every other argument replaces.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any

from flyte_decl._resources import Resources
from flyte_decl.spec import DEFAULT_MAX_INLINE_IO_BYTES

if TYPE_CHECKING:
    from flyte_decl._task import TaskTemplate

# The attributes, with the default of one that neither the task nor its environment sets.
ATTRIBUTES: dict[str, Any] = {
    "resources": None, "cache": "disable", "retries": 0, "timeout": None, "reusable": None,
    "pod_template": None, "interruptible": False, "queue": None, "env_vars": None, "secrets": None,
    "max_inline_io_bytes": DEFAULT_MAX_INLINE_IO_BYTES, "service_account": None, "plugin_config": None,
}  # fmt: skip
_FROM_ENVIRONMENT = {"resources", "cache", "reusable", "pod_template", "interruptible", "queue", "env_vars",
                     "secrets", "service_account", "plugin_config"}  # fmt: skip


def merged(name: str, below: Any, top: Any) -> Any:
    """`top` given over `below` for attribute `name`: Resources and env_vars field by field, else `top`."""
    if name == "resources" and isinstance(below, Resources) and isinstance(top, Resources):
        return replace(
            below, **{f.name: getattr(top, f.name) for f in fields(top) if getattr(top, f.name) is not None}
        )
    if name == "env_vars" and isinstance(below, dict) and isinstance(top, dict):
        return {**below, **top}
    return top


def with_arguments(given: dict[str, Any], arguments: dict[str, Any]) -> dict[str, Any]:
    """The task's arguments after one more `.override(**arguments)` (only the attributes are kept)."""
    out = dict(given)
    for name, value in arguments.items():
        if name in ATTRIBUTES:
            out[name] = merged(name, out[name], value) if name in out else value
    return out


def declared(template: TaskTemplate, name: str) -> Any:
    """The attribute `name` of `template`, as a Flyte object (see the module docstring)."""
    from flyte_decl._task_environment import Cache, RetryStrategy, cache_settings

    env_value = getattr(template.env, name, None) if name in _FROM_ENVIRONMENT and template.env else None
    value = merged(name, env_value, template.given[name]) if name in template.given else env_value
    if value is None:
        value = ATTRIBUTES[name]
    if name == "cache" and not isinstance(value, Cache):
        behavior = cache_settings(value)  # a behavior string: only a Cache gives a mapping
        assert isinstance(behavior, str)
        value = Cache(behavior=behavior)
    elif name == "retries" and not isinstance(value, RetryStrategy):
        value = RetryStrategy(count=value)
    elif name == "reusable" and value == "off":
        value = None
    return value
