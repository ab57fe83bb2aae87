"""The export to a real Flyte 2 cluster (`pip install 'flyte-decl[flyte]'`).

    envs = flyte_decl.flyte.environments("environments.yaml", profile="prod")
    flyte.deploy(*envs.values())               # or: flyte-decl export flyte -o flyte_envs.py

`environments()` returns one real `flyte.TaskEnvironment` per environment, with every resolved
setting (all layers, overrides and the profiles applied) and the declared tasks bound by dotted
path. Settings Flyte cannot carry are reported as `FlyteExportWarning`s, one per setting. Each bound
function is rebound in its module to its Flyte task, so calls between tasks are Flyte actions.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flyte_decl.flyte.build import BoundFunction, build
from flyte_decl.flyte.plan import ExportPlan, export_plan
from flyte_decl.problems import UsageError

__all__ = ["ConfigTaskResolver", "FlyteExportWarning", "environments", "prepare"]


class FlyteExportWarning(UserWarning):
    """A setting of the config that the Flyte declarations cannot carry."""


def environments(
    config: str | Path | Sequence[str | Path] | None = None,
    profile: str | Sequence[str] | None = None,
    *,
    programs: Sequence[str | Path] = (),
) -> dict[str, Any]:
    """`flyte.TaskEnvironment` objects by name, dependencies first, built from the resolved config.

    `config` is a path or a list of paths overlaid in order (default: discovered as `flyte-decl run`
    does); `profile` a name or list of names; `programs` Python files whose code declarations lie
    beneath the config (without a config file, they are the config). Raises ConfigLoadError for an
    invalid config and UsageError when a bound function cannot be imported or Flyte refuses a value.
    """
    plan, bindings = prepare(config, profile, programs)
    for message in plan.warnings:
        warnings.warn(message, FlyteExportWarning, stacklevel=2)
    return build(plan, bindings, ConfigTaskResolver(config, profile, programs))


def prepare(
    config: str | Path | Sequence[str | Path] | None = None,
    profile: str | Sequence[str] | None = None,
    programs: Sequence[str | Path] = (),
) -> tuple[ExportPlan, dict[str, BoundFunction]]:
    """The export plan and each task's function: import `programs`, resolve, import the bound modules,
    and resolve again with the environments declared in code beneath the file (as `flyte-decl run` does)."""
    from flyte_decl import _task_environment
    from flyte_decl.config.load import load
    from flyte_decl.session import import_script

    for program in programs:
        import_script(Path(program))
    paths = [config] if isinstance(config, (str, Path)) else list(config or [])
    code = _task_environment.code_layers() if programs else None
    resolved = load(paths or None, profile=profile, code=code)
    bindings = _bindings(resolved.tasks, resolved.document.root_dir)
    if _task_environment.ENVIRONMENTS:
        resolved = load(paths or None, profile=profile, code=_task_environment.code_layers())
        bindings = _bindings(resolved.tasks, resolved.document.root_dir)
    names = {full: binding.function.__name__ for full, binding in bindings.items()}
    in_code = {
        name: {"description": env.description, "depends_on": [d.name for d in env.depends_on] or None}
        for name, env in _task_environment.declared_environments().items()
    }
    return export_plan(resolved, names, in_code), bindings


def _bindings(tasks: dict[str, Any], root_dir: Path) -> dict[str, BoundFunction]:
    """Each task's function, checked as `flyte-decl run` checks it (flyte_decl.binding)."""
    from flyte_decl.binding import Unbindable, bind
    from flyte_decl.spec import split_fn

    out = {}
    for full, task in tasks.items():
        module, attr_path = split_fn(task.fn)
        *parents, attribute = attr_path.split(".")
        try:
            binding = bind(task.fn, root_dir)
            function, owner_class = binding.function, binding.owner_class
        except Unbindable as exc:
            owner_class = None
            function = _flyte_task_function(module, attr_path)  # bound by an export earlier in this process
            if function is None:
                raise UsageError(f"{full}: {exc.message}" + (f" ({exc.hint})" if exc.hint else "")) from None
        if owner_class is not None:
            raise UsageError(
                f"{full}: {task.fn!r} is a class method and a Flyte task is a function "
                "(bind a module-level function that calls it)"
            )
        owner: Any = sys.modules[module]
        for part in parents:
            owner = getattr(owner, part)
        out[full] = BoundFunction(owner, attribute, getattr(owner, attribute), function)
    return out


def _flyte_task_function(module: str, attr_path: str) -> Any:
    target: Any = sys.modules.get(module)
    for part in attr_path.split("."):
        target = getattr(target, part, None)
    return target.func if _is_flyte_task(target) else None


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
        programs: Sequence[str | Path] = (),
    ) -> None:
        self.config = [str(config)] if isinstance(config, (str, Path)) else [str(c) for c in config or []]
        self.profile = [profile] if isinstance(profile, str) else list(profile or [])
        self.programs = [str(p) for p in programs]

    @property
    def import_path(self) -> str:
        return f"{__name__}.ConfigTaskResolver"

    def loader_args(self, task: Any, root_dir: Any = None) -> list[str]:
        lists = {"config": self.config, "profile": self.profile, "programs": self.programs}
        return [
            *(item for key, values in lists.items() for item in (key, ",".join(values))),
            "task",
            task.name,
        ]

    def load_task(self, loader_args: list[str]) -> Any:
        args = dict(zip(loader_args[::2], loader_args[1::2], strict=False))
        configs = [c for c in args.get("config", "").split(",") if c]
        profiles = [p for p in args.get("profile", "").split(",") if p]
        programs = [p for p in args.get("programs", "").split(",") if p]
        task = args["task"]
        built = environments(configs or None, profiles or None, programs=programs)
        return built[task.partition(".")[0]].tasks[task]
