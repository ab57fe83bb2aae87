"""What a run produces: one record per action attempt, events while it runs, and the result.

These are plain data for renderers (text, JSON, the run store); the runner fills them in and never
reads them back to make decisions.

Example::

    result = LocalRunner(config, log_dir=Path("logs")).run("env1.main", {})
    result.status                    # Phase.SUCCEEDED
    result.actions[1].label          # "env2.square[0]"
    json.dumps(result.to_json())     # {"run": "r1f3a9c2e", "status": "succeeded", ...}
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from flyte_decl.runtime import datetimes


class Phase(str, Enum):
    """Where an action attempt is in its life; the last five are final."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    ABORTED = "aborted"
    CACHED = "cached"  # outputs reused from an earlier run (cache or recover); no process ran

    @property
    def final(self) -> bool:
        """Whether the attempt has ended."""
        return self not in (Phase.QUEUED, Phase.RUNNING)


class FailureKind(str, Enum):
    """Why an attempt failed."""

    USER_ERROR = "user_error"  # the task raised
    OOM_KILLED = "oom_killed"  # the tree went over its memory limit
    TIMED_OUT = "timed_out"  # an attempt ran longer than the task's timeout (Timeout.max_runtime)
    QUEUED_TIMEOUT = "queued_timeout"  # an attempt waited for a queue slot or capacity past max_queued_time
    DEADLINE_EXCEEDED = "deadline_exceeded"  # the whole action, retries included, ran past Timeout.deadline
    INLINE_IO_EXCEEDED = "inline_io_exceeded"  # serialized inputs or outputs over max_inline_io_bytes
    UNSCHEDULABLE = "unschedulable"  # the request can never fit the capacity or queue
    CRASHED = "crashed"  # killed by a signal, or exited without reporting a result
    IMPORT_ERROR = "import_error"  # the task's module or function could not be loaded


@dataclass(frozen=True)
class Failure:
    """A failure kind with a one-line message and, for user errors, the task's traceback."""

    kind: FailureKind
    message: str
    traceback: str = ""

    def to_json(self) -> dict[str, str]:
        """The failure as JSON-ready data."""
        return {"kind": self.kind.value, "message": self.message, "traceback": self.traceback}


@dataclass
class ActionRecord:
    """One attempt of one action. Retries share the `id` and count up `attempt` from 1."""

    id: str  # "a3"
    parent: str | None  # the id of the action that called this one; None for the root
    task: str  # full task name, "env2.square"
    index: int  # ordinal among this run's actions of the same task, for labels like "env2.square[3]"
    attempt: int
    queue: str
    limits: dict[str, float | int | None]  # cpu, memory, timeout, max_inline_io_bytes applied
    queued_at: float  # epoch seconds
    phase: Phase = Phase.QUEUED
    kind: FailureKind | None = None
    message: str = ""
    traceback: str = ""
    started_at: float | None = None
    ended_at: float | None = None
    pid: int | None = None
    node: str | None = None  # where the attempt ran, on a backend with several machines (Ray's node id)
    exit_code: int | None = None
    signal: int | None = None
    peak_memory: int | None = None  # bytes, whole process tree
    cpu_seconds: float | None = None
    log_path: Path | None = None
    samples: list[tuple[float, int, float]] = field(default_factory=list)  # (time, rss, cpu seconds)
    group: str | None = None  # the `flyte.group(name)` its caller started it in
    short_name: str | None = None  # Flyte's `short_name`, when it differs from the function's name

    @property
    def label(self) -> str:
        """What names the action in commands (`logs RUN env2.square[3]`): "env2.square[3]"."""
        return f"{self.task}[{self.index}]"

    @property
    def display(self) -> str:
        """How output lines are prefixed: the label with its group and short name (`display_label`)."""
        return display_label(self.label, self.group, self.short_name)

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready data (enums as their values, paths as text)."""
        return {
            "id": self.id,
            "parent": self.parent,
            "task": self.task,
            "index": self.index,
            "attempt": self.attempt,
            "queue": self.queue,
            "phase": self.phase.value,
            "kind": self.kind.value if self.kind else None,
            "message": self.message,
            "traceback": self.traceback,
            "queued_at": self.queued_at,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "pid": self.pid,
            "node": self.node,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "peak_memory": self.peak_memory,
            "cpu_seconds": self.cpu_seconds,
            "limits": self.limits,
            "log_path": str(self.log_path) if self.log_path else None,
            "samples": [list(sample) for sample in self.samples],
            "group": self.group,
            "short_name": self.short_name,
        }


def display_label(label: str, group: str | None, short_name: str | None) -> str:
    """An action as people read it: `label` after its group and before its short name, if any.

    `display_label("env2.square[3]", "squares", None)` is `squares/env2.square[3]`, and
    `display_label("env.child[1]", None, "renamed")` is `env.child[1] "renamed"`. Both are labels
    only, as in Flyte's UI: commands still name the action by its id or by `label`.
    """
    shown = f"{group}/{label}" if group else label
    return f'{shown} "{short_name}"' if short_name else shown


@dataclass(frozen=True)
class ActionEvent:
    """A phase change of an attempt (`line` is None) or one line it printed (`line` is set).

    For recorders, a phase change also carries `record`, a copy of the attempt's record as of this
    event (usage, exit status and samples are filled in on final phases); an attempt's first event
    carries its serialized `inputs`, and a succeeded or cached one its serialized `outputs`.
    """

    action: str
    parent: str | None
    task: str
    index: int
    attempt: int
    phase: Phase
    time: float
    kind: FailureKind | None = None
    message: str = ""
    line: str | None = None
    record: ActionRecord | None = field(default=None, repr=False, compare=False)
    inputs: bytes | None = field(default=None, repr=False, compare=False)
    outputs: bytes | None = field(default=None, repr=False, compare=False)
    group: str | None = None
    short_name: str | None = None

    @property
    def label(self) -> str:
        """What names the action in commands: "env2.square[3]"."""
        return f"{self.task}[{self.index}]"

    @property
    def display(self) -> str:
        """How output lines are prefixed: the label with its group and short name (`display_label`)."""
        return display_label(self.label, self.group, self.short_name)

    @classmethod
    def of(
        cls,
        record: ActionRecord,
        time: float,
        line: str | None = None,
        *,
        inputs: bytes | None = None,
        outputs: bytes | None = None,
    ) -> ActionEvent:
        """The event for `record` as it is now, or for one `line` it printed."""
        return cls(
            action=record.id,
            parent=record.parent,
            task=record.task,
            index=record.index,
            attempt=record.attempt,
            phase=record.phase,
            time=time,
            kind=record.kind,
            message=record.message,
            line=line,
            record=copy.copy(record) if line is None else None,
            inputs=inputs,
            outputs=outputs,
            group=record.group,
            short_name=record.short_name,
        )


@dataclass(frozen=True)
class ReuseHit:
    """Outputs recorded earlier for the same task and inputs, used instead of running the action.

    `source` says where they come from, for the cached action's message (e.g. "r3/a2").
    """

    outputs: bytes
    source: str


@dataclass
class RunResult:
    """The outcome of one run: the root action's phase, outputs or error, and every attempt."""

    run_id: str
    status: Phase
    outputs: Any
    error: Failure | None
    actions: list[ActionRecord]
    log_dir: Path
    mechanisms: dict[str, str] = field(default_factory=dict)  # how limits were enforced

    def to_json(self) -> dict[str, Any]:
        """The `run --json` shape: {"run": ID, "status": ..., "outputs": ..., "actions": [...]}."""
        return {
            "run": self.run_id,
            "status": self.status.value,
            "outputs": _jsonable(self.outputs),
            "error": self.error.to_json() if self.error else None,
            "log_dir": str(self.log_dir),
            "mechanisms": self.mechanisms,
            "actions": [record.to_json() for record in self.actions],
        }


class ActionFailed(Exception):
    """Raised in a task that called another task whose action failed for good (after retries).

    Example::

        try:
            await square(3)
        except ActionFailed as failure:
            failure.kind        # FailureKind.OOM_KILLED
    """

    def __init__(self, task: str, action: str, kind: FailureKind | None, message: str) -> None:
        super().__init__(f"{task} ({action}) failed: {kind.value if kind else 'aborted'}: {message}")
        self.task = task
        self.action = action
        self.kind = kind
        self.message = message

    @property
    def summary(self) -> str:
        """ "env2.square (a3) failed: oom_killed: ...": which action failed, how, and its message."""
        return f"{self.task} ({self.action}) failed: {self.kind.value if self.kind else 'aborted'}: {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (ActionFailed, (self.task, self.action, self.kind, self.message))


def _jsonable(value: Any) -> Any:
    """The value itself when JSON can carry it, with times as ISO 8601 text, else its repr, so `run --json`
    never fails on outputs.

    A NamedTuple is Flyte's several outputs (o0..oN), so it is shown as the plain tuple of them, as a
    JSON list, or the tuple's repr.
    """
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        value = tuple(value)
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        pass
    try:
        return json.loads(json.dumps(value, default=datetimes.json_default))
    except (TypeError, ValueError):
        return repr(value)
