"""The failing line up front: which action's own error made a run fail, and how to show it.

A task that awaits a failed child fails in turn with `RuntimeUserError: TASK (aN) failed: ...`; the
error worth showing is at the end of that chain, in the action that raised on its own. Works on
the runner's `ActionRecord`s and on the store's `StoredAction`s alike (both have id, attempt,
label, display, phase, kind, message and traceback).

    cause = root_cause(result.actions)     # the child action whose ValueError failed the run
    print(describe(cause))                 # "wf.piece[2] (a4) failed: user_error, attempt 2: ..."
    print(cause.traceback)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import Enum
from typing import Any

# The message of what a parent raised when a child failed: ActionFailed, or the Flyte error class
# standing for the child's failure kind (RuntimeUserError, OOMError, ...; see flyte_decl.errors).
_CHILD_FAILED = re.compile(r"^(?:[\w.]+\.)?\w+: \S+ \((a\d+)\) failed: ")


def root_cause(actions: Sequence[Any]) -> Any | None:
    """The last attempt of the action whose own error failed the run, following the children's failures.

    `actions` are every attempt in queue order, the root's first; None if the root did not fail.
    """
    last: dict[str, Any] = {}
    for action in actions:
        last[action.id] = action
    if not actions or _value(last[actions[0].id].kind) is None:
        return None
    current = last[actions[0].id]
    seen = {current.id}
    while (match := _CHILD_FAILED.match(current.message)) and match.group(1) in last:
        child = last[match.group(1)]
        if child.id in seen or _value(child.kind) is None and _value(child.phase) != "aborted":
            break
        seen.add(child.id)
        current = child
    return current


def caused_by_child(action: Any) -> bool:
    """Whether the attempt failed only because an action it called failed (its traceback is the child's)."""
    return _CHILD_FAILED.match(action.message) is not None


def describe(action: Any) -> str:
    """One line: `wf.piece[2] (a4) failed: user_error, attempt 2: ValueError: boom`."""
    kind = _value(action.kind) or _value(action.phase)
    attempt = f", attempt {action.attempt}" if action.attempt > 1 else ""
    return f"{action.display} ({action.id}) failed: {kind}{attempt}: {action.message}"


def failure_lines(action: Any) -> list[str]:
    """`describe(action)` then its traceback (the user's frames), if it has one."""
    lines = [describe(action)]
    if action.traceback:
        lines += action.traceback.rstrip("\n").splitlines()
    return lines


def _value(field: Any) -> str | None:
    return field.value if isinstance(field, Enum) else field
