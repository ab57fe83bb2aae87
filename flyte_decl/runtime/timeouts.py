"""Flyte's three `Timeout` bounds, as the runner enforces them, and what an action past one says.

- `max_runtime` (a task's `timeout`): each attempt, from its process start; the attempt's tree gets
  SIGTERM, then SIGKILL after a grace period, and ends `timed_out`; retries apply.
- `max_queued_time`: each attempt, from when it is queued until it starts (waiting for a queue slot,
  capacity or a busy warm worker); it ends `queued_timeout` without running; retries apply.
- `deadline`: the whole action, from its first queued moment to its end, across attempts and backoffs;
  a running attempt is stopped as for `max_runtime`, a waiting one at once; it ends `deadline_exceeded`
  whatever retries are left.

All three end in phase `timed_out`; the failure kind says which bound fired, and a caller gets
`MaxRuntimeExceededError`, `MaxQueuedTimeExceededError` or `DeadlineExceededError` (see
`flyte_decl.errors`), as Flyte's cluster reports them (Flyte's local mode enforces none).

    message(FailureKind.DEADLINE_EXCEEDED, spec, "default")
    # "env.main did not finish within its deadline of 3s (retries included)"
"""

from __future__ import annotations

from flyte_decl.quantity import format_seconds
from flyte_decl.runtime.records import FailureKind
from flyte_decl.spec import TaskSpec


def message(kind: FailureKind, spec: TaskSpec, queue: str) -> str:
    """The one-line failure message of an attempt that went past the bound of `kind`."""
    if kind is FailureKind.DEADLINE_EXCEEDED:
        assert spec.deadline is not None
        return f"{spec.name} did not finish within its deadline of {format_seconds(spec.deadline)} (retries included)"
    if kind is FailureKind.QUEUED_TIMEOUT:
        assert spec.max_queued_time is not None
        return (
            f"{spec.name} waited longer than its max_queued_time of {format_seconds(spec.max_queued_time)} "
            f"for a slot in queue {queue!r} or for capacity"
        )
    assert spec.timeout is not None
    return f"{spec.name} ran longer than its timeout of {format_seconds(spec.timeout)}"
