"""`flyte.ctx()`, `flyte.custom_context(...)`, `get_custom_context()` and `flyte.group(name)`.

Inside an action, `ctx()` is the action's `TaskContext` (as Flyte 2's): which run and action it is,
the attempt, the custom context, a raw-data folder of its own and checkpoint paths. Outside an action
it is a null context, as in Flyte 2: falsy (`if flyte.ctx():` asks "in an action?"), with every field
None, so `flyte.ctx().custom_context` reads without a None-guard::

    c = flyte.ctx()
    c.action.name, c.action.run_name, c.attempt        # "a3", "r1f3a9c2e", 1
    c.raw_data_path.path                               # a folder under the run's logs, made on first use

Custom context is string pairs: `with_runcontext(custom_context={...})` sets it for the root action,
and `with flyte.custom_context(k="v"):` adds pairs for the code inside the block; every task called
passes the caller's custom context on to its action, so it flows to all descendants (as in Flyte).
`flyte.group("name")` names the child actions started inside it (their `ctx().group_data.name`).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

# Run-level custom context travels to every action in this environment variable (JSON object).
ENV_CUSTOM_CONTEXT = "FLYTE_DECL_CUSTOM_CONTEXT"


@dataclass(frozen=True)
class ActionID:
    """An action of a run: `name` ("a3") and `run_name` ("r1f3a9c2e"), as Flyte's ActionID."""

    name: str
    run_name: str | None = None
    project: str | None = None
    domain: str | None = None
    org: str | None = None


@dataclass(frozen=True)
class RawDataPath:
    """A folder of the action's own for data it writes (Flyte's raw data path); made on first use."""

    path: str

    def get_random_remote_path(self, file_name: str | None = None) -> str:
        """A fresh path inside the folder (Flyte's name for it)."""
        folder = Path(self.path)
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder / (file_name or os.urandom(8).hex()))


@dataclass(frozen=True)
class GroupData:
    """The group child actions started now belong to (`flyte.group(name)`)."""

    name: str


@dataclass(frozen=True)
class CheckpointPaths:
    """Where this attempt writes its checkpoint, and where the previous attempt's is."""

    checkpoint_path: str
    prev_checkpoint_path: str | None = None


@dataclass(frozen=True)
class Checkpoint:
    """The action's checkpoint (Flyte's `flyte.ctx().checkpoint`): `save` this attempt's state, `load`
    the latest an earlier attempt of the same action saved (None when none did). Each attempt is a new
    process, so this is how a retry resumes."""

    paths: CheckpointPaths
    attempt: int

    @property
    def path(self) -> Path:
        return Path(self.paths.checkpoint_path)

    def load_sync(self) -> Path | None:
        for earlier in range(self.attempt - 1, 0, -1):
            candidate = self.path.with_name(f"checkpoint.{earlier}")
            if candidate.exists():
                return candidate
        return None

    def save_sync(self, data: Path | str | bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = data.read_bytes() if isinstance(data, Path) else data
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(payload if isinstance(payload, bytes) else payload.encode())
        tmp.replace(self.path)

    def prev_exists(self) -> bool:
        return self.load_sync() is not None

    async def load(self) -> Path | None:
        return self.load_sync()

    async def save(self, data: Path | str | bytes) -> None:
        self.save_sync(data)


@dataclass(frozen=True)
class TaskContext:
    """The context of the running action; see the module docstring."""

    action: ActionID
    task: str
    attempt: int
    raw_data_path: RawDataPath
    checkpoint_paths: CheckpointPaths
    custom_context: dict[str, str] = field(default_factory=dict)
    group_data: GroupData | None = None
    mode: str = "local"
    run_start_time: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def checkpoint(self) -> Checkpoint | None:
        """None where there are no checkpoint paths (the null context), as in Flyte."""
        return Checkpoint(self.checkpoint_paths, self.attempt) if self.checkpoint_paths else None

    @property
    def run_base_dir(self) -> str | None:
        return str(Path(self.raw_data_path.path).parent) if self.raw_data_path else None

    def __bool__(self) -> bool:
        return True


class _NullTaskContext(TaskContext):
    """`ctx()` outside an action, as Flyte 2's `flyte.models.NULL_TASK_CONTEXT`: falsy, every field None."""

    def __init__(self) -> None:
        for each in fields(TaskContext):
            object.__setattr__(self, each.name, None)

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NullTaskContext()"


NULL_TASK_CONTEXT = _NullTaskContext()


_action: TaskContext | None = None
_custom: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("flyte_custom", default=None)
_group: contextvars.ContextVar[str | None] = contextvars.ContextVar("flyte_group", default=None)


def check_custom_context(pairs: dict[str, Any]) -> dict[str, str]:
    """Custom context as Flyte takes it: string keys and string values (TypeError otherwise)."""
    if not isinstance(pairs, dict):
        raise TypeError(f"custom_context must be a dict of str to str, got {type(pairs).__name__}")
    for key, value in pairs.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"custom_context keys and values must be str, got {key!r}: {value!r}")
    return dict(pairs)


def context_env(pairs: dict[str, str]) -> dict[str, str]:
    """The run-level environment that carries `pairs` to every action ({} when there are none)."""
    return {ENV_CUSTOM_CONTEXT: json.dumps(pairs, sort_keys=True)} if pairs else {}


def enter_action(info: dict[str, Any]) -> None:
    """Called in an action process once it knows which action it is (the runner's "inputs" message).

    `info` has "run", "action", "task", "attempt" and "data_dir" (a folder for this run's data).
    """
    global _action
    if not info:
        _action = None
        return
    run, action, attempt = str(info["run"]), str(info["action"]), int(info.get("attempt", 1))
    data = Path(info.get("data_dir") or Path.cwd() / ".flyte-decl-data") / run
    _action = TaskContext(
        action=ActionID(name=action, run_name=run),
        task=str(info.get("task", "")),
        attempt=attempt,
        raw_data_path=RawDataPath(str(data / action)),
        checkpoint_paths=CheckpointPaths(
            str(data / action / f"checkpoint.{attempt}"),
            str(data / action / f"checkpoint.{attempt - 1}") if attempt > 1 else None,
        ),
        custom_context=info["custom_context"] if "custom_context" in info else _run_custom_context(),
        group_data=GroupData(info["group"]) if info.get("group") else None,
    )
    _custom.set(None)
    _group.set(None)
    _action.data["report"] = _declares_report(_action.task)


def _declares_report(task: str) -> bool:
    # Only code that declared an environment has imported the module; importing it here would
    # cost every action of a YAML-only config tens of milliseconds of CPU.
    module = sys.modules.get("flyte_decl._task_environment")
    if module is None:
        return False
    for env in module.declared_environments().values():
        template = env.tasks.get(task)
        if template is not None:
            return template.report
    return False


def action_ended() -> None:
    """Called in an action once its task returned or raised: flush what `flyte.report` collected."""
    if _action is not None and _action.data.get("report"):
        from flyte_decl import report

        report.flush()


def _run_custom_context() -> dict[str, str]:
    text = os.environ.get(ENV_CUSTOM_CONTEXT)
    if not text:
        return {}
    try:
        pairs = json.loads(text)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in pairs.items()} if isinstance(pairs, dict) else {}


def call_context() -> dict[str, Any]:
    """What a task call made here passes to its action: the custom context, and the group if any."""
    out: dict[str, Any] = {"custom_context": get_custom_context()}
    group = _group.get()
    if group:
        out["group"] = group
    return out


def ctx() -> TaskContext:
    """The running action's TaskContext; outside an action the falsy NULL_TASK_CONTEXT, whose
    fields are all None (Flyte 2's `flyte.ctx()`)."""
    if _action is None:
        return NULL_TASK_CONTEXT
    group = _group.get()
    return replace(_action, custom_context=get_custom_context(),
                   group_data=GroupData(group) if group else _action.group_data)  # fmt: skip


def get_custom_context() -> dict[str, str]:
    """The custom context here: the run's pairs, with those of enclosing `custom_context` blocks over them."""
    base = dict(_action.custom_context) if _action is not None else _run_custom_context()
    return {**base, **(_custom.get() or {})}


@contextlib.contextmanager
def custom_context(**pairs: str) -> Iterator[None]:
    """Add string pairs to the custom context for the code inside the block."""
    check_custom_context(pairs)
    previous = _custom.get()
    _custom.set({**(previous or {}), **pairs})
    try:
        yield
    finally:
        _custom.set(previous)  # not a token reset: an action's first step runs outside its asyncio Task


@contextlib.contextmanager
def group(name: str) -> Iterator[None]:
    """Name the child actions started inside the block (Flyte's `flyte.group`); a label only."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"group name must be a non-empty string, got {name!r}")
    previous = _group.get()
    _group.set(name)
    try:
        yield
    finally:
        _group.set(previous)


def current_group() -> str | None:
    """The innermost `group` name around this point, if any."""
    return _group.get()
