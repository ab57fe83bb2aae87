"""`flyte_decl.run`, `with_runcontext` and `map`: running tasks from Python, as Flyte 2 code does.

    run = flyte_decl.run(main, n=4)                           # every call an isolated, limited action
    run = flyte_decl.with_runcontext(queue="spot", env_vars={"DEBUG": "1"}).run(main)
    run.outputs, run.status, run.id, run.actions

`flyte_decl.run` never runs in-process: each call is an action in its environment's limits, and the
environments.yaml beside the program (if any) layers over what the code declares.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flyte_decl import _task_environment
from flyte_decl._task import TaskTemplate
from flyte_decl.config.load import find_task, load
from flyte_decl.problems import UsageError
from flyte_decl.runtime.records import ActionRecord, Failure, RunResult
from flyte_decl.runtime.runner import LocalRunner
from flyte_decl.session import home_dir, preflight


@dataclass
class Run:
    """The outcome of `flyte_decl.run`: `id`, `status`, `outputs`, `error` and every action attempt."""

    id: str
    status: str
    outputs: Any
    error: Failure | None
    actions: list[ActionRecord]
    url: str  # where the run's logs are

    @property
    def name(self) -> str:
        return self.id

    def wait(self) -> Run:
        """Runs are complete when `run` returns; kept for Flyte compatibility."""
        return self

    @classmethod
    def of(cls, result: RunResult) -> Run:
        return cls(result.run_id, result.status.value, result.outputs, result.error, result.actions,
                   str(result.log_dir))  # fmt: skip


class RunContext:
    """Run-level settings: `queue` for the root task (as in Flyte), `env_vars` for every action."""

    def __init__(self, *, queue: str | None = None, env_vars: dict[str, str] | None = None,
                 config: str | Path | list[str | Path] | None = None, profile: str | None = None,
                 mode: str = "local", **_ignored: Any) -> None:  # fmt: skip
        if mode not in ("local", "hybrid"):
            raise ValueError(f"mode {mode!r} is not available locally; use mode='local'")
        self.queue = queue
        self.env_vars = {str(k): str(v) for k, v in (env_vars or {}).items()}
        self.configs = [config] if isinstance(config, (str, Path)) else list(config or [])
        self.profile = profile

    def run(self, task: TaskTemplate, *args: Any, **kwargs: Any) -> Run:
        """Run `task` with these inputs as a root action; raises nothing for a failed run (see `status`)."""
        if not isinstance(task, TaskTemplate):
            raise TypeError(f"run() takes a task declared with @env.task, got {type(task).__name__}")
        inputs = inspect.signature(task.func).bind(*args, **kwargs).arguments
        code = _task_environment.code_layers()
        # The environments.yaml beside the program (not the working directory's) layers over its code.
        resolved = load(self.configs or None, profile=self.profile, queue=self.queue, root_task=task.full_name,
                        code=code, cwd=code.root_dir)  # fmt: skip
        name = find_task(resolved, task.full_name)
        preflight(resolved, include_code=False)  # the program's own tasks are bound: it declared them
        config = resolved.run_config()
        if task.call_settings:
            config.tasks[name] = config.spec_for(name, task.call_settings)
        log_dir = home_dir(config.tasks[name].root_dir) / "logs"
        runner = LocalRunner(config, log_dir=log_dir / f"api-{id(self):x}-{next(_counter)}")
        return Run.of(runner.run(name, dict(inputs), env=self.env_vars))


_counter = itertools.count(1)


def with_runcontext(**settings: Any) -> RunContext:
    """Run-level settings for the next `.run(...)`: `queue`, `env_vars`, `config`, `profile`."""
    return RunContext(**settings)


def run(task: TaskTemplate, *args: Any, **kwargs: Any) -> Run:
    """Run `task` locally: every call an isolated action under its environment's declared limits.

    Example::

        result = flyte_decl.run(main, n=4)
        assert result.status == "succeeded", result.error
    """
    return RunContext().run(task, *args, **kwargs)


class _Map:
    """`flyte_decl.map(task, *iterables, concurrency=0)`: call a task on every item, results in order.

    Inside an action each call is its own action, `concurrency` at a time (0: all at once); outside a
    run it calls the function. In async code use `await`-able `flyte_decl.map.aio(...)`.
    """

    def __call__(self, func: TaskTemplate | Callable[..., Any], *iterables: Iterable[Any], group_name: str | None = None,
                 concurrency: int = 0, return_exceptions: bool = True) -> Iterator[Any]:  # fmt: skip
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise UsageError(
                "in async code use `flyte_decl.map.aio(...)`: the sync map would block the event loop"
            )
        return iter(asyncio.run(self._gather(func, iterables, concurrency, return_exceptions)))

    async def aio(self, func: TaskTemplate | Callable[..., Any], *iterables: Iterable[Any],
                  group_name: str | None = None, concurrency: int = 0,
                  return_exceptions: bool = True) -> AsyncIterator[Any]:  # fmt: skip
        for result in await self._gather(func, iterables, concurrency, return_exceptions):
            yield result

    async def _gather(self, func: Any, iterables: tuple[Iterable[Any], ...], concurrency: int,
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
