"""`flyte_decl.run`, `with_runcontext` and `map`: running tasks from Python, as Flyte 2 code does.

    run = flyte_decl.run(main, n=4)                           # every call an isolated, limited action
    run = flyte_decl.with_runcontext(queue="spot", env_vars={"DEBUG": "1"}).run(main)
    run.outputs, run.outputs(), run.status, run.id, run.actions

A failed run raises the Flyte error class of its failure (`flyte.errors.RuntimeUserError`, ...), as
Flyte's local mode does.

`flyte_decl.run` never runs in-process: each call is an action in its environment's limits, and the
environments.yaml beside the program (if any) layers over what the code declares.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flyte_decl import _context, _task_environment, errors
from flyte_decl._task import TaskTemplate, module_name
from flyte_decl.backends.choice import AddressWithoutRay, BackendChoice, choose_backend
from flyte_decl.backends.ray import RayCluster, import_ray
from flyte_decl.config.load import find_task, load
from flyte_decl.render.history import render_removed
from flyte_decl.runtime.records import ActionEvent, ActionRecord, Failure, RunResult
from flyte_decl.runtime.wire import ENV_MAIN_MODULE
from flyte_decl.session import PreparedRun, home_dir, preflight
from flyte_decl.store.recorder import Recorder, RunRequest
from flyte_decl.store.retention import apply_retention
from flyte_decl.store.store import Store


class ActionOutputs(tuple):  # type: ignore[type-arg]
    """A run's outputs as Flyte 2 gives them: a tuple `o0..oN` (a tuple or NamedTuple return is split).

    Its repr is Flyte's: ``ActionOutputs(o0=3, o1="x")``; `named_outputs` is {"o0": 3, "o1": "x"}.
    """

    def __new__(cls, value: Any) -> ActionOutputs:
        out = super().__new__(cls, value if isinstance(value, tuple) else (value,))
        for index, item in enumerate(out):
            setattr(out, f"o{index}", item)
        return out

    @property
    def named_outputs(self) -> dict[str, Any]:
        return {f"o{index}": item for index, item in enumerate(self)}

    def __repr__(self) -> str:
        shown = (f'"{v}"' if isinstance(v, str) else f"{v}" for v in self)
        return f"ActionOutputs({', '.join(f'o{i}={v}' for i, v in enumerate(shown))})"


class Outputs:
    """`Run.outputs`: the task's return value, and, called as Flyte's `run.outputs()`, its ActionOutputs.

    `run.outputs == 25`, `print(run.outputs)` and `run.outputs[0]` see the value itself (flyte-decl's
    attribute form); `run.outputs()` (or `await run.outputs.aio()`) returns `ActionOutputs`, as Flyte does.
    """

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self) -> ActionOutputs:
        return ActionOutputs(self.value)

    async def aio(self) -> ActionOutputs:
        return ActionOutputs(self.value)

    def __eq__(self, other: object) -> bool:
        return bool(self.value == (other.value if isinstance(other, Outputs) else other))

    def __repr__(self) -> str:
        return repr(self.value)

    def __str__(self) -> str:
        return str(self.value)

    def __getitem__(self, key: Any) -> Any:
        return self.value[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.value)

    def __len__(self) -> int:
        return len(self.value)

    def __bool__(self) -> bool:
        return bool(self.value)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.__dict__["value"], name)


@dataclass
class Run:
    """The outcome of `flyte_decl.run`: `id`, `status`, `outputs`, `error` and every action attempt."""

    id: str
    status: str
    outputs: Outputs
    error: Failure | None
    actions: list[ActionRecord]
    url: str  # where the run's logs are

    @property
    def name(self) -> str:
        return self.id

    def wait(self, quiet: bool = False, wait_for: str = "terminal") -> Run:
        """Runs are complete when `run` returns; kept for Flyte compatibility."""
        return self

    @classmethod
    def of(cls, result: RunResult) -> Run:
        return cls(result.run_id, result.status.value, Outputs(result.outputs), result.error, result.actions,
                   str(result.log_dir))  # fmt: skip


_MODES = ("local", "hybrid", "remote")
ADDRESS_WITHOUT_RAY = (
    "address is the Ray cluster's address; it needs backend='ray' (or run: {backend: ray} in the config)"
)
# Run-level settings Flyte accepts that have no local meaning; each is accepted with one notice.
_NOT_LOCAL = {"name", "version", "copy_style", "dry_run", "copy_bundle_to", "interactive_mode", "raw_data_path",
              "run_base_dir", "labels", "annotations", "service_account", "project", "domain", "interruptible",
              "disable_run_cache", "max_action_concurrency", "preserve_original_types", "debug", "cache_lookup_scope",
              "notifications", "tracked", "tracked_strict", "persistence", "sync_local_sys_paths"}  # fmt: skip
_noticed: set[str] = set()


class RunContext:
    """Run-level settings, as Flyte's `with_runcontext`: `mode`, `queue` (the root task's), `env_vars`
    (every action), `custom_context` (every action's `flyte.ctx().custom_context`), `overwrite_cache`,
    `log_level`, plus flyte-decl's `config`, `profile`, and `backend` ("local", or "ray" with an
    optional Ray `address`, as `flyte-decl run --backend ray --address`; default: the config's
    `run:` section, else "local").

    Settings Flyte has that mean nothing locally (labels, service_account, ...) are accepted with one
    notice on stderr; an unknown keyword is a TypeError, as in Flyte. `mode="remote"` is refused.
    """

    def __init__(self, mode: str | None = None, *, queue: str | None = None,
                 env_vars: dict[str, str] | None = None, custom_context: dict[str, str] | None = None,
                 overwrite_cache: bool = False, log_level: int | None = None,
                 config: str | Path | list[str | Path] | None = None, profile: str | None = None,
                 backend: str | None = None, address: str | None = None, **settings: Any) -> None:  # fmt: skip
        unknown = sorted(set(settings) - _NOT_LOCAL)
        if unknown:
            raise TypeError(
                f"with_runcontext() got an unexpected keyword argument {unknown[0]!r} "
                f"(known: mode, queue, env_vars, custom_context, overwrite_cache, log_level, config, profile, "
                f"backend, address, "
                f"{', '.join(sorted(_NOT_LOCAL))})"
            )
        if mode is not None and mode not in _MODES:
            raise ValueError(f"mode must be one of {', '.join(_MODES)}, got {mode!r}")
        if backend not in (None, "local", "ray"):
            raise ValueError(f"backend must be 'local' or 'ray', got {backend!r}")
        if address is not None and backend == "local":
            raise ValueError(ADDRESS_WITHOUT_RAY)
        if mode == "remote":
            raise ValueError("mode 'remote' is not available: flyte-decl runs locally; use mode='local'")
        for name in sorted(set(settings) - _noticed):
            _noticed.add(name)
            print(f"flyte-decl: with_runcontext({name}=...) has no local meaning; ignored", file=sys.stderr)
        if log_level is not None:
            logging.getLogger().setLevel(log_level)
        self.queue = queue
        self.env_vars = {str(k): str(v) for k, v in (env_vars or {}).items()}
        self.custom_context = _context.check_custom_context(custom_context or {})
        self.overwrite_cache = overwrite_cache
        self.configs = [config] if isinstance(config, (str, Path)) else list(config or [])
        self.profile = profile
        self.backend, self.address = backend, address

    def run(self, task: TaskTemplate, *args: Any, **kwargs: Any) -> Run:
        """Run `task` with these inputs as a root action and return its `Run`.

        Raises, as Flyte's local mode does, when the run fails: the Flyte error class of the root
        action's failure kind (`flyte.errors.RuntimeUserError` with `.code`, `OOMError`, ...), which
        is also a `RunFailed` whose `.run` is the `Run`.
        """
        if not isinstance(task, TaskTemplate):
            raise TypeError(f"run() takes a task declared with @env.task, got {type(task).__name__}")
        inputs = dict(inspect.signature(task.func).bind(*args, **kwargs).arguments)
        code = _task_environment.code_layers()
        texts: dict[str, str] = {}  # the config files read, with their texts, kept with the run
        # The environments.yaml beside the program (not the working directory's) layers over its code.
        resolved = load(self.configs or None, profile=self.profile, queue=self.queue, root_task=task.full_name,
                        code=code, cwd=code.root_dir, snapshot=texts)  # fmt: skip
        name = find_task(resolved, task.full_name)
        try:
            choice = choose_backend(resolved.document, self.backend, self.address)
        except AddressWithoutRay:
            raise ValueError(ADDRESS_WITHOUT_RAY) from None
        if choice.name == "ray":
            import_ray()  # the install line, before the run is recorded
        # The program's own tasks are bound (it declared them); its env_vars may carry a secret, as -e does.
        preflight(resolved, {**os.environ, **self.env_vars}, include_code=False)
        config = resolved.run_config()
        _task_environment.admit_code_queues(config)
        if task.call_settings:
            config.tasks[name] = config.spec_for(name, task.call_settings)
        env = {**self.env_vars, **_context.context_env(self.custom_context)}
        prepared = PreparedRun(name, task.func, resolved, config, env)
        # As `flyte-decl run FILE.py TASK` records it, so `flyte-decl rerun` can run it again.
        request = RunRequest([str(Path(inspect.getfile(task.func)).resolve()), task.func.__name__], texts,
                             [self.profile] if self.profile else [], queue=self.queue, env=env,
                             configs=[str(Path(c).resolve()) for c in self.configs], backend=self.backend,
                             address=self.address, used_backend=choice.name, used_address=choice.address)  # fmt: skip
        if task.func.__module__ == "__main__":  # its classes live in the script the fork servers import
            env = {**env, ENV_MAIN_MODULE: module_name(task.func)}
        run = Run.of(_recorded(prepared, inputs, request, env, task.display_name, self.overwrite_cache,
                              choice))  # fmt: skip
        if run.status != "succeeded":
            raise _run_failure(run)
        return run


def _recorded(prepared: PreparedRun, inputs: dict[str, Any], request: RunRequest, env: dict[str, str],
              short_name: str | None, overwrite_cache: bool, choice: BackendChoice) -> RunResult:  # fmt: skip
    """Run the root task, recorded in the run store as `flyte-decl run` records it (so `runs`, `logs`,
    `report`, `rerun` see it, and `cache: auto` hits). What actions print goes to stdout line by line,
    unprefixed: in Flyte's local mode tasks run in the program's own process and print there. A
    `choice` of "ray" runs the actions on the Ray cluster at its address (see `flyte_decl.backends.ray`)."""
    store = Store.open(home_dir(prepared.spec.root_dir))
    recorder = Recorder.start(store, prepared, inputs, request, overwrite_cache=overwrite_cache)

    def on_event(event: ActionEvent) -> None:
        recorder.on_event(event)
        if event.line is not None:
            print(event.line, flush=True)

    cluster = RayCluster(choice.address) if choice.name == "ray" else None
    try:
        runner = prepared.runner(on_event=on_event, log_dir=recorder.log_dir, reuse=recorder.reuse,
                                 on_answer=recorder.on_answer,
                                 backend=cluster.backend if cluster else None)  # fmt: skip
        result = recorder.finish(runner.run(prepared.task, inputs, env=env, short_name=short_name))
        removed = apply_retention(store, prepared.resolved.document.data.get("retention"), recorder.run.id)
        if removed is not None and removed.runs:
            print(f"flyte-decl: retention: {render_removed(removed)}", file=sys.stderr)
    except BaseException as exc:
        recorder.abandon(f"the runner failed: {type(exc).__name__}: {exc}")
        raise
    finally:
        store.close()
        if cluster is not None:
            cluster.close()
    return result


def _run_failure(run: Run) -> BaseException:
    """The Flyte error class of the root action's failure, with `.run` holding the whole Run."""
    root = run.actions[0] if run.actions else None
    kind = run.error.kind if run.error else None
    message = run.error.message if run.error else f"the run ended {run.status}"
    failure = errors.child_failure(root.task if root else "", root.id if root else "", kind, message)
    failure.run = run  # type: ignore[attr-defined]
    return failure


def with_runcontext(mode: str | None = None, **settings: Any) -> RunContext:
    """Run-level settings for the next `.run(...)`; see `RunContext` (Flyte's `with_runcontext`)."""
    return RunContext(mode, **settings)


def run(task: TaskTemplate, *args: Any, **kwargs: Any) -> Run:
    """Run `task` locally: every call an isolated action under its environment's declared limits.

    Raises the Flyte error class of the failure when the run fails (see `RunContext.run`).

    Example::

        result = flyte_decl.run(main, n=4)
        result.outputs()          # ActionOutputs(o0=[0, 1, 4, 9])
    """
    return RunContext().run(task, *args, **kwargs)


class _Map:
    """`flyte_decl.map(task, *iterables, concurrency=0)`: call a task on every item, results in order.

    Inside an action each call is its own action, `concurrency` at a time (0: all at once); outside a
    run it calls the function. In async code prefer `flyte_decl.map.aio(...)`; the sync form works there
    too (it blocks the calling task while the calls run on a helper thread).
    """

    def __call__(self, func: TaskTemplate | Callable[..., Any], *iterables: Iterable[Any], group_name: str | None = None,
                 concurrency: int = 0, return_exceptions: bool = True) -> Iterator[Any]:  # fmt: skip
        gather = self._gather(func, iterables, concurrency, return_exceptions, group_name)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return iter(asyncio.run(gather))
        # Called from async code: each call is an action of its own process, so the calls can run on a
        # helper thread's loop while this one waits (Flyte's local mode fails here with "Deadlock detected").
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="flyte-decl-map") as helper:
            return iter(helper.submit(asyncio.run, gather).result())

    async def aio(self, func: TaskTemplate | Callable[..., Any], *iterables: Iterable[Any],
                  group_name: str | None = None, concurrency: int = 0,
                  return_exceptions: bool = True) -> AsyncIterator[Any]:  # fmt: skip
        for result in await self._gather(func, iterables, concurrency, return_exceptions, group_name):
            yield result

    async def _gather(self, func: Any, iterables: tuple[Iterable[Any], ...], concurrency: int,
                      return_exceptions: bool, group_name: str | None) -> list[Any]:  # fmt: skip
        task = func.func if isinstance(func, functools.partial) else func
        if not isinstance(task, TaskTemplate):
            return await self._calls(func, iterables, concurrency, return_exceptions)
        # The calls form one group, named as Flyte names it: `env.task_map`, or `env.task_GROUP`.
        with _context.group(f"{task.name}_{group_name or 'map'}"):
            return await self._calls(func, iterables, concurrency, return_exceptions)

    async def _calls(self, func: Any, iterables: tuple[Iterable[Any], ...], concurrency: int,
                     return_exceptions: bool) -> list[Any]:  # fmt: skip
        limit = asyncio.Semaphore(concurrency) if concurrency > 0 else None

        async def one(args: tuple[Any, ...]) -> Any:
            if limit is None:
                return await _call(func, args)
            async with limit:
                return await _call(func, args)

        return await asyncio.gather(*(one(args) for args in zip(*iterables, strict=False)),
                                    return_exceptions=return_exceptions)  # fmt: skip


async def _call(func: Any, args: tuple[Any, ...]) -> Any:
    if isinstance(func, TaskTemplate):
        return await func.aio(*args)
    result = func(*args)
    return await result if inspect.isawaitable(result) else result


map = _Map()  # noqa: A001 - Flyte's public name
