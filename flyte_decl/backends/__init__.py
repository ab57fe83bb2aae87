"""Backends: where and how an attempt's process starts, runs and ends.

The runner (`flyte_decl.runtime.runner`) owns the action lifecycle: phases, queueing, retries,
cache hits, timeouts, nested calls, results, events and abort. For each attempt it asks its
backend to `start` it, and the backend reports back to the run (`_Run`) on the runner's one
thread: the attempt's socket and log stream (`_Run._open_io` or `_Run._attach_io`), that it runs
(`_Run._on_started`, with a pid whose tree the attempt's limiter confines), that it ended
(`_Run._on_exited`, with a wait status; a breach is on the attempt's limiter or `Action.breach`),
or that it could not start (`_Run._fail_before_start`). Everything an attempt says (its nested
calls and its outcome) travels on its socket and is read by the runner, whatever the backend.

- `local`: a warm fork server per environment on this machine forks each attempt.
- `ray` (the `flyte-decl[ray]` extra): one agent per node of a Ray cluster; the driver places each
  attempt on a node by its requests and queue as Ray's resources and labels, and the same fork
  server machinery confines it there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from flyte_decl.runtime.runner import _Run
    from flyte_decl.runtime.scheduler import Resources
    from flyte_decl.runtime.tracking import Action


class Backend(Protocol):
    """What the runner asks of a backend; every method runs on the runner's thread."""

    def capacity(self) -> Resources:
        """What may run at once in all (the runner admits attempts against it, per queue too)."""

    def problem(self, action: Action) -> str | None:
        """Why the action could never start here (it ends `unschedulable` with this), or None."""

    def start(self, action: Action) -> None:
        """Start the action's current attempt (its state is STARTING); report back as above."""

    def terminate(self, action: Action) -> None:
        """Ask the running attempt's process tree to stop (SIGTERM), as on a timeout."""

    def kill(self, action: Action) -> None:
        """Kill the running attempt's whole process tree; its exit is reported as usual."""

    def withdraw(self, action: Action) -> None:
        """Forget an attempt that is STARTING and has not started (its caller ended)."""

    def initializing(self, action: Action) -> bool:
        """The STARTING attempt waits for its environment to start (not queued, for `max_queued_time`)."""

    def queued(self, action: Action) -> bool:
        """The STARTING attempt still waits for a place to run (a busy warm worker, a node with room):
        queued time, which `max_queued_time` bounds."""

    def waiting_on_calls(self, parent: Action) -> None:
        """A running attempt has started waiting for a nested call."""

    def control_fds(self) -> set[int]:
        """The descriptors whose events the runner handles first in a batch (pids before output)."""

    def kill_all(self) -> None:
        """Kill every attempt's tree now (the run is being aborted)."""

    def stop(self) -> None:
        """Stop everything the backend started for the run; no process may survive it."""

    def close(self) -> None:
        """Release what is left (descriptors, limiters) once the run is over."""


BackendFactory = Callable[["_Run"], Backend]
