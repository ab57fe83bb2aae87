"""`flyte.errors`: Flyte 2's runtime error classes, and what a failed child action raises in its caller.

A task that calls another task whose action failed for good (after its retries) gets the class Flyte
raises for that kind of failure; each is also a `flyte_decl.ActionFailed`, so `.task`, `.action` and
`.kind` (the flyte-decl `FailureKind`) say which action failed and how::

    try:
        await hog()
    except flyte.errors.OOMError:                 # the child went over its memory limit
        await hog.override(resources=flyte.Resources(memory="1Gi"))()
    except flyte.errors.RuntimeUserError as e:    # any other failure of the child's own code
        e.code                                    # "ValueError": the child's exception class name

One table, `FAILURE_CLASSES`, maps every flyte-decl failure kind to its Flyte class:

| failure kind         | class raised in the caller  | `.code`                       |
|----------------------|-----------------------------|-------------------------------|
| `user_error`         | `RuntimeUserError`          | the child's exception class   |
| `oom_killed`         | `OOMError`                  | `OOMKilled`                   |
| `timed_out`          | `MaxRuntimeExceededError`   | `MaxRuntimeExceededError`     |
| `queued_timeout`     | `MaxQueuedTimeExceededError`| `MaxQueuedTimeExceededError`  |
| `deadline_exceeded`  | `DeadlineExceededError`     | `DeadlineExceededError`       |
| `inline_io_exceeded` | `InlineIOMaxBytesBreached`  | `InlineIOMaxBytesBreached`    |
| `import_error`       | `ModuleLoadError`           | `ModuleLoadError`             |
| `unschedulable`      | `RuntimeSystemError`        | `Unschedulable`               |
| `crashed`            | `RuntimeSystemError`        | `Crashed`                     |
| aborted (no kind)    | `ActionAbortedError`        | `ActionAbortedError`          |

A task that raises `NonRecoverableError` (or a subclass) fails at once: its retries are not used, as in
Flyte. Unlike Flyte's, `.kind` on a child failure is the flyte-decl failure kind ("oom_killed"), not
Flyte's error kind ("user"); `.error_kind` holds Flyte's.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from flyte_decl.runtime.records import ActionFailed, FailureKind

ErrorKind = Literal["system", "unknown", "user"]


class BaseRuntimeError(RuntimeError):
    """Base of Flyte's runtime errors: `code` (a short name), `kind` ("user", "system" or "unknown").

    As in Flyte, arithmetic on an error value (one `flyte.map(..., return_exceptions=True)` returned)
    raises the error itself rather than a confusing TypeError.
    """

    def __init__(
        self, code: str, kind: ErrorKind, root_cause_message: str, worker: str | None = None
    ) -> None:
        super().__init__(root_cause_message)
        self.code = code
        self.kind: Any = kind
        self.error_kind: ErrorKind = kind
        self.worker = worker

    def _reraise(self, *_args: Any) -> Any:
        raise self

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _reraise
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = _reraise


class InitializationError(BaseRuntimeError):
    """Something was used before `flyte.init`; never raised locally, where init is optional."""


class RuntimeSystemError(BaseRuntimeError):
    """A failure of the machinery rather than the task's code (a crashed or unschedulable action)."""

    def __init__(self, code: str, message: str, worker: str | None = None) -> None:
        super().__init__(code, "system", message, worker)


class RuntimeUserError(BaseRuntimeError):
    """A failure of the task's own code; `code` is the exception's class name."""

    def __init__(self, code: str, message: str, worker: str | None = None) -> None:
        super().__init__(code, "user", message, worker)


class RuntimeUnknownError(BaseRuntimeError):
    """A failure of unknown cause."""

    def __init__(self, code: str, message: str, worker: str | None = None) -> None:
        super().__init__(code, "unknown", message, worker)


class OOMError(RuntimeUserError):
    """The action's process tree went over its memory limit and was killed."""


class TaskInterruptedError(RuntimeUserError):
    """The action was interrupted (a preempted node in Flyte)."""


class RetriesExhaustedError(RuntimeUserError):
    """Every retry of the action failed."""


def _fixed_code(code: str) -> Any:
    def __init__(self: RuntimeUserError, message: str) -> None:
        RuntimeUserError.__init__(self, code, message)

    return __init__


class TaskTimeoutError(RuntimeUserError):
    """The action went past one of its `Timeout` bounds; the subclasses say which."""

    def __init__(self, message: str, code: str = "TaskTimeoutError") -> None:
        super().__init__(code, message)


class MaxRuntimeExceededError(TaskTimeoutError):
    """An attempt ran longer than `Timeout.max_runtime` (the task's `timeout`)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "MaxRuntimeExceededError")


class MaxQueuedTimeExceededError(TaskTimeoutError):
    """An attempt waited longer than `Timeout.max_queued_time` for a queue slot or capacity."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "MaxQueuedTimeExceededError")


class DeadlineExceededError(TaskTimeoutError):
    """The action did not finish within `Timeout.deadline`, across all its attempts."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "DeadlineExceededError")


class InlineIOMaxBytesBreached(RuntimeUserError):
    """Inputs or outputs serialized larger than the task's `max_inline_io_bytes`."""

    __init__ = _fixed_code("InlineIOMaxBytesBreached")


class ModuleLoadError(RuntimeUserError):
    """The task's module or function could not be imported."""

    __init__ = _fixed_code("ModuleLoadError")


class ActionAbortedError(RuntimeUserError):
    """The action was aborted (its run was interrupted or its caller ended)."""

    __init__ = _fixed_code("ActionAbortedError")


class OnlyAsyncIOSupportedError(RuntimeUserError):
    """A sync operation was used where only async ones work."""

    __init__ = _fixed_code("OnlyAsyncIOSupportedError")


class TraceDoesNotAllowNestedTasksError(RuntimeUserError):
    """A `@flyte.trace` function called a task."""

    __init__ = _fixed_code("TraceDoesNotAllowNestedTasksError")


class CustomError(RuntimeUserError):
    """An error the user raises with a code of their choosing."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)

    @classmethod
    def from_exception(cls, e: Exception) -> CustomError:
        """A CustomError whose code is `e`'s class name and message is `e`'s text."""
        error = cls(type(e).__name__, str(e))
        error.__cause__ = e
        return error


class NotInTaskContextError(RuntimeUserError):
    """Something that needs a running task was used outside one."""


class RuntimeDataValidationError(RuntimeUserError):
    """An input or output does not match its declared type."""

    def __init__(self, var: str, e: Exception | str, task_name: str = "") -> None:
        super().__init__("DataValidationError", f"In task {task_name}, variable {var}: {e}")


class NonRecoverableError(RuntimeUserError):
    """Raise it in a task to fail at once: the task's remaining retries are not used."""

    def __init__(self, message: str, code: str = "NonRecoverableError") -> None:
        super().__init__(code, message)


class ActionNotFoundError(RuntimeError):
    """An action that does not exist was asked for."""


# The one mapping of flyte-decl failure kinds to Flyte's classes, with the `.code` of each (None: the
# child's own exception class name). Keyed by kind value; "aborted" stands for an aborted action.
FAILURE_CLASSES: dict[str, tuple[type[BaseRuntimeError], str | None]] = {
    FailureKind.USER_ERROR.value: (RuntimeUserError, None),
    FailureKind.OOM_KILLED.value: (OOMError, "OOMKilled"),
    FailureKind.TIMED_OUT.value: (MaxRuntimeExceededError, "MaxRuntimeExceededError"),
    FailureKind.QUEUED_TIMEOUT.value: (MaxQueuedTimeExceededError, "MaxQueuedTimeExceededError"),
    FailureKind.DEADLINE_EXCEEDED.value: (DeadlineExceededError, "DeadlineExceededError"),
    FailureKind.INLINE_IO_EXCEEDED.value: (InlineIOMaxBytesBreached, "InlineIOMaxBytesBreached"),
    FailureKind.IMPORT_ERROR.value: (ModuleLoadError, "ModuleLoadError"),
    FailureKind.UNSCHEDULABLE.value: (RuntimeSystemError, "Unschedulable"),
    FailureKind.CRASHED.value: (RuntimeSystemError, "Crashed"),
    "aborted": (ActionAbortedError, "ActionAbortedError"),
}

_CODE = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)")


def child_failure(task: str, action: str, kind: FailureKind | None, message: str) -> ActionFailed:
    """What a caller raises when its child action `action` of `task` failed for good.

    The instance is of the Flyte class `FAILURE_CLASSES` names for `kind` and of `ActionFailed`.
    For a user error, `.code` is the class name the child's exception message starts with, and when that
    is one of Flyte's classes (a child that did not catch a grandchild's `OOMError`), the class is it.
    """
    base, code = FAILURE_CLASSES[kind.value if kind else "aborted"]
    if code is None:
        match = _CODE.match(message)
        code = match.group(1).rsplit(".", 1)[-1] if match else "RuntimeUserError"
        # A child that failed on an uncaught grandchild's OOMError (...) passes that class on up.
        base = _USER_CLASSES.get(code, base)
    if base not in _FAILED:
        _FAILED[base] = _combined(base)
    return _FAILED[base](task, action, kind, message, code)


class _ChildFailure(ActionFailed):
    """A Flyte error class and ActionFailed at once; `.kind` stays the flyte-decl failure kind."""

    _flyte_kind: ErrorKind = "user"

    def __init__(self, task: str, action: str, kind: FailureKind | None, message: str, code: str) -> None:
        Exception.__init__(self, f"{task} ({action}) failed: {kind.value if kind else 'aborted'}: {message}")
        self.task, self.action, self.kind, self.message = task, action, kind, message
        # As in Flyte, the text is the root cause: the child's own message, without its class name.
        if kind is FailureKind.USER_ERROR and message.startswith(f"{code}: "):
            self.args = (message[len(code) + 2 :],)
        elif kind is FailureKind.USER_ERROR and message == code:
            self.args = ("",)
        self.code = code
        self.error_kind = self._flyte_kind
        self.worker = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (child_failure, (self.task, self.action, self.kind, self.message))


def _combined(base: type[BaseRuntimeError]) -> type[_ChildFailure]:
    kind = "system" if issubclass(base, RuntimeSystemError) else "user"
    cls = type(base.__name__, (_ChildFailure, base), {"__module__": __name__, "_flyte_kind": kind})
    return cls  # pickled through child_failure (see __reduce__), so no importable name is needed


_FAILED: dict[type[BaseRuntimeError], type[_ChildFailure]] = {}
# Flyte's user error classes by name, for a child whose own failure was one of them.
_USER_CLASSES: dict[str, type[BaseRuntimeError]] = {
    cls.__name__: cls
    for cls in (OOMError, TaskTimeoutError, MaxRuntimeExceededError, MaxQueuedTimeExceededError,
                DeadlineExceededError, InlineIOMaxBytesBreached, ModuleLoadError, ActionAbortedError,
                NonRecoverableError, TaskInterruptedError, RetriesExhaustedError, RuntimeSystemError)
}  # fmt: skip
