"""What runs on a Ray node: one long-lived agent per node that starts and confines many attempts.

`NodeAgent` is a Ray actor (no resources of its own), placed on its node by the driver
(`RayCluster`, by node affinity) and kept for as long as the driver's connection to Ray. For each
run, `NodeAgent.serve` connects back to the run's driver (`RayBackend`'s listener) and serves the
run's attempts on this node until the driver's connection closes. Every connection starts with a
``("hello", token, ...)`` frame:

- ``("hello", token, node_id, "node")``: the run's control connection for this node. The driver
  sends ``("run", specs, hidden)`` once (the run's TaskSpecs, every declared secret's name), then
  ``("job", key, Job)`` per attempt, ``("term", key)`` (its timeout), ``("kill", key)``. The agent
  reports ``("started", key, pid)``, ``("exited", key, wait_status, usage)`` and ``("failed", key,
  kind, message, traceback)`` when the attempt could not start.
- ``("hello", token, key, "io")``: handed to the attempt's process as its socket; the driver speaks
  the usual wire protocol on it (inputs, nested calls and their replies, the outcome).
- ``("hello", token, key, "log")``: the attempt's stdout and stderr; the driver reads it as a pipe.

Each action sees the Ray id of its node as ``FLYTE_DECL_NODE``.

Attempts are forked by one warm fork server per run and environment on this node
(`flyte_decl.runtime.forkserver`: imports once per node and environment) and each is confined by an
`ActionLimiter` here, exactly as on the local backend: memory over the whole tree (cgroup or
watchdog), CPU, and no survivor. When the driver's control connection closes (the run ended, or
the driver died, even by SIGKILL), the agent kills every attempt's tree of that run and stops the
run's fork servers, which kill every descendant. Should the agent itself die (Ray ends an actor
whose owner, the driver, died), each fork server sees its control socket close and does the same.

The nodes need flyte-decl and the task modules at the same paths as the driver (one image, or a
shared filesystem).
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from flyte_decl.runtime import cgpool, proctree
from flyte_decl.runtime.action import Launch
from flyte_decl.runtime.limits import ActionLimiter, CpuPool, Limits, Monitor, detect_mechanisms
from flyte_decl.runtime.records import FailureKind
from flyte_decl.runtime.wire import Connection, send_message
from flyte_decl.spec import TaskSpec

# Set in every action on a Ray node: the Ray id of the node it runs on.
ENV_NODE = "FLYTE_DECL_NODE"
# How long a run's fork server may take to kill its descendants and exit once the run is over.
_SERVER_EXIT_WAIT = 5.0
# How many runs one agent serves at once (each on a thread of the actor).
MAX_RUNS = 64


@dataclass
class Job:
    """What the driver sends a node for one attempt (on the run's control connection)."""

    environment: str
    task: str
    root_dir: str
    env: dict[str, str]  # the task's env_vars, its declared secrets and the run's variables
    memory_limit: int | None
    cpu_limit: float | None
    max_inline_io_bytes: int


@dataclass(eq=False)
class _Server:
    """A run's warm fork server of one environment on this node."""

    process: subprocess.Popen[bytes]
    conn: Connection
    ready: bool = False
    problems: dict[str, tuple[str, str]] = field(default_factory=dict)
    environ: dict[str, str] = field(default_factory=dict)
    waiting: list[tuple[int, Job]] = field(default_factory=list)  # jobs for once it is ready


@dataclass(eq=False)
class _Attempt:
    key: int
    server: _Server
    limiter: ActionLimiter
    pid: int | None = None
    killed: bool = False


class NodeAgent:
    """The Ray actor of one node: serves each run's attempts there (`serve`, one thread per run)."""

    def __init__(self) -> None:
        import ray

        self.node_id: str = ray.get_runtime_context().get_node_id()
        self.mechanisms = detect_mechanisms()
        self.cpu_pool = CpuPool()

    def serve(self, driver: tuple[str, int], token: str) -> str:
        """Serve one run's attempts on this node until its driver's connection closes; the node's id."""
        try:
            control = _connect(driver, ("hello", token, self.node_id, "node"))
        except OSError:  # the driver is gone already
            return self.node_id
        _RunOnNode(self, driver, token, control).serve()
        return self.node_id


def _connect(driver: tuple[str, int], hello: tuple[Any, ...]) -> socket.socket:
    sock = socket.create_connection(driver)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    send_message(sock, hello)
    return sock


class _RunOnNode:
    """One run on this node: its fork servers and attempts, on one selector loop."""

    def __init__(self, agent: NodeAgent, driver: tuple[str, int], token: str, control: socket.socket) -> None:
        self.agent, self.driver, self.token = agent, driver, token
        self.control = Connection(control)
        self.selector = selectors.DefaultSelector()
        self.servers: dict[str, _Server] = {}  # by environment
        self.attempts: dict[int, _Attempt] = {}  # by key
        self.monitor = Monitor()
        self.specs: list[TaskSpec] = []
        self.hidden: frozenset[str] = frozenset()

    def serve(self) -> None:
        self.selector.register(self.control.sock, selectors.EVENT_READ, None)
        try:
            while not self.control.closed:
                for key, mask in self.selector.select():
                    if key.data is None:
                        self._on_control(mask)
                    else:
                        self._on_server(key.data, mask)
        finally:
            self._end()

    def _end(self) -> None:
        """The run is over or its driver gone: nothing of it may outlive this."""
        for attempt in self.attempts.values():
            attempt.limiter.kill()
        for server in self.servers.values():
            server.conn.close()  # the server kills its descendants and exits
        for server in self.servers.values():
            try:
                server.process.wait(_SERVER_EXIT_WAIT)
            except subprocess.TimeoutExpired:
                proctree.kill_tree(server.process.pid)
                server.process.wait()
        for attempt in self.attempts.values():
            self.monitor.remove(attempt.limiter)
            attempt.limiter.close()
        self.monitor.stop()
        cgpool.POOL.drain()  # the actions' cgroups kept for reuse, as the local backend does
        self.selector.close()
        self.control.close()

    def _report(self, message: tuple[Any, ...]) -> None:
        self.control.send(message)
        self._watch(self.control, None)

    def _watch(self, conn: Connection, data: Any) -> None:
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.wants_write else 0)
        if self.selector.get_key(conn.sock).events != events:
            self.selector.modify(conn.sock, events, data)

    # -- the driver ---------------------------------------------------------------------------------

    def _on_control(self, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self.control.flush()
            self._watch(self.control, None)
        for message in self.control.receive():
            tag = message[0]
            if tag == "run":
                self.specs, self.hidden = message[1], message[2]
            elif tag == "job":
                self._on_job(message[1], message[2])
            elif tag in ("term", "kill"):
                attempt = self.attempts.get(message[1])
                if attempt is None:
                    if tag == "kill":  # not launched yet: it never will be
                        for server in self.servers.values():
                            server.waiting = [(k, job) for k, job in server.waiting if k != message[1]]
                    continue
                if tag == "term" and attempt.pid is not None:
                    proctree.kill_tree(attempt.pid, pgid=attempt.pid, sig=signal.SIGTERM)
                elif tag == "kill":
                    attempt.killed = True
                    if attempt.pid is not None:
                        attempt.limiter.kill()

    def _on_job(self, key: int, job: Job) -> None:
        server = self.servers.get(job.environment)
        if server is None:
            try:
                server = self._start_server(job)
            except OSError as exc:
                self._report(("failed", key, FailureKind.CRASHED.value, f"{job.task}: {exc}", ""))
                return
        if not server.ready:
            server.waiting.append((key, job))
            return
        self._launch(key, job, server)

    def _start_server(self, job: Job) -> _Server:
        ours, theirs = socket.socketpair()
        env = {name: value for name, value in os.environ.items() if name not in self.hidden}
        process = subprocess.Popen(
            [sys.executable, "-m", "flyte_decl.runtime.forkserver", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            env=env,
            cwd=job.root_dir,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        theirs.close()
        server = _Server(process, Connection(ours))
        server.conn.send(("init", job.environment, self.specs))
        self.servers[job.environment] = server
        self.selector.register(ours, selectors.EVENT_READ, server)
        self._watch(server.conn, server)
        return server

    def _launch(self, key: int, job: Job, server: _Server) -> None:
        problem = server.problems.get(job.task)
        if problem is not None:
            self._report(("failed", key, FailureKind.IMPORT_ERROR.value, *problem))
            return
        try:
            io = _connect(self.driver, ("hello", self.token, key, "io"))
            log = _connect(self.driver, ("hello", self.token, key, "log"))
        except OSError as exc:  # the driver is going away; its control connection says so next
            self._report(("failed", key, FailureKind.CRASHED.value, f"{job.task}: {exc}", ""))
            return
        env = {name: value for name, value in os.environ.items() if name not in self.hidden} | job.env
        env[ENV_NODE] = self.agent.node_id
        changes: dict[str, str | None] = {k: v for k, v in env.items() if server.environ.get(k) != v}
        changes.update((name, None) for name in server.environ.keys() - env.keys())
        limits = Limits(memory=job.memory_limit, cpu=job.cpu_limit)
        limiter = ActionLimiter(
            f"ray-{self.token[:8]}-{key}", limits, self.agent.mechanisms, self.agent.cpu_pool
        )
        launch = Launch(key, job.task, job.root_dir, changes, limiter.child_setup(), job.max_inline_io_bytes)
        self.attempts[key] = _Attempt(key, server, limiter)
        server.conn.send(("launch", launch), [io.detach(), log.detach()])
        self._watch(server.conn, server)

    # -- the fork servers ---------------------------------------------------------------------------

    def _on_server(self, server: _Server, mask: int) -> None:
        conn = server.conn
        if mask & selectors.EVENT_WRITE:
            conn.flush()
        for message in conn.receive():
            tag = message[0]
            if tag == "ready":
                server.ready, server.problems, server.environ = True, message[1], message[2]
                waiting, server.waiting = server.waiting, []
                for key, job in waiting:
                    self._launch(key, job, server)
                continue
            attempt = self.attempts.get(message[1])
            if attempt is None:
                continue
            if tag == "started":
                attempt.pid = message[2]
                attempt.limiter.attach(message[2])
                if attempt.killed:
                    attempt.limiter.kill()
                self.monitor.add(attempt.limiter, lambda _breach: None)  # the limiter kills; `close` says so
                self._report(("started", attempt.key, message[2]))
            elif tag == "exited":
                self._ended(attempt, ("exited", attempt.key, message[2]), message[3])
            elif tag == "fork_failed":
                self._ended(attempt, ("failed", attempt.key, FailureKind.CRASHED.value, message[2], ""))
        if conn.closed:  # the fork server died: so did its attempts
            self.selector.unregister(conn.sock)
            conn.close()
            self.servers = {env: other for env, other in self.servers.items() if other is not server}
            for key, _job in server.waiting:
                message = f"the fork server exited with code {server.process.wait()} on this node"
                self._report(("failed", key, FailureKind.CRASHED.value, message, ""))
            for attempt in [a for a in self.attempts.values() if a.server is server]:
                attempt.limiter.kill()
                self._ended(attempt, ("exited", attempt.key, None))
            return
        self._watch(conn, server)

    def _ended(self, attempt: _Attempt, report: tuple[Any, ...], max_rss: int | None = None) -> None:
        del self.attempts[attempt.key]
        self.monitor.remove(attempt.limiter)
        usage = attempt.limiter.close(max_rss)
        self._report((*report, usage) if report[0] == "exited" else report)
