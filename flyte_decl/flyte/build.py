"""Build an export plan into real `flyte.TaskEnvironment` objects, with the declared tasks bound.

Each bound function is also rebound in its module to its Flyte task (as `flyte-decl run` does
locally), so a task that calls another declared function starts a Flyte action in that function's
environment rather than running it inline.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from flyte_decl.flyte.plan import Call, ExportPlan
from flyte_decl.problems import UsageError


def require_flyte() -> ModuleType:
    """The `flyte` package; a usage error that says how to install it when it is missing."""
    try:
        import flyte
    except ImportError as exc:
        raise UsageError(
            f"the flyte package is not importable ({exc}); install it with: pip install 'flyte-decl[flyte]'"
        ) from None
    return flyte


def evaluate(value: Any, flyte: ModuleType) -> Any:
    """A plan value as an object: a `Call` becomes the `flyte` call it names, containers recurse."""
    if isinstance(value, Call):
        target: Any = evaluate(value.receiver, flyte) if value.receiver is not None else flyte
        for part in value.name.split("."):
            target = getattr(target, part)
        args = [evaluate(a, flyte) for a in value.args]
        return target(*args, **{k: evaluate(v, flyte) for k, v in value.kwargs})
    if isinstance(value, list):
        return [evaluate(v, flyte) for v in value]
    if isinstance(value, tuple):
        return tuple(evaluate(v, flyte) for v in value)
    if isinstance(value, dict):
        return {k: evaluate(v, flyte) for k, v in value.items()}
    return value


class BoundFunction:
    """Where a task's function lives: `owner.attribute` holds `original` (the function, or a task
    declared with flyte_decl's `@env.task` whose plain function is `function`)."""

    def __init__(self, owner: Any, attribute: str, original: Any, function: Callable[..., Any]) -> None:
        self.owner, self.attribute, self.original, self.function = owner, attribute, original, function

    def rebind(self, task: Any) -> None:
        setattr(self.owner, self.attribute, task)


def build(
    plan: ExportPlan, bindings: dict[str, BoundFunction], task_resolver: Any = None, *, rebind: bool = True
) -> dict[str, Any]:
    """`flyte.TaskEnvironment` objects by name, dependencies first; errors from Flyte name the environment.

    With `rebind`, each function's module attribute becomes its Flyte task (see the module docstring).
    """
    flyte = require_flyte()
    built: dict[str, Any] = {}
    for env in plan.environments:
        try:
            kwargs = {k: evaluate(v, flyte) for k, v in env.kwargs.items()}
            environment = flyte.TaskEnvironment(
                name=env.name, depends_on=[built[d] for d in env.depends_on], **kwargs
            )
        except (TypeError, ValueError) as exc:
            raise UsageError(f"environment {env.name}: Flyte refused it: {exc}") from None
        for task in env.tasks:
            binding = bindings[task.full]
            try:
                decorate = environment.task(
                    **{k: evaluate(v, flyte) for k, v in task.kwargs.items()}, task_resolver=task_resolver
                )
                template = decorate(binding.function)
            except (TypeError, ValueError) as exc:
                raise UsageError(f"task {task.full}: Flyte refused it: {exc}") from None
            if rebind:
                binding.rebind(template)
        built[env.name] = environment
    return built
