"""The local backend: each attempt a process forked by a warm per-environment fork server on this machine.

The lifecycle (`flyte_decl.runtime.runner`) decides what runs when; this backend decides how an
attempt's process starts and ends here. One fork server per environment imports the task modules
once and forks one confined process per attempt (`flyte_decl.runtime.forkserver`); the attempt's
socket and log pipe are created by the lifecycle (`_Run._open_io`) and travel to the fork server
beside the launch message. The fork server reports ``started`` (pid) and ``exited`` (wait status),
which this backend hands back to the lifecycle (`_Run._on_started`, `_Run._on_exited`).

Tasks whose spec sets `reusable` run in warm workers instead of a fork per action: up to `replicas`
long-lived processes per pool (environment, folder, limits and env vars all equal), each forked once
by the fork server and confined by one ActionLimiter with those limits, running one action at a
time (`concurrency` above 1 is treated as 1). Module state persists across the actions of a worker.
A breach or timeout kills the whole worker and fails the attempt it ran; an idle worker is killed
after `idle_ttl`; all die with the run. Each attempt is still recorded, with the worker's pid.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from flyte_decl.runtime import cgpool, proctree
from flyte_decl.runtime.action import Launch
from flyte_decl.runtime.limits import ActionLimiter, Limits, Usage
from flyte_decl.runtime.records import FailureKind, Phase
from flyte_decl.runtime.scheduler import Resources, machine_capacity
from flyte_decl.runtime.tracking import Action as _Action
from flyte_decl.runtime.tracking import State as _State
from flyte_decl.runtime.wire import Connection
from flyte_decl.spec import ReusePolicy, TaskSpec

if TYPE_CHECKING:
    from flyte_decl.runtime.runner import _Run

# How long a fork server may take to kill its descendants and exit when the run ends.
FORKSERVER_EXIT_WAIT = 5.0


@dataclasses.dataclass(eq=False)
class _ForkServer:
    environment: str
    process: subprocess.Popen[bytes]
    conn: Connection
    log_path: Path
    ready: bool = False
    problems: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    environ: dict[str, str] = dataclasses.field(default_factory=dict)  # the server's, after its imports
    waiting: list[_Action] = dataclasses.field(default_factory=list)


# Which warm workers an attempt may run in: same environment, folder, limits and environment
# variables (the rest of an action's environment is the same for the whole run).
_PoolKey = tuple[str, str, int | None, float | None, tuple[tuple[str, str], ...], tuple[str, ...]]


def _pool_key(spec: TaskSpec) -> _PoolKey:
    env_vars = tuple(sorted(spec.env_vars.items()))
    return (spec.environment, str(spec.root_dir), spec.memory_limit, spec.cpu_limit, env_vars, spec.secrets)


@dataclasses.dataclass(eq=False)
class _Worker:
    """A warm worker of a reusable environment: one long-lived, limited process tree, one action at a time.

    Its limiter is created with the limits of the task that started it and lives as long as it;
    only attempts with the same `_PoolKey` run in it. `current` is the attempt it runs, or, before
    its process has started, the one it will run first.
    """

    pool: _PoolKey
    key: int  # its handle in fork server messages, from the same counter as attempts' keys
    policy: ReusePolicy
    limiter: ActionLimiter
    conn: Connection  # control socket: ("run", ...) jobs out, ("done", key) back
    pid: int | None = None
    current: _Action | None = None
    alive: bool = True  # False once it is being stopped or has exited
    idle_token: int = 0  # bumped each time it goes idle, so a stale idle timer does nothing


class LocalBackend:
    """Starts, signals and kills the attempts of one run (`_Run`) on this machine."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.forkservers: dict[str, _ForkServer] = {}
        self.workers: dict[int, _Worker] = {}  # by key
        self.pools: dict[_PoolKey, list[_Worker]] = {}
        # Attempts reserved by the scheduler that wait for a busy worker of their pool.
        self.pool_waiting: dict[_PoolKey, deque[_Action]] = {}

    # -- the backend interface (`flyte_decl.backends.Backend`) ---------------------------------------

    def capacity(self) -> Resources:
        return machine_capacity(self.run.config.capacity)

    def problem(self, action: _Action) -> str | None:
        return None  # the scheduler judges requests against this machine's capacity

    def start(self, action: _Action) -> None:
        server = self.forkservers.get(action.spec.environment) or self._start_forkserver(action.spec)
        if not server.ready:
            server.waiting.append(action)
            return
        problem = server.problems.get(action.spec.name)
        if problem is not None:
            self.run._fail_before_start(action, FailureKind.IMPORT_ERROR, *problem)
            return
        if action.spec.reusable is not None and self._run_in_worker(action, server):
            return
        self._fork_action(action, server)

    def terminate(self, action: _Action) -> None:
        pid = action.record.pid
        assert pid is not None
        proctree.kill_tree(pid, pgid=pid, sig=signal.SIGTERM)

    def kill(self, action: _Action) -> None:
        limiter = action.limiter or (action.worker.limiter if action.worker is not None else None)
        if limiter is not None:
            limiter.kill()  # for a worker: the worker goes, and its exit settles the attempt

    def withdraw(self, action: _Action) -> None:
        for server in self.forkservers.values():
            if action in server.waiting:
                server.waiting.remove(action)
        for waiting in self.pool_waiting.values():
            if action in waiting:
                waiting.remove(action)
        if action.worker is not None:  # its worker is still starting: it goes idle instead
            action.worker.current = None
            action.worker = None

    def initializing(self, action: _Action) -> bool:
        return any(action in server.waiting for server in self.forkservers.values())

    def queued(self, action: _Action) -> bool:
        return any(action in waiting for waiting in self.pool_waiting.values())

    def waiting_on_calls(self, parent: _Action) -> None:
        if parent.worker is not None:
            self._unstick(parent.worker.pool)

    def control_fds(self) -> set[int]:
        return {server.conn.sock.fileno() for server in self.forkservers.values()}

    def kill_all(self) -> None:
        for worker in list(self.workers.values()):
            worker.limiter.kill()
        for action in self.run.actions:
            if action.state == _State.RUNNING and action.limiter is not None:
                action.limiter.kill()

    def stop(self) -> None:
        self._stop_forkservers()

    def close(self) -> None:
        for worker in self.workers.values():
            worker.limiter.close()
            worker.conn.close()
        self.workers.clear()
        cgpool.POOL.drain()  # the actions' cgroups kept for reuse

    # -- isolated attempts --------------------------------------------------------------------------

    def _fork_action(self, action: _Action, server: _ForkServer) -> None:
        """Have the fork server start this attempt as a process of its own."""
        spec = action.spec
        limiter = ActionLimiter(
            action.id,
            Limits(memory=spec.memory_limit, cpu=spec.cpu_limit),
            self.run.runner.mechanisms,
            self.run.runner._cpu_pool,
        )
        action.limiter = limiter
        launch = Launch(
            action.key,
            spec.name,
            str(spec.root_dir),
            self._env_changes(server, action.env),
            limiter.child_setup(),
            spec.max_inline_io_bytes,
        )
        theirs, log_write = self.run._open_io(action)
        server.conn.send(("launch", launch), [theirs, log_write])
        self.run._watch_writes(server.conn)

    @staticmethod
    def _env_changes(server: _ForkServer, env: dict[str, str]) -> dict[str, str | None]:
        """What turns the fork server's environment into `env` (None: unset)."""
        changes: dict[str, str | None] = {
            name: value for name, value in env.items() if server.environ.get(name) != value
        }
        changes.update((name, None) for name in server.environ.keys() - env.keys())
        return changes

    # -- warm workers (reusable environments) -------------------------------------------------------

    def _run_in_worker(self, action: _Action, server: _ForkServer) -> bool:
        """Run a reusable task's attempt in a warm worker; False: run it as an isolated action.

        An idle worker of its pool takes it at once; below `replicas` a new worker starts for it;
        otherwise it waits for a worker of its pool to finish, as long as one is making progress.
        When every worker is busy with an attempt that itself waits for calls, waiting could
        deadlock (the calls may need those very workers), so it runs isolated instead.
        """
        policy = action.spec.reusable
        assert policy is not None
        pool = _pool_key(action.spec)
        workers = self.pools.setdefault(pool, [])
        for worker in workers:
            if worker.pid is not None and worker.current is None:
                self._dispatch(worker, action)
                return True
        if len(workers) < max(1, policy.replicas):
            self._start_worker(pool, policy, server, action)
            return True
        if self._progressing(pool):
            self.pool_waiting.setdefault(pool, deque()).append(action)
            return True
        return False

    def _progressing(self, pool: _PoolKey) -> bool:
        """Whether a worker of `pool` will free up without waiting for other actions."""
        return any(worker.current is not None and not worker.current.children for worker in self.pools[pool])

    def _unstick(self, pool: _PoolKey) -> None:
        """After a worker's attempt started waiting on calls: run waiters isolated if none can progress."""
        waiting = self.pool_waiting.get(pool)
        if not waiting or self._progressing(pool):
            return
        del self.pool_waiting[pool]
        for action in waiting:
            server = self.forkservers.get(action.spec.environment)
            if action.state == _State.STARTING and server is not None:
                self._fork_action(action, server)

    def _start_worker(
        self, pool: _PoolKey, policy: ReusePolicy, server: _ForkServer, action: _Action
    ) -> None:
        """Have the fork server start a worker, limited as `action`'s task, to run `action` first."""
        spec = action.spec
        key = next(self.run.keys)
        limiter = ActionLimiter(
            f"{spec.environment}-w{key}",
            Limits(memory=spec.memory_limit, cpu=spec.cpu_limit),
            self.run.runner.mechanisms,
            self.run.runner._cpu_pool,
        )
        launch = Launch(
            key,
            spec.name,
            str(spec.root_dir),
            self._env_changes(server, action.env),
            limiter.child_setup(),
            spec.max_inline_io_bytes,
            worker=True,
        )
        ours, theirs = socket.socketpair()
        # What the worker prints between actions (and its own failures) lands in a log of its own.
        log_path = self.run.log_dir / f"worker-{spec.environment}-w{key}.log"
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        server.conn.send(("launch", launch), [theirs.detach(), log_fd])
        self.run._watch_writes(server.conn)
        worker = _Worker(pool, key, policy, limiter, Connection(ours), current=action)
        action.worker = worker
        self.workers[key] = worker
        self.pools[pool].append(worker)
        self.run.selector.register(ours, selectors.EVENT_READ, lambda mask: self._on_worker(worker, mask))

    def _on_worker_started(self, worker: _Worker, pid: int) -> None:
        worker.pid = pid
        worker.limiter.attach(pid)
        if not worker.alive or self.run.aborted:
            worker.limiter.kill()
            return
        # The limiter kills the worker's tree itself on a breach; its exit then settles the attempt.
        self.run.monitor.add(worker.limiter, lambda _breach: self.run._wake())
        action, worker.current = worker.current, None
        if action is not None and action.state == _State.STARTING:
            self._dispatch(worker, action)
        else:
            self._worker_free(worker)

    def _dispatch(self, worker: _Worker, action: _Action) -> None:
        """Hand an attempt to an idle, started worker: it is running from now on."""
        worker.current = action
        action.worker = worker
        spec = action.spec
        theirs, log_write = self.run._open_io(action)
        worker.conn.send(("run", action.key, spec.name, spec.max_inline_io_bytes), [theirs, log_write])
        self.run._watch_writes(worker.conn)
        record = action.record
        record.pid = worker.pid
        record.started_at = time.time()
        record.phase = Phase.RUNNING
        action.state = _State.RUNNING
        if spec.timeout is not None:
            key = action.key
            self.run._after(spec.timeout, lambda: self.run._on_timeout(action, key))
        self.run._emit(record)

    def _on_worker(self, worker: _Worker, mask: int) -> None:
        if worker.key not in self.workers:  # its exit came first in the same batch of events
            return
        if mask & selectors.EVENT_WRITE:
            worker.conn.flush()
            self.run._watch_writes(worker.conn)
        for message in worker.conn.receive():
            action = worker.current
            if message[0] == "done" and action is not None and action.key == message[1]:
                worker.current = None
                action.worker = None
                self.run.by_key.pop(action.key, None)
                self.run._on_exited(action, None)
                if worker.alive:
                    self._worker_free(worker)
        if worker.conn.closed:  # it is exiting; the fork server reports how
            with contextlib.suppress(KeyError, ValueError):
                self.run.selector.unregister(worker.conn.sock)

    def _worker_free(self, worker: _Worker) -> None:
        """The worker finished an attempt: give it the next waiting one, or start its idle clock."""
        waiting = self.pool_waiting.get(worker.pool)
        while waiting:
            action = waiting.popleft()
            if action.state == _State.STARTING:
                self._dispatch(worker, action)
                return
        worker.idle_token += 1
        token = worker.idle_token
        self.run._after(worker.policy.idle_ttl, lambda: self._on_idle(worker, token))

    def _on_idle(self, worker: _Worker, token: int) -> None:
        if worker.alive and worker.current is None and worker.idle_token == token:
            self._stop_worker(worker)

    def _stop_worker(self, worker: _Worker) -> None:
        """Take the worker out of its pool and kill its tree; its exit comes back from the fork server."""
        worker.alive = False
        with contextlib.suppress(ValueError):
            self.pools[worker.pool].remove(worker)
        worker.limiter.kill()  # before it started, `_on_worker_started` kills it

    def _on_worker_exited(self, worker: _Worker, status: int | None) -> None:
        """The worker is gone: settle the attempt it ran, and let waiters start a new worker."""
        self.run.monitor.remove(worker.limiter)
        usage = self._drop_worker(worker)
        action, worker.current = worker.current, None
        if action is not None and action.state in (_State.STARTING, _State.RUNNING):
            action.worker = None
            # The worker's limits were the attempt's: a breach is this attempt's.
            action.breach = action.breach or usage.breach
            self.run.by_key.pop(action.key, None)
            self.run._on_exited(action, status)
        waiting = self.pool_waiting.pop(worker.pool, None)
        for action in waiting or ():
            if action.state == _State.STARTING:
                self.run._launch(action)

    def _drop_worker(self, worker: _Worker) -> Usage:
        """Forget a worker that is gone: out of its pool, its socket closed, its limiter closed."""
        worker.alive = False
        with contextlib.suppress(ValueError):
            self.pools[worker.pool].remove(worker)
        self.workers.pop(worker.key, None)
        with contextlib.suppress(KeyError, ValueError):
            self.run.selector.unregister(worker.conn.sock)
        worker.conn.close()
        return worker.limiter.close()

    def _on_worker_fork_failed(self, worker: _Worker, message: str) -> None:
        self._drop_worker(worker)
        action, worker.current = worker.current, None
        if action is not None and action.state == _State.STARTING:
            action.worker = None
            self.run._fail_before_start(action, FailureKind.CRASHED, message)

    # -- fork servers -------------------------------------------------------------------------------

    def _start_forkserver(self, spec: TaskSpec) -> _ForkServer:
        ours, theirs = socket.socketpair()
        log_path = self.run.log_dir / f"forkserver-{spec.environment}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "flyte_decl.runtime.forkserver", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                env=self.run.base_env,
                cwd=spec.root_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C goes to the runner, which shuts servers down in order
            )
        theirs.close()
        server = _ForkServer(spec.environment, process, Connection(ours), log_path)
        self.forkservers[spec.environment] = server
        self.run.selector.register(ours, selectors.EVENT_READ, lambda mask: self._on_forkserver(server, mask))
        server.conn.send(("init", spec.environment, list(self.run.config.tasks.values())))
        self.run._watch_writes(server.conn)
        return server

    def _on_forkserver(self, server: _ForkServer, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            server.conn.flush()
            self.run._watch_writes(server.conn)
        for message in server.conn.receive():
            tag = message[0]
            if tag == "ready":
                server.ready = True
                server.problems, server.environ = message[1], message[2]
                waiting, server.waiting = server.waiting, []
                for action in waiting:
                    self.run._launch(action)
            elif tag == "started":
                started = self.run.by_key.get(message[1])
                if started is None:  # not an attempt's key: a warm worker's
                    self._on_worker_started(self.workers[message[1]], message[2])
                else:
                    self.run._on_started(started, message[2])
            elif tag == "exited":
                ended = self.run.by_key.pop(message[1], None)
                if ended is None:
                    self._on_worker_exited(self.workers[message[1]], message[2])
                else:
                    self.run._on_exited(ended, message[2], message[3])
            elif tag == "fork_failed":
                if message[1] in self.workers:
                    self._on_worker_fork_failed(self.workers[message[1]], message[2])
                    continue
                action = self.run.by_key.pop(message[1])
                self.run._release_io(action)
                self.run._close_limiter(action)
                self.run._fail_before_start(action, FailureKind.CRASHED, message[2])
        if server.conn.closed:
            self._lost_forkserver(server)

    def _lost_forkserver(self, server: _ForkServer) -> None:
        """A fork server died under us: its actions' trees die with it (their lifeline ends)."""
        self.run.selector.unregister(server.conn.sock)
        server.conn.close()
        del self.forkservers[server.environment]
        code = server.process.wait()
        for pool in [pool for pool in self.pool_waiting if pool[0] == server.environment]:
            del self.pool_waiting[pool]  # still STARTING: settled with the others below
        for worker in [worker for worker in self.workers.values() if worker.pool[0] == server.environment]:
            self._on_worker_exited(worker, None)
        for action in self._actions_of(server):
            if action.limiter is not None:
                action.limiter.kill()
            self.run.by_key.pop(action.key, None)
            self.run._on_exited(action, None)
        for action in server.waiting:
            message = (
                f"the fork server of {server.environment} exited with code {code}; see {server.log_path}"
            )
            self.run._fail_before_start(action, FailureKind.CRASHED, message)

    def _actions_of(self, server: _ForkServer) -> Iterable[_Action]:
        return [
            action
            for action in self.run.actions
            if action.spec.environment == server.environment
            and action.state in (_State.STARTING, _State.RUNNING)
            and action not in server.waiting
        ]

    def _stop_forkservers(self) -> None:
        """Close every control socket, which makes each server kill its descendants, and wait."""
        servers = list(self.forkservers.values())
        self.forkservers.clear()
        for server in servers:
            with contextlib.suppress(KeyError, ValueError):
                self.run.selector.unregister(server.conn.sock)
            server.conn.close()
        for server in servers:
            try:
                server.process.wait(FORKSERVER_EXIT_WAIT)
            except subprocess.TimeoutExpired:
                proctree.kill_tree(server.process.pid)
                server.process.wait()
