"""The export to a real Flyte 2 cluster (`pip install 'flyte-decl[flyte]'`).

    envs = flyte_decl.flyte.environments("environments.yaml", profile="prod")
    flyte.deploy(*envs.values())               # or: flyte-decl export flyte -o flyte_envs.py

`environments()` returns one real `flyte.TaskEnvironment` per environment, with every resolved
setting (all layers, overrides and the profiles applied) and the declared tasks bound by dotted
path. Settings Flyte cannot carry are reported as `FlyteExportWarning`s, one per setting.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flyte_decl.flyte.build import Binding, build
from flyte_decl.flyte.plan import ExportPlan, export_plan
from flyte_decl.problems import UsageError

__all__ = ["ConfigTaskResolver", "FlyteExportWarning", "environments", "prepare"]


class FlyteExportWarning(UserWarning):
    """A setting of the config that the Flyte declarations cannot carry."""


def environments(
    config: str | Path | Sequence[str | Path] | None = None, profile: str | Sequence[str] | None = None
) -> dict[str, Any]:
    """`flyte.TaskEnvironment` objects by name, dependencies first, built from the resolved config.

    `config` is a path or a list of paths overlaid in order (default: discovered as `flyte-decl run`
    does); `profile` a name or list of names. Raises ConfigLoadError for an invalid config and
    UsageError when a bound function cannot be imported or Flyte refuses a value.
    """
    plan, bindings = prepare(config, profile)
    for message in plan.warnings:
        warnings.warn(message, FlyteExportWarning, stacklevel=2)
    return build(plan, bindings, ConfigTaskResolver(config, profile))


def prepare(
    config: str | Path | Sequence[str | Path] | None = None, profile: str | Sequence[str] | None = None
) -> tuple[ExportPlan, dict[str, Binding]]:
    """The export plan and each task's function: resolve, import the bound modules, and resolve again
    with the environments those modules declare in code beneath the file (as `flyte-decl run` does)."""
    from flyte_decl import _task_environment
    from flyte_decl.config.load import load

    paths = [config] if isinstance(config, (str, Path)) else list(config or [])
    resolved = load(paths or None, profile=profile)
    bindings = _bindings(resolved.tasks, resolved.document.root_dir)
    if _task_environment.ENVIRONMENTS:
        resolved = load(paths or None, profile=profile, code=_task_environment.code_layers())
        bindings = _bindings(resolved.tasks, resolved.document.root_dir)
    names = {full: binding.function.__name__ for full, binding in bindings.items()}
    return export_plan(resolved, names), bindings


def _bindings(tasks: dict[str, Any], root_dir: Path) -> dict[str, Binding]:
    from flyte_decl._task import TaskTemplate
    from flyte_decl.config.imports import import_function
    from flyte_decl.spec import split_fn

    out = {}
    for full, task in tasks.items():
        module, attr_path = split_fn(task.fn)
        try:
            original = import_function(task.fn, root_dir)
        except Exception as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UsageError(
                f"{full}: cannot import its function {task.fn!r} ({reason}); "
                f"check with: flyte-decl validate --check-imports"
            ) from None
        owner: Any = sys.modules[module]
        *parents, attribute = attr_path.split(".")
        for part in parents:
            owner = getattr(owner, part)
        function = original
        if isinstance(original, TaskTemplate) or _is_flyte_task(original):
            function = original.func  # declared in code, or bound by an earlier export in this process
        out[full] = Binding(owner, attribute, original, function)
    return out


def _is_flyte_task(value: Any) -> bool:
    flyte = sys.modules.get("flyte")
    return flyte is not None and isinstance(value, flyte.TaskTemplate)


class ConfigTaskResolver:
    """Loads an exported task inside a Flyte container by building the same config's environments.

    Flyte's task resolver protocol (`import_path`, `loader_args`, `load_task`); the image needs
    flyte-decl and the config files beside the code.
    """

    def __init__(
        self,
        config: str | Path | Sequence[str | Path] | None = None,
        profile: str | Sequence[str] | None = None,
    ) -> None:
        self.config = [str(config)] if isinstance(config, (str, Path)) else [str(c) for c in config or []]
        self.profile = [profile] if isinstance(profile, str) else list(profile or [])

    @property
    def import_path(self) -> str:
        return f"{__name__}.ConfigTaskResolver"

    def loader_args(self, task: Any, root_dir: Any = None) -> list[str]:
        return ["config", ",".join(self.config), "profile", ",".join(self.profile), "task", task.name]

    def load_task(self, loader_args: list[str]) -> Any:
        args = dict(zip(loader_args[::2], loader_args[1::2], strict=False))
        configs = [c for c in args.get("config", "").split(",") if c]
        profiles = [p for p in args.get("profile", "").split(",") if p]
        task = args["task"]
        built = environments(configs or None, profiles or None)
        return built[task.partition(".")[0]].tasks[task]
