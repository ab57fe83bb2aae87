"""From "run this task" to a ready runner: shared by `flyte-decl run` and `flyte_decl.run(...)`.

prepared = prepare_run("hello_wf", ["--data", "hi"])
result = prepared.runner().run(prepared.task, {"data": "hi"}, env=prepared.env)
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flyte_decl import _alias, _task_environment, masking
from flyte_decl._task import TaskTemplate, declaration_error
from flyte_decl.backends import BackendFactory
from flyte_decl.binding import Binding
from flyte_decl.config.imports import bind_all
from flyte_decl.config.load import find_task, load, parse_env
from flyte_decl.config.read import dotted
from flyte_decl.config.resolve import CodeLayers, Resolved
from flyte_decl.problems import ConfigLoadError, Mark, Problem, UsageError, did_you_mean
from flyte_decl.quantity import format_bytes, format_cpu, format_seconds
from flyte_decl.runtime.limits import Mechanisms
from flyte_decl.runtime.records import ActionEvent
from flyte_decl.runtime.runner import Answered, LocalRunner, Reuse
from flyte_decl.spec import RunConfig, TaskSpec


def home_dir(root_dir: Path) -> Path:
    """Where runs are kept: $FLYTE_DECL_HOME, else .flyte-decl/ beside the config."""
    return Path(os.environ.get("FLYTE_DECL_HOME") or root_dir / ".flyte-decl")


@dataclass
class PreparedRun:
    """A resolved configuration, the root task, its function and the run-level environment."""

    task: str
    function: Callable[..., Any]
    resolved: Resolved
    config: RunConfig
    env: dict[str, str] = field(default_factory=dict)
    params: list[str] = field(default_factory=list)  # command-line tokens left for the task's parameters
    problems: list[Problem] = field(default_factory=list)  # what stops a run (prepare_run(check=False))

    @property
    def spec(self) -> TaskSpec:
        return self.config.tasks[self.task]

    @property
    def short_name(self) -> str | None:
        """The root task's Flyte `short_name`, when code gave it one (a display label)."""
        return _task_environment.short_name_of(self.function)

    def runner(
        self,
        on_event: Callable[[ActionEvent], None] | None = None,
        *,
        log_dir: Path | None = None,
        reuse: Reuse | None = None,
        on_answer: Answered | None = None,
        backend: BackendFactory | None = None,
    ) -> LocalRunner:
        """A runner for this configuration; `log_dir` defaults to a fresh folder under the home dir."""
        log_dir = log_dir or home_dir(self.spec.root_dir) / "logs" / f"{os.getpid()}-{id(self):x}"
        return LocalRunner(self.config, log_dir=log_dir, on_event=on_event, reuse=reuse, on_answer=on_answer,
                           backend=backend)  # fmt: skip

    def header(self, mechanisms: Mechanisms) -> str:
        spec = self.spec
        limits = [
            f"cpu {format_cpu(spec.cpu_limit)}" if spec.cpu_limit is not None else "cpu unlimited",
            f"memory {format_bytes(spec.memory_limit)}"
            if spec.memory_limit is not None
            else "memory unlimited",
        ]
        for name, bound in (("timeout", spec.timeout), ("max_queued_time", spec.max_queued_time),
                            ("deadline", spec.deadline)):  # fmt: skip
            if bound:
                limits.append(f"{name} {format_seconds(bound)}")
        alias = "; `import flyte` is flyte-decl" if _alias.installed() else ""
        return (
            f"run {spec.name} in {spec.environment} ({', '.join(limits)}; queue {spec.queue}); "
            f"enforced by {mechanisms.summary()}{alias}"
        )


def import_script(path: Path) -> Any:
    """Import a Python file as its own module name (its folder first on sys.path), as `flyte run FILE` does."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file (hint: give the path of a .py file that declares tasks)")
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = path.stem
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path.resolve()):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path.resolve())
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        located = declaration_error(exc) if isinstance(exc, (ValueError, TypeError)) else None
        if located is not None:
            raise located from None
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise UsageError(
            f"{_raised_at(exc, path)}: importing {path} raised {type(exc).__name__}: {first} "
            f"(hint: run `python {path}` to see the traceback)"
        ) from None
    return module


def _raised_at(exc: BaseException, path: Path) -> str:
    """ "file:line" of the innermost frame of the program's own file in the exception's traceback."""
    where = str(path)
    tb = exc.__traceback__
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename).resolve() == path.resolve():
            where = f"{path}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where


def prepare_run(
    target: str,
    params: Sequence[str] = (),
    *,
    configs: Sequence[str] = (),
    profiles: Sequence[str] = (),
    sets: Sequence[str] = (),
    queue: str | None = None,
    env_items: Sequence[str] = (),
    snapshot: dict[str, str] | None = None,
    check: bool = True,
) -> PreparedRun:
    """Resolve the configuration for a run of `target` (a task name, or FILE.py followed by a task).

    Every task's module is imported and every binding and declared secret checked before anything
    starts (raising as `preflight` does; with `check=False` the problems are left in
    `PreparedRun.problems`, for a dry run to list). Environments the imported code declares become
    layers beneath the YAML. `snapshot` (config path -> text) records the config texts read, or
    replays recorded ones.
    """
    params = list(params)
    env = parse_env(env_items)
    masking.declare_environment(env)  # `-e API_TOKEN=...` of a declared secret is masked too
    name, resolved = resolve_target(target, params, configs=configs, profiles=profiles, sets=sets,
                                    queue=queue, snapshot=snapshot)  # fmt: skip
    declared = sum(len(envs) for envs in _task_environment.ENVIRONMENTS.values())
    checked = Preflight.of(resolved, {**os.environ, **env})
    if sum(len(envs) for envs in _task_environment.ENVIRONMENTS.values()) != declared:
        # The imports declared environments in code: they lie beneath the YAML layers.
        code = _task_environment.code_layers()
        cwd = code.root_dir if target.endswith(".py") else None
        resolved = _load(configs, profiles, sets, queue, name, code, cwd, snapshot)
        name = find_task(resolved, name)
        checked = Preflight.of(resolved, {**os.environ, **env})
    if check or name not in checked.bindings:
        checked.raise_problems()
    config = resolved.run_config()
    _task_environment.admit_code_queues(config)
    prepared = PreparedRun(name, checked.bindings[name].entry, resolved, config, env, params)
    prepared.problems = checked.problems
    return prepared


class BindingError(ConfigLoadError):
    """A declared task cannot be bound to its function: the run does not start (exit 1, like a
    task that fails `import_error`)."""

    exit_code = 1


@dataclass
class Preflight:
    """What a run checks before any process starts: each task's binding, each declared secret.

    Any task may be called during a run, so every task of the config is checked.
    """

    bindings: dict[str, Binding]  # by full task name
    binding_problems: list[Problem]  # a typo in `fn`, a builtin, a class, ... (exit 1)
    secret_problems: list[Problem]  # a declared secret not set (exit 2)

    @classmethod
    def of(cls, resolved: Resolved, environ: Mapping[str, str], *, include_code: bool = True) -> Preflight:
        """Import and check every task's function, and look up every declared secret in `environ`.

        `include_code=False` leaves out tasks declared in code (a running program's own, already bound).
        """
        bindings, problems = bind_all(resolved, include_code=include_code)
        return cls(bindings, problems, missing_secrets(resolved, environ))

    @property
    def problems(self) -> list[Problem]:
        return [*self.binding_problems, *self.secret_problems]

    def raise_problems(self) -> None:
        """BindingError (exit 1) for binding problems, else ConfigLoadError (exit 2) for missing secrets."""
        if self.binding_problems:
            raise BindingError(self.binding_problems)
        if self.secret_problems:
            raise ConfigLoadError(self.secret_problems)


def preflight(
    resolved: Resolved, environ: Mapping[str, str] = os.environ, *, include_code: bool = True
) -> None:
    """Raise as `Preflight.raise_problems` does when a run of `resolved` must not start."""
    Preflight.of(resolved, environ, include_code=include_code).raise_problems()


def missing_secrets(resolved: Resolved, environ: Mapping[str, str]) -> list[Problem]:
    """One problem per declared secret not set in `environ`, at the place that declares it."""
    document = resolved.document
    paths_by_mark = {mark: path for path, mark in document.marks.items()}
    problems: dict[tuple[Mark, str], Problem] = {}
    for task in resolved.tasks.values():
        names, origin = task.fields.get("secrets", ((), None))
        for i, secret in enumerate(names or ()):
            if secret in environ:
                continue
            found = paths_by_mark.get(origin.mark) if origin and origin.mark else None
            if found is not None:
                mark, path = document.mark((*found, i)), dotted((*found, i))
            else:  # declared in code or by --set
                mark, path = (
                    (origin.mark if origin and origin.mark else Mark("<config>")),
                    f"{task.name}.secrets",
                )
            problems.setdefault(
                (mark, secret),
                Problem(
                    mark,
                    path,
                    f"secret {secret!r} is not set",
                    f"export {secret}=... or pass -e {secret}=...",
                ),
            )
    return list(problems.values())


def resolve_target(
    target: str,
    params: list[str],
    *,
    configs: Sequence[str] = (),
    profiles: Sequence[str] = (),
    sets: Sequence[str] = (),
    queue: str | None = None,
    snapshot: dict[str, str] | None = None,
    only: bool = False,
) -> tuple[str, Resolved]:
    """(full task name, the resolution) for a task name or `FILE.py TASK` (the TASK popped from params).

    Only a FILE.py target imports code (that file, whose environments become layers beneath the
    YAML); a task name reads the config files alone. With `only`, the files are read and checked
    whole but only the target task is resolved (`resolve`'s `only_root`), for one task's view.
    """
    code: CodeLayers | None = None
    if target.endswith(".py"):
        target = _script_task(target, params)
        code = _task_environment.code_layers()
    resolved = _load(
        configs, profiles, sets, queue, target, code, code.root_dir if code else None, snapshot, only
    )
    return find_task(resolved, target), resolved


def _script_task(target: str, params: list[str]) -> str:
    _alias.install()  # an unmodified Flyte program's `import flyte` gets flyte_decl, here and in fork servers
    module = import_script(Path(target))
    names = sorted(k for k, v in vars(module).items() if isinstance(v, TaskTemplate))
    if not params or params[0].startswith("-"):
        raise UsageError(
            f"name the task to run: flyte-decl run {target} TASK (tasks here: {', '.join(names)})"
        )
    variable = params.pop(0)
    template = getattr(module, variable, None)
    if not isinstance(template, TaskTemplate):  # ENV.TASK names it too, as for a task of the config
        template = next((vars(module)[k] for k in names if vars(module)[k].full_name == variable), None)
    if template is None:
        hint = (
            did_you_mean(variable, names) if names else "it declares none: decorate a function with @env.task"
        )
        raise UsageError(f"{target} has no task {variable!r} ({hint})")
    return template.full_name


def _load(
    configs: Sequence[str],
    profiles: Sequence[str],
    sets: Sequence[str],
    queue: str | None,
    task: str,
    code: CodeLayers | None,
    cwd: Path | None,
    snapshot: dict[str, str] | None,
    only: bool = False,
) -> Resolved:
    return load(list(configs) or None, profile=profiles, sets=sets, queue=queue, root_task=task, code=code,
                cwd=cwd, snapshot=snapshot, only_root=only)  # fmt: skip
