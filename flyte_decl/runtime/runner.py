"""The runner: runs a task and every task it calls as isolated, limit-enforced actions.

This module is the action lifecycle: phases, queueing (`scheduler`), retries with `on_oom` growth,
cache hits, timeouts, nested calls, results, events and abort. Where and how an attempt's process
starts is its backend's (`flyte_decl.backends`): the local one forks it on this machine.

One thread runs everything (a selector over the backend's sockets, each action's socket and log
stream, and a wake-up pipe, plus a timer heap); the limits Monitor is the only other thread and
hands breaches over through the wake-up pipe. Data flows one way: TaskSpecs in, ActionRecords and a
RunResult out.

Example::

    runner = LocalRunner(config, log_dir=Path(".flyte-decl/logs/run1"))
    result = runner.run("env1.main", {"n": 10}, env={"DEBUG": "1"})
    result.status, result.outputs      # (Phase.SUCCEEDED, [0, 1, 4, ...])
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import itertools
import os
import secrets
import selectors
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flyte_decl.backends import Backend, BackendFactory
from flyte_decl.masking import Masker
from flyte_decl.problems import UsageError, did_you_mean
from flyte_decl.runtime import leftovers, timeouts
from flyte_decl.runtime.leftovers import RUNNER_MARK, runner_mark
from flyte_decl.runtime.limits import Breach, CpuPool, Mechanisms, Monitor, detect_mechanisms
from flyte_decl.runtime.records import (
    ActionEvent,
    ActionRecord,
    Failure,
    FailureKind,
    Phase,
    ReuseHit,
    RunResult,
)
from flyte_decl.runtime.scheduler import Scheduler, demand_of
from flyte_decl.runtime.tracking import Action as _Action
from flyte_decl.runtime.tracking import State as _State
from flyte_decl.runtime.wire import Connection, dump_payload, load_payload, oversize_message
from flyte_decl.spec import RunConfig, TaskSpec

# After SIGTERM on a timeout, how long the tree may clean up before SIGKILL.
TIMEOUT_GRACE = 1.0
# How often an attempt past its max_queued_time is looked at again while its environment starts.
QUEUED_RECHECK = 0.1
_RETRYABLE = {FailureKind.USER_ERROR, FailureKind.OOM_KILLED, FailureKind.TIMED_OUT, FailureKind.QUEUED_TIMEOUT,
              FailureKind.CRASHED}  # fmt: skip

EventHandler = Callable[[ActionEvent], None]
# Asked before an action is queued: outputs recorded for this task and serialized inputs, or None.
Reuse = Callable[[TaskSpec, bytes], ReuseHit | None]
# Told (action id, serialized outputs) when a caller gets a child's outputs, before its final event.
Answered = Callable[[str, bytes], None]


class LocalRunner:
    """Runs declared tasks on this machine; one `run` at a time.

    `on_event`, if given, sees every phase change and every line an action prints. `abort` may be
    called from a signal handler (or another thread) while `run` is in progress, or before it
    starts: every action tree is killed and `run` returns with status `aborted`. `reuse`, if given,
    is asked before each action is queued; on a hit the action ends `cached` with those outputs and
    no process runs. `on_answer`, if given, is told a child's outputs as its caller gets them (its
    final event comes once its process is gone), so that the caller's next call can reuse them.
    """

    def __init__(
        self,
        config: RunConfig,
        *,
        log_dir: Path,
        on_event: EventHandler | None = None,
        mechanisms: Mechanisms | None = None,
        reuse: Reuse | None = None,
        backend: BackendFactory | None = None,
        on_answer: Answered | None = None,
    ) -> None:
        self.config = config
        self.log_dir = Path(log_dir)
        self.on_event = on_event
        self.reuse = reuse
        self.backend = backend
        self.on_answer = on_answer
        self.mechanisms = mechanisms if mechanisms is not None else detect_mechanisms()
        leftovers.sweep(self.mechanisms)  # what runners killed before they could clean up left behind
        self._cpu_pool = CpuPool()
        self._current: _Run | None = None
        self._abort_requested = False  # until the run in progress (or the next one) has returned

    def run(
        self,
        task_name: str,
        inputs: dict[str, Any],
        *,
        queue: str | None = None,
        env: dict[str, str] | None = None,
        short_name: str | None = None,
    ) -> RunResult:
        """Run a task to its end; `queue` applies to this root action only, `env` to every action.

        `short_name` is the root task's display label (Flyte's), shown beside its label.
        """
        spec = self.task(task_name)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        run = _Run(self, env or {})
        self._current = run
        try:
            if self._abort_requested:  # asked for while this run was being set up
                run.abort("run aborted")
            context = {"short_name": short_name} if short_name else {}
            return run.execute(spec, inputs, queue or spec.queue, context)
        finally:
            run.close()
            self._current = None
            self._abort_requested = False

    def abort(self) -> None:
        """Kill every action tree of the run in progress (or about to start) and mark it aborted.

        Only asks: the run's own thread does the killing between two events (see `_Run.abort`), so
        this is safe in a signal handler that interrupts that thread anywhere.
        """
        self._abort_requested = True
        run = self._current
        if run is not None:
            run.abort("run aborted")

    def task(self, name: str) -> TaskSpec:
        """The spec of a task by full name (`env2.square`) or by a short name that is unique."""
        if name in self.config.tasks:
            return self.config.tasks[name]
        matches = [spec for spec in self.config.tasks.values() if spec.task == name]
        if len(matches) == 1:
            return matches[0]
        if matches:
            names = ", ".join(sorted(spec.name for spec in matches))
            raise UsageError(f"task {name!r} is ambiguous: {names}")
        raise UsageError(f"unknown task {name!r}; {did_you_mean(name, self.config.tasks)}")


class _Run:
    """The state of one run; lives for one `LocalRunner.run` call."""

    def __init__(self, runner: LocalRunner, run_env: dict[str, str]) -> None:
        self.runner = runner
        self.config = runner.config
        self.id = "r" + secrets.token_hex(4)
        self.log_dir = runner.log_dir
        declared = {name for spec in self.config.tasks.values() for name in spec.secrets}
        # A declared secret given with the run's env (`-e API_TOKEN=...`) is a secret like one from
        # os.environ: only its tasks see it.
        self.run_env = {name: value for name, value in run_env.items() if name not in declared}
        given = {**os.environ, **run_env}
        self.secrets = {name: given[name] for name in declared if name in given}
        # No process sees a secret unless its task declares it: not even the fork servers.
        self.base_env = {name: value for name, value in os.environ.items() if name not in declared}
        self.masker = Masker(self.secrets.values())
        # Every process of the run carries this, so the next runner can kill it should we die first.
        self.base_env[RUNNER_MARK] = runner_mark()
        self.selector = selectors.DefaultSelector()
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_read, False)
        os.set_blocking(self.wake_write, False)
        self.selector.register(self.wake_read, selectors.EVENT_READ, self._on_wake)
        self.monitor = Monitor()
        self.breaches: deque[tuple[_Action, int, Breach]] = deque()
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self.by_key: dict[int, _Action] = {}
        self.actions: list[_Action] = []
        # Answered attempts whose process is not gone yet: the run ends only once each is recorded.
        self.answered: set[_Action] = set()
        self.records: list[ActionRecord] = []
        self.keys = itertools.count(1)
        self.task_counts: dict[str, int] = {}
        self.root: _Action | None = None
        self.aborted = False
        self.abort_reason = ""  # set by `abort`, acted on by the loop's thread (`_aborting`)
        if runner.backend is None:
            from flyte_decl.backends.local import LocalBackend

            self.backend: Backend = LocalBackend(self)
        else:
            self.backend = runner.backend(self)
        self.scheduler: Scheduler[_Action] = Scheduler(self.backend.capacity(), self.config.queues)

    # -- the run ----------------------------------------------------------------------------------

    def execute(
        self, spec: TaskSpec, inputs: dict[str, Any], queue: str, context: dict[str, Any]
    ) -> RunResult:
        root = self._new_action(spec, queue, dump_payload(((), inputs)), None, None, context)
        self.root = root
        self._submit(root)
        while (root.state != _State.DONE or self.answered) and not self._aborting():
            self._step()
        return self._result(root)

    def _step(self) -> None:
        for action in self.scheduler.ready():
            self._launch(action)
            if self._aborting():
                return
        if self.root is not None and self.root.state == _State.DONE and not self.answered:
            return  # it ended as it was launched (it could not start): nothing more to wait for
        timeout = max(0.0, self.timers[0][0] - time.monotonic()) if self.timers else None
        events = self.selector.select(timeout)
        if len(events) > 1:
            # Backend news first: an action is running (its pid known) before its output is read.
            control = self.backend.control_fds()
            events.sort(key=lambda event: event[0].fd not in control)
        for key, mask in events:
            key.data(mask)
            if self._aborting():
                return
        self._take_breaches()
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now and not self._aborting():
            heapq.heappop(self.timers)[2]()

    def _result(self, root: _Action) -> RunResult:
        record = root.record
        outputs = None
        status = Phase.SUCCEEDED if record.phase == Phase.CACHED else record.phase
        if status == Phase.SUCCEEDED and root.outcome is not None:
            # Outputs may be instances of the user's classes: let them import here too.
            if str(root.spec.root_dir) not in sys.path:
                sys.path.insert(0, str(root.spec.root_dir))
            outputs = load_payload(root.outcome[1])
        error = None
        if record.kind is not None:
            error = Failure(record.kind, record.message, record.traceback)
        return RunResult(
            run_id=self.id,
            status=status,
            outputs=outputs,
            error=error,
            actions=self.records,
            log_dir=self.log_dir,
            mechanisms=self.runner.mechanisms.describe(),
        )

    def abort(self, reason: str) -> None:
        """Ask for the run to be aborted; safe to call from a signal handler or another thread.

        Only the loop's thread changes the run's state. A signal handler runs between two bytecodes
        of that very thread, possibly halfway through a launch (a message half sent to a fork
        server), so it only records the request and wakes the loop, which aborts between two events.
        """
        if not self.abort_reason:
            self.abort_reason = reason
        self._wake()

    def _aborting(self) -> bool:
        """On the loop's thread: carry out a requested abort; whether the run is aborted."""
        if self.abort_reason and not self.aborted:
            self._abort_now(self.abort_reason)
        return self.aborted

    def _abort_now(self, reason: str) -> None:
        """Kill every tree and fork server and mark every unfinished action aborted (loop thread only)."""
        if self.aborted:
            return
        self.aborted = True
        self.backend.kill_all()
        for action in self.actions:
            if action.state != _State.DONE:
                action.state = _State.DONE
                self._set_final(action.record, Phase.ABORTED, None, action.aborted or reason)
        self.backend.stop()

    def close(self) -> None:
        """Leave nothing behind: abort what still runs, stop the monitor, close every descriptor."""
        self._abort_now(self.abort_reason or "run ended")
        self.monitor.stop()
        for action in self.actions:
            self._release_io(action)
            if action.limiter is not None:
                action.limiter.close()
                action.limiter = None
        self.backend.close()
        self.selector.close()
        os.close(self.wake_read)
        os.close(self.wake_write)

    # -- actions ----------------------------------------------------------------------------------

    def _new_action(
        self,
        spec: TaskSpec,
        queue: str,
        inputs: bytes,
        parent: _Action | None,
        call_id: int | None,
        context: dict[str, Any],
    ) -> _Action:
        """A new action, queued; `context` is what its caller's code passes on (group, short name, ...)."""
        index = self.task_counts.get(spec.name, 0)
        self.task_counts[spec.name] = index + 1
        env = {**self.base_env, **spec.env_vars}
        env.update({name: self.secrets[name] for name in spec.secrets if name in self.secrets})
        env.update(self.run_env)
        action_id = f"a{len(self.actions) + 1}"
        record = self._record(action_id, parent.id if parent else None, spec, index, 1, queue)
        record.group, record.short_name = context.get("group"), context.get("short_name")
        action = _Action(action_id, spec, queue, env, inputs, parent, call_id, record, next(self.keys))
        action.context = context
        self.actions.append(action)
        self.by_key[action.key] = action
        self._emit(record, inputs=inputs)
        if spec.deadline is not None:
            self._after(spec.deadline, lambda: self._on_deadline(action))
        return action

    def _record(
        self, action_id: str, parent: str | None, spec: TaskSpec, index: int, attempt: int, queue: str
    ) -> ActionRecord:
        record = ActionRecord(
            id=action_id,
            parent=parent,
            task=spec.name,
            index=index,
            attempt=attempt,
            queue=queue,
            limits={
                "cpu": spec.cpu_limit,
                "memory": spec.memory_limit,
                "timeout": spec.timeout,
                "max_inline_io_bytes": spec.max_inline_io_bytes,
            },
            queued_at=time.time(),
            log_path=self.log_dir / f"{action_id}.{attempt}.log",
        )
        self.records.append(record)
        return record

    def _submit(self, action: _Action) -> None:
        spec = action.spec
        if len(action.inputs) > spec.max_inline_io_bytes:
            message = oversize_message(spec.name, "inputs", len(action.inputs), spec.max_inline_io_bytes)
            self._fail_before_start(action, FailureKind.INLINE_IO_EXCEEDED, message)
            return
        hit = self.runner.reuse(spec, action.inputs) if self.runner.reuse is not None else None
        if hit is not None:
            action.outcome = ("succeeded", hit.outputs)
            action.record.log_path = None
            action.record.started_at = time.time()
            message = f"outputs reused from {hit.source}"
            self._set_final(action.record, Phase.CACHED, None, message, outputs=hit.outputs)
            self._settle(action, None)
            return
        demand = demand_of(spec, action.queue)
        problem = self.backend.problem(action) or self.scheduler.problem(demand)
        if problem is not None:
            self._fail_before_start(action, FailureKind.UNSCHEDULABLE, problem)
            return
        action.state = _State.QUEUED
        self.scheduler.enqueue(action, demand)
        if spec.max_queued_time is not None:
            key = action.key
            self._after(spec.max_queued_time, lambda: self._on_queued_timeout(action, key))

    def _fail_before_start(
        self, action: _Action, kind: FailureKind, message: str, traceback: str = ""
    ) -> None:
        self.scheduler.done(action)
        action.record.log_path = None
        self._set_final(action.record, Phase.FAILED, kind, message, traceback)
        self._settle(action, kind)

    def _launch(self, action: _Action) -> None:
        if self.aborted:
            return
        action.state = _State.STARTING
        self.backend.start(action)

    def _open_io(self, action: _Action) -> tuple[int, int]:
        """The attempt's socket (inputs queued on it) and log pipe; returns the process's two ends."""
        ours, theirs = socket.socketpair()
        log_read, log_write = os.pipe()
        self._attach_io(action, ours, log_read)
        return theirs.detach(), log_write

    def _attach_io(self, action: _Action, ours: socket.socket, log_read: int) -> None:
        """Serve the attempt's socket (inputs queued on it) and read its log stream from `log_read`.

        Takes over both: `log_read` is any readable descriptor (a pipe, a socket), closed at the end.
        """
        action.conn = Connection(ours)
        self.selector.register(ours, selectors.EVENT_READ, lambda mask: self._on_action_socket(action, mask))
        info = {"run": self.id, "action": action.id, "task": action.spec.name, "attempt": action.record.attempt,
                "data_dir": str(self.log_dir / "data"), **action.context}  # fmt: skip
        action.conn.send(("inputs", action.inputs, info))
        self._watch_writes(action.conn, lambda mask: self._on_action_socket(action, mask))
        assert action.record.log_path is not None
        action.log_file = os.open(
            action.record.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644
        )
        os.set_blocking(log_read, False)
        action.log_read = log_read
        action.log_mask = self.masker.stream()
        self.selector.register(log_read, selectors.EVENT_READ, lambda mask: self._on_log(action))

    def _on_started(self, action: _Action, pid: int) -> None:
        """The attempt runs as `pid`; its limiter, if the backend gave it one here, confines it from now."""
        record = action.record
        record.pid = pid
        record.started_at = time.time()
        record.phase = Phase.RUNNING
        action.state = _State.RUNNING
        if action.limiter is not None:
            action.limiter.attach(pid)
        # Its caller ended, or its deadline passed, while the fork was on its way.
        if action.aborted or action.timed_out:
            self.backend.kill(action)
            return
        key = action.key
        if action.limiter is not None:
            self.monitor.add(action.limiter, lambda breach: self._on_breach(action, key, breach))
        if action.spec.timeout is not None:
            self._after(action.spec.timeout, lambda: self._on_timeout(action, key))
        self._emit(record)

    def _on_breach(self, action: _Action, key: int, breach: Breach) -> None:
        """Called on the Monitor's thread: hand over to the loop."""
        self.breaches.append((action, key, breach))
        self._wake()

    def _on_timeout(self, action: _Action, key: int, kind: FailureKind = FailureKind.TIMED_OUT) -> None:
        if action.key != key or action.state != _State.RUNNING or action.record.pid is None:
            return
        action.timed_out = action.timed_out or kind  # the bound that fired first
        self.backend.terminate(action)
        self._after(TIMEOUT_GRACE, lambda: self._kill_attempt(action, key))

    def _on_deadline(self, action: _Action) -> None:
        """The action's deadline passed: stop its running attempt, or end it where it waits."""
        if action.state == _State.RUNNING:
            self._on_timeout(action, action.key, FailureKind.DEADLINE_EXCEEDED)
        elif action.state != _State.DONE:
            self._time_out_waiting(action, FailureKind.DEADLINE_EXCEEDED)

    def _on_queued_timeout(self, action: _Action, key: int) -> None:
        """Still waiting for a queue slot, capacity or a busy warm worker of its pool: it fails. Waiting
        for its fork server to start is initializing, not queueing: look again once that is over."""
        if action.key != key:
            return
        if self.backend.initializing(action):
            self._after(QUEUED_RECHECK, lambda: self._on_queued_timeout(action, key))
            return
        for_worker = action.state == _State.STARTING and self.backend.queued(action)
        if action.state == _State.QUEUED or for_worker:
            self._time_out_waiting(action, FailureKind.QUEUED_TIMEOUT)

    def _time_out_waiting(self, action: _Action, kind: FailureKind) -> None:
        """End an attempt that is not running (queued, backing off, starting) past a Timeout bound."""
        if action.state == _State.STARTING and action.limiter is not None:
            action.timed_out = kind  # launched but not yet started: its exit settles it
            return
        self.backend.withdraw(action)
        self.scheduler.done(action)
        action.record.log_path = None
        self._set_final(
            action.record, Phase.TIMED_OUT, kind, timeouts.message(kind, action.spec, action.queue)
        )
        self._settle(action, kind)

    def _kill_attempt(self, action: _Action, key: int) -> None:
        if action.key != key or action.state != _State.RUNNING:
            return
        self.backend.kill(action)  # its exit settles the attempt

    def _on_call(
        self,
        parent: _Action,
        call_id: int,
        task: str,
        payload: bytes,
        settings: dict[str, Any],
        context: dict[str, Any] | None = None,
    ) -> None:
        """A running action called a declared task: start a child action it waits for."""
        if task not in self.config.tasks:
            # A function declared in code under an environment the loaded config does not have.
            message = f"{task} is not a task of the loaded configuration"
            assert parent.conn is not None
            parent.conn.send(("reply_failed", call_id, task, "-", FailureKind.IMPORT_ERROR.value, message))
            self._watch_writes(parent.conn)
            return
        override_problem = ""
        try:
            spec = self.config.spec_for(task, settings)
        except Exception as exc:  # settings the config layer rejects, e.g. a malformed quantity
            spec = self.config.tasks[task]
            override_problem = f"{task}.override(...) is invalid: {exc}"
        child = self._new_action(spec, spec.queue, payload, parent, call_id, context or {})
        parent.children.add(child)
        if len(parent.children) == 1:
            self.scheduler.block(parent)
        if override_problem:
            self._fail_before_start(child, FailureKind.USER_ERROR, override_problem)
        else:
            self._submit(child)
        self.backend.waiting_on_calls(parent)

    def _on_exited(self, action: _Action, status: int | None, max_rss: int | None = None) -> None:
        """The attempt's process is gone (reaped, or its fork server died): settle what happened.

        `max_rss` is its resident set's high-water mark in bytes as its reaper got it (``wait4``).
        """
        record = action.record
        if action.conn is not None:
            self._read_action_socket(action)
        self.answered.discard(action)
        if action.log_read is not None:
            self._on_log(action, drain=True)
        self._close_limiter(action, max_rss)
        self._take_breaches()
        self._release_io(action)
        self.scheduler.done(action)
        if status is not None:
            if os.WIFSIGNALED(status):
                record.signal = os.WTERMSIG(status)
            else:
                record.exit_code = os.waitstatus_to_exitcode(status)
        phase, kind, message, traceback = self._judge(action)
        if action.breach is not None:
            record.peak_memory = max(record.peak_memory or 0, action.breach.peak)
        outputs = action.outcome[1] if phase == Phase.SUCCEEDED and action.outcome is not None else None
        self._set_final(record, phase, kind, message, traceback, outputs)
        for child in list(action.children):
            self._abort_action(child, f"its parent {action.id} ended")
        self._settle(action, kind)

    def _judge(self, action: _Action) -> tuple[Phase, FailureKind | None, str, str]:
        spec, record, outcome = action.spec, action.record, action.outcome
        if action.answered:  # see `_answer`: what came after the result cannot take it back
            return Phase.SUCCEEDED, None, "", ""
        if action.aborted:
            return Phase.ABORTED, None, action.aborted, ""
        if action.breach is not None:
            return Phase.FAILED, FailureKind.OOM_KILLED, action.breach.message, ""
        if action.timed_out:
            return (
                Phase.TIMED_OUT,
                action.timed_out,
                timeouts.message(action.timed_out, spec, action.queue),
                "",
            )
        if outcome is not None and outcome[0] == "succeeded":
            return Phase.SUCCEEDED, None, "", ""
        if outcome is not None and outcome[0] == "failed":
            masked = self.masker.text
            return Phase.FAILED, FailureKind.USER_ERROR, masked(outcome[1]), masked(outcome[2])
        if outcome is not None and outcome[0] == "oversize":
            message = oversize_message(spec.name, "outputs", outcome[1], spec.max_inline_io_bytes)
            return Phase.FAILED, FailureKind.INLINE_IO_EXCEEDED, message, ""
        if record.signal is not None:
            message = f"{spec.name} was killed by {signal.Signals(record.signal).name}"
        elif record.exit_code is not None:
            message = f"{spec.name} exited with code {record.exit_code} without reporting a result"
        else:
            message = f"{spec.name} {action.lost or 'lost its fork server'}"
        return Phase.FAILED, FailureKind.CRASHED, f"{message}; see {record.log_path}", ""

    def _take_breaches(self) -> None:
        while self.breaches:
            action, key, breach = self.breaches.popleft()
            if action.key == key:
                action.breach = breach

    def _close_limiter(self, action: _Action, max_rss: int | None = None) -> None:
        if action.limiter is None:
            return
        self.monitor.remove(action.limiter)
        usage = action.limiter.close(max_rss)
        action.limiter = None
        # The breach may still be on its way from the Monitor's thread; the limiter knows it already.
        action.breach = action.breach or usage.breach
        record = action.record
        record.peak_memory = usage.peak_memory
        record.cpu_seconds = usage.cpu_seconds
        # Samples are on the monotonic clock; records keep epoch seconds, like their timestamps.
        offset = time.time() - time.monotonic()
        record.samples = [(at + offset, rss, cpu) for at, rss, cpu in usage.samples]

    def _settle(self, action: _Action, kind: FailureKind | None) -> None:
        """After an attempt's end: retry it, or hand the final outcome to whoever called it."""
        action.state = _State.DONE
        retries = action.spec.retries
        attempt = action.record.attempt
        # A task raising flyte.errors.NonRecoverableError reports its failure final: no retry.
        final = (
            action.outcome is not None and action.outcome[0] == "failed" and action.outcome[3:4] == (True,)
        )
        if kind in _RETRYABLE and attempt <= retries.count and not self.aborted and not final:
            self._retry(action, kind)
            return
        if action.parent is None:
            return  # the run's own result: `_result` reads its outcome
        outputs = None
        if action.record.phase in (Phase.SUCCEEDED, Phase.CACHED):
            outputs = action.outcome[1] if action.outcome is not None else b""
        # Final: the run need not hold this action's payloads any longer.
        action.inputs = b""
        action.outcome = None
        self._hand_over(action, outputs)

    def _answer(self, action: _Action) -> None:
        """An isolated attempt reported success: its caller gets the outputs now, not once the process is gone.

        The outputs are complete and checked: the action sends them only within `max_inline_io_bytes`
        (else it reports "oversize"). The attempt is still settled and recorded when its process is
        gone (`_on_exited`), with its exit status or signal, peak memory and CPU time as measured then.
        The rule that keeps the record and the answer the same: a success that arrives before the
        runner knows of a breach, the timeout or an abort of the attempt is final, and whatever
        happens to the process afterwards (a breach while it exits, its timeout, a kill) is recorded
        but cannot take the result back; a success that arrives after any of those is judged as
        before (`_judge`). A success is never retried, so retries are unaffected. Attempts run by warm
        workers are answered when their worker reports them done.
        """
        parent = action.parent
        if parent is None or action not in parent.children:
            return
        if action.worker is not None or action.state != _State.RUNNING or action.limiter is None:
            return
        self._take_breaches()
        # One last look, so that a breach between two polls is not overtaken by the result.
        action.breach = action.breach or action.limiter.poll() or action.limiter.breach
        if action.breach is not None or action.timed_out or action.aborted:
            return
        assert action.outcome is not None
        action.answered = True
        self.answered.add(action)
        if self.runner.on_answer is not None:
            self.runner.on_answer(action.id, action.outcome[1])
        self._hand_over(action, action.outcome[1])

    def _hand_over(self, action: _Action, outputs: bytes | None) -> None:
        """Send the caller an action's result, once: `outputs`, or (None) the failure its record holds."""
        parent = action.parent
        if parent is None or action not in parent.children:
            return
        parent.children.discard(action)
        if parent.conn is not None:
            record = action.record
            if outputs is not None:
                parent.conn.send(("reply", action.call_id, outputs))
            else:
                kind_value = record.kind.value if record.kind else None
                parent.conn.send(
                    ("reply_failed", action.call_id, action.spec.name, action.id, kind_value, record.message)
                )
            self._watch_writes(parent.conn, lambda mask: self._on_action_socket(parent, mask))
        if not parent.children:
            self.scheduler.unblock(parent)

    def _retry(self, action: _Action, kind: FailureKind | None) -> None:
        spec = action.spec
        on_oom = spec.retries.on_oom
        if kind == FailureKind.OOM_KILLED and on_oom is not None and spec.memory_limit is not None:
            grown = on_oom.grow(spec.memory_limit)
            request = grown if spec.memory_request == spec.memory_limit else spec.memory_request
            spec = dataclasses.replace(spec, memory_limit=grown, memory_request=request)
        attempt = action.record.attempt + 1
        parent = action.parent.id if action.parent else None
        labels = action.record.group, action.record.short_name
        action.record = self._record(action.id, parent, spec, action.record.index, attempt, action.queue)
        action.record.group, action.record.short_name = labels
        action.spec = spec
        action.key = next(self.keys)
        self.by_key[action.key] = action
        action.outcome = action.breach = None
        action.timed_out = None
        action.state = _State.WAITING
        self._emit(action.record, inputs=action.inputs)
        key = action.key
        self._after(spec.retries.delay(attempt - 1), lambda: self._resubmit(action, key))

    def _resubmit(self, action: _Action, key: int) -> None:
        if action.key == key and action.state == _State.WAITING:
            self._submit(action)

    def _abort_action(self, action: _Action, reason: str) -> None:
        """Stop an action its caller no longer waits for, and everything it started."""
        if action.state == _State.DONE:
            return
        if action.state == _State.RUNNING:
            action.aborted = reason
            self.backend.kill(action)  # its exit comes back from the backend and settles it
            return
        self.backend.withdraw(action)
        if action.state == _State.STARTING and action.limiter is not None:
            action.aborted = reason  # launched but not yet started: the exit will settle it
            return
        self.scheduler.done(action)
        action.state = _State.DONE
        action.record.log_path = None
        self._set_final(action.record, Phase.ABORTED, None, reason)

    def _set_final(
        self,
        record: ActionRecord,
        phase: Phase,
        kind: FailureKind | None,
        message: str,
        traceback: str = "",
        outputs: bytes | None = None,
    ) -> None:
        record.phase = phase
        record.kind = kind
        record.message = message
        record.traceback = traceback
        record.ended_at = time.time()
        self._emit(record, outputs=outputs)

    def _emit(
        self,
        record: ActionRecord,
        line: str | None = None,
        *,
        inputs: bytes | None = None,
        outputs: bytes | None = None,
    ) -> None:
        if self.runner.on_event is not None:
            event = ActionEvent.of(record, time.time(), line, inputs=inputs, outputs=outputs)
            self.runner.on_event(event)

    # -- I/O ----------------------------------------------------------------------------------------

    def _on_action_socket(self, action: _Action, mask: int) -> None:
        conn = action.conn
        if conn is None:
            return
        if mask & selectors.EVENT_WRITE:
            conn.flush()
            self._watch_writes(conn, lambda mask: self._on_action_socket(action, mask))
        if mask & selectors.EVENT_READ:
            self._read_action_socket(action)

    def _read_action_socket(self, action: _Action) -> None:
        assert action.conn is not None
        for message in action.conn.receive():
            if message[0] == "call":
                self._on_call(action, *message[1:])
            else:
                action.outcome = message
                if message[0] == "succeeded":
                    self._answer(action)
        if action.conn.closed:
            self.selector.unregister(action.conn.sock)
            action.conn.close()
            action.conn = None

    def _on_log(self, action: _Action, drain: bool = False) -> None:
        """Copy what the action printed to its log file, line by line to `on_event` and masked."""
        if action.log_read is None:  # closed earlier in the same batch of events
            return
        while True:
            try:
                chunk = os.read(action.log_read, 65536)
            except BlockingIOError:
                return
            if not chunk:
                self._write_log(action, b"", final=True)
                self.selector.unregister(action.log_read)
                os.close(action.log_read)
                action.log_read = None
                return
            self._write_log(action, chunk, final=False)
            if not drain:
                return

    def _write_log(self, action: _Action, chunk: bytes, final: bool) -> None:
        # Masked as a stream, so that a secret split across reads (or lines) is still masked.
        data = action.log_partial + (
            (action.log_mask.close() or b"") if final else action.log_mask.feed(chunk)
        )
        if self.runner.on_event is None:
            os.write(action.log_file, data)  # type: ignore[arg-type]
            action.log_partial = b""
            return
        lines = data.split(b"\n")
        action.log_partial = b"" if final else lines.pop()
        if final and not lines[-1]:
            lines.pop()
        if lines:
            os.write(action.log_file, b"".join(line + b"\n" for line in lines))  # type: ignore[arg-type]
        for line in lines:
            self._emit(action.record, line.decode(errors="replace"))

    def _release_io(self, action: _Action) -> None:
        if action.conn is not None:
            self.selector.unregister(action.conn.sock)
            action.conn.close()
            action.conn = None
        if action.log_read is not None:
            self.selector.unregister(action.log_read)
            os.close(action.log_read)
            action.log_read = None
        if action.log_file is not None:
            rest = action.log_partial + (action.log_mask.close() or b"")
            if rest:
                os.write(action.log_file, rest)
                action.log_partial = b""
            os.close(action.log_file)
            action.log_file = None

    def _watch_writes(self, conn: Connection, handler: Callable[[int], None] | None = None) -> None:
        """Ask the selector for writability exactly while `conn` has unsent bytes."""
        key = self.selector.get_key(conn.sock)
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.wants_write else 0)
        if key.events != events:
            self.selector.modify(conn.sock, events, handler or key.data)

    def _wake(self) -> None:
        """Make the loop's select return; callable from any thread or a signal handler."""
        with contextlib.suppress(OSError):  # closed: the run is already over
            os.write(self.wake_write, b"!")

    def _on_wake(self, _mask: int) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self.wake_read, 4096)

    def _after(self, delay: float, callback: Callable[[], None]) -> None:
        heapq.heappush(self.timers, (time.monotonic() + delay, next(self.keys), callback))
