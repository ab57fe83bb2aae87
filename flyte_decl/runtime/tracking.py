"""What the runner tracks of each action; shared by the lifecycle (`runner`) and the backends.

An `Action` lives from its call to its final phase, across its attempts; the attempt fields are
reset for each retry. `State` says where its current attempt is.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flyte_decl.masking import Masker, StreamMasker
from flyte_decl.runtime.limits import ActionLimiter, Breach
from flyte_decl.runtime.records import ActionRecord, FailureKind
from flyte_decl.runtime.wire import Connection
from flyte_decl.spec import TaskSpec


class State:
    """Where the current attempt of an action is."""

    WAITING = "waiting"  # backing off before a retry
    QUEUED = "queued"  # waiting for capacity or a queue slot
    STARTING = "starting"  # reserved; its backend is starting it
    RUNNING = "running"
    DONE = "done"


@dataclasses.dataclass(eq=False)
class Action:
    """One action across its attempts; the attempt fields are reset for each retry."""

    id: str
    spec: TaskSpec  # this attempt's spec: memory grows after an OOM kill
    queue: str
    env: dict[str, str]
    inputs: bytes
    parent: Action | None
    call_id: int | None  # the parent's handle for this call
    record: ActionRecord
    key: int  # this attempt's handle in fork server messages and timers
    state: str = State.QUEUED
    limiter: ActionLimiter | None = None
    conn: Connection | None = None
    log_read: int | None = None
    log_file: int | None = None
    log_partial: bytes = b""
    log_mask: StreamMasker[bytes] = dataclasses.field(default_factory=lambda: Masker().stream())
    outcome: tuple[Any, ...] | None = None
    breach: Breach | None = None
    timed_out: FailureKind | None = None  # which Timeout bound stopped this attempt
    aborted: str = ""  # why, once it is being aborted
    answered: bool = False  # its caller has its result already; its process may still be running
    children: set[Action] = dataclasses.field(default_factory=set)  # calls it awaits
    # The backend's handle of where this attempt runs when that is shared with other attempts
    # (locally: the warm worker it runs, or will first run, in); None for an attempt of its own.
    worker: Any = None
    lost: str = ""  # why the backend lost this attempt's process without an exit status, if it knows
    # What the caller's code context passes on (`flyte.custom_context`, `flyte.group`), for `flyte.ctx()`.
    context: dict[str, Any] = dataclasses.field(default_factory=dict)
