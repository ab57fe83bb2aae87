"""flyte-decl: declarative task environments with locally enforced limits.

The public API mirrors Flyte 2's, so Flyte code runs unchanged under `import flyte_decl as flyte`::

    import flyte_decl as flyte

    env = flyte.TaskEnvironment(name="env2", resources=flyte.Resources(cpu=1, memory="250Mi"))

    @env.task
    async def square(i: int = 3) -> int:
        return i * i

    run = flyte.run(square, 5)      # an isolated process, limited to 1 CPU and 250Mi
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public names, imported on first use so that `flyte-decl validate` does not pay for the runtime.
_EXPORTS = {
    "AMD_GPU": "flyte_decl._resources",
    "Backoff": "flyte_decl._task_environment",
    "Cache": "flyte_decl._task_environment",
    "Device": "flyte_decl._resources",
    "GPU": "flyte_decl._resources",
    "HABANA_GAUDI": "flyte_decl._resources",
    "Neuron": "flyte_decl._resources",
    "PodTemplate": "flyte_decl._task_environment",
    "Secret": "flyte_decl._task_environment",
    "TPU": "flyte_decl._resources",
    "ActionFailed": "flyte_decl.runtime.records",
    "ActionOutputs": "flyte_decl._run",
    "Image": "flyte_decl._image",
    "Resources": "flyte_decl._resources",
    "RetryStrategy": "flyte_decl._task_environment",
    "ReusePolicy": "flyte_decl._task_environment",
    "Run": "flyte_decl._run",
    "RunContext": "flyte_decl._run",
    "TaskContext": "flyte_decl._context",
    "TaskEnvironment": "flyte_decl._task_environment",
    "TaskTemplate": "flyte_decl._task",
    "Timeout": "flyte_decl._task_environment",
    "ctx": "flyte_decl._context",
    "custom_context": "flyte_decl._context",
    "get_custom_context": "flyte_decl._context",
    "group": "flyte_decl._context",
    "init": "flyte_decl._initialize",
    "init_from_api_key": "flyte_decl._initialize",
    "init_from_config": "flyte_decl._initialize",
    "init_in_cluster": "flyte_decl._initialize",
    "init_passthrough": "flyte_decl._initialize",
    "load": "flyte_decl.config.load",
    "logger": "flyte_decl._initialize",
    "map": "flyte_decl._run",
    "run": "flyte_decl._run",
    "trace": "flyte_decl._trace",
    "with_runcontext": "flyte_decl._run",
}
# Submodules reachable as attributes, as in Flyte (`flyte.errors.OOMError` after `import flyte`).
_SUBMODULES = {"durable", "errors", "io", "report"}
__all__ = [
    "durable",
    "logger",
    "report",
    "AMD_GPU",
    "Backoff",
    "Cache",
    "Device",
    "GPU",
    "HABANA_GAUDI",
    "Neuron",
    "PodTemplate",
    "Secret",
    "TPU",
    "ActionFailed",
    "ActionOutputs",
    "Image",
    "Resources",
    "RetryStrategy",
    "ReusePolicy",
    "Run",
    "RunContext",
    "TaskContext",
    "TaskEnvironment",
    "TaskTemplate",
    "Timeout",
    "ctx",
    "custom_context",
    "errors",
    "get_custom_context",
    "group",
    "init",
    "init_from_api_key",
    "init_from_config",
    "init_in_cluster",
    "init_passthrough",
    "io",
    "load",
    "map",
    "run",
    "trace",
    "with_runcontext",
]

if TYPE_CHECKING:
    from flyte_decl import durable, errors, io, report
    from flyte_decl._context import TaskContext, ctx, custom_context, get_custom_context, group
    from flyte_decl._image import Image
    from flyte_decl._initialize import (
        init,
        init_from_api_key,
        init_from_config,
        init_in_cluster,
        init_passthrough,
        logger,
    )
    from flyte_decl._resources import AMD_GPU, GPU, HABANA_GAUDI, TPU, Device, Neuron, Resources
    from flyte_decl._run import ActionOutputs, Run, RunContext, map, run, with_runcontext
    from flyte_decl._task import TaskTemplate
    from flyte_decl._task_environment import (
        Backoff,
        Cache,
        PodTemplate,
        RetryStrategy,
        ReusePolicy,
        Secret,
        TaskEnvironment,
        Timeout,
    )
    from flyte_decl._trace import trace
    from flyte_decl.config.load import load
    from flyte_decl.runtime.records import ActionFailed


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"flyte_decl.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'flyte_decl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


# `import flyte_decl as flyte` in a program makes its other flyte imports flyte_decl's too (see _alias).
_alias_module = importlib.import_module("flyte_decl._alias")
_alias_module.install_if_imported_as_flyte()
