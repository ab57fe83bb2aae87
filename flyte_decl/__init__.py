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
    "ActionFailed": "flyte_decl.runtime.records",
    "Resources": "flyte_decl._resources",
    "RetryStrategy": "flyte_decl._task_environment",
    "ReusePolicy": "flyte_decl._task_environment",
    "Run": "flyte_decl._run",
    "RunContext": "flyte_decl._run",
    "TaskEnvironment": "flyte_decl._task_environment",
    "TaskTemplate": "flyte_decl._task",
    "Timeout": "flyte_decl._task_environment",
    "load": "flyte_decl.config.load",
    "map": "flyte_decl._run",
    "run": "flyte_decl._run",
    "with_runcontext": "flyte_decl._run",
}
__all__ = [
    "ActionFailed",
    "Resources",
    "RetryStrategy",
    "ReusePolicy",
    "Run",
    "RunContext",
    "TaskEnvironment",
    "TaskTemplate",
    "Timeout",
    "load",
    "map",
    "run",
    "with_runcontext",
]

if TYPE_CHECKING:
    from flyte_decl._resources import Resources
    from flyte_decl._run import Run, RunContext, map, run, with_runcontext
    from flyte_decl._task import TaskTemplate
    from flyte_decl._task_environment import RetryStrategy, ReusePolicy, TaskEnvironment, Timeout
    from flyte_decl.config.load import load
    from flyte_decl.runtime.records import ActionFailed


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'flyte_decl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
