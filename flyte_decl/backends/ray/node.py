"""What runs on a Ray node for one attempt: flyte-decl's own confinement, driven from the driver.

`run_attempt` is the body of the Ray task that Ray placed on this node for one attempt. It connects
back to the driver (`RayBackend`'s listener) three times, each connection opened by a ``("hello",
token, key, role)`` frame:

- ``control``: the driver answers with the job (task, folder, environment variables, limits, the
  run's TaskSpecs); the node reports ``("started", pid, node_id)``, then ``("exited", wait_status,
  usage)``, or ``("failed", kind, message, traceback)`` when the attempt could not start. The
  driver may send ``("term",)`` (its timeout) and ``("kill",)``.
- ``io``: handed to the action process as its socket; the driver speaks the usual wire protocol
  on it (inputs, nested calls and their replies, the outcome).
- ``log``: handed to the action as its stdout and stderr; the driver reads it as it reads a pipe.

Each action sees the Ray id of its node as ``FLYTE_DECL_NODE``.

The attempt itself is forked by a fork server of its environment (`flyte_decl.runtime.forkserver`)
that this Ray worker process starts once per run and environment and keeps warm for the attempts
that follow, and confined by an `ActionLimiter` here, exactly as on the local backend: memory over
the whole tree (cgroup or watchdog), CPU, and no survivor. When the Ray worker process dies
(`ray.cancel(force=True)`, the driver gone), every fork server it started sees its control socket
close and kills every descendant.

The nodes need flyte-decl and the task modules at the same paths as the driver (one image, or a
shared filesystem).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from flyte_decl.runtime import proctree
from flyte_decl.runtime.action import Launch
from flyte_decl.runtime.limits import ActionLimiter, CpuPool, Limits, Mechanisms, Monitor, detect_mechanisms
from flyte_decl.runtime.records import FailureKind
from flyte_decl.runtime.wire import Connection, recv_message, send_message
from flyte_decl.spec import TaskSpec

# Set in every action on a Ray node: the Ray id of the node it runs on.
ENV_NODE = "FLYTE_DECL_NODE"
# How long a fork server of an earlier run may take to exit when a new run replaces it.
_SERVER_EXIT_WAIT = 5.0


@dataclass
class Job:
    """What the driver sends a node for one attempt (on the control connection)."""

    run: str  # the run's token, which scopes the warm fork servers of this Ray worker
    environment: str
    task: str
    root_dir: str
    env: dict[str, str]  # the task's env_vars, its declared secrets and the run's variables
    hidden: frozenset[str]  # every declared secret's name: no process gets these from the node
    memory_limit: int | None
    cpu_limit: float | None
    max_inline_io_bytes: int
    specs: list[TaskSpec]


@dataclass
class _Server:
    process: subprocess.Popen[bytes]
    conn: Connection
    problems: dict[str, tuple[str, str]]
    environ: dict[str, str]


# This Ray worker process's warm fork servers, by (run token, environment); Ray reuses worker
# processes for the tasks of one job, so an environment is imported once per worker, not per action.
_servers: dict[tuple[str, str], _Server] = {}
_mechanisms: Mechanisms | None = None
_cpu_pool: CpuPool | None = None


def run_attempt(driver: tuple[str, int], token: str, key: int) -> str:
    """Run one attempt on this node and report it to the driver; returns this node's Ray id."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    control = _connect(driver, token, key, "control")
    try:
        job: Job = recv_message(control)
    except EOFError:  # the driver no longer wants it
        return node_id
    server = _server(job)
    if isinstance(server, str):
        send_message(control, ("failed", FailureKind.CRASHED.value, server, ""))
        return node_id
    problem = server.problems.get(job.task)
    if problem is not None:
        send_message(control, ("failed", FailureKind.IMPORT_ERROR.value, *problem))
        return node_id
    _Attempt(job, key, server, control, node_id).run(driver, token)
    return node_id


def _connect(driver: tuple[str, int], token: str, key: int, role: str) -> socket.socket:
    sock = socket.create_connection(driver)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    send_message(sock, ("hello", token, key, role))
    return sock


def _server(job: Job) -> _Server | str:
    """The warm fork server of the job's run and environment in this process, started if need be."""
    for (run, environment), server in list(_servers.items()):
        if run != job.run or server.process.poll() is not None:  # an earlier run's, or dead
            del _servers[(run, environment)]
            _stop(server)
    warm = _servers.get((job.run, job.environment))
    if warm is not None:
        return warm
    ours, theirs = socket.socketpair()
    env = {name: value for name, value in os.environ.items() if name not in job.hidden}
    process = subprocess.Popen(
        [sys.executable, "-m", "flyte_decl.runtime.forkserver", str(theirs.fileno())],
        pass_fds=[theirs.fileno()],
        env=env,
        cwd=job.root_dir,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    theirs.close()
    ours.setblocking(True)
    send_message(ours, ("init", job.environment, job.specs))
    try:
        _tag, problems, environ = recv_message(ours)
    except EOFError:
        process.wait()
        return f"the fork server of {job.environment} exited with code {process.returncode} on this node"
    ours.setblocking(False)
    server = _Server(process, Connection(ours), problems, environ)
    _servers[(job.run, job.environment)] = server
    return server


def _poke(fd: int) -> None:
    os.write(fd, b"!")


def _stop(server: _Server) -> None:
    server.conn.close()  # the server kills its descendants and exits
    try:
        server.process.wait(_SERVER_EXIT_WAIT)
    except subprocess.TimeoutExpired:
        proctree.kill_tree(server.process.pid)
        server.process.wait()


class _Attempt:
    """One attempt's life on this node: launch, confine, relay the driver's signals, report."""

    def __init__(self, job: Job, key: int, server: _Server, control: socket.socket, node_id: str) -> None:
        self.job, self.key, self.server, self.node_id = job, key, server, node_id
        self.control = control
        global _mechanisms, _cpu_pool
        _mechanisms = _mechanisms or detect_mechanisms()
        _cpu_pool = _cpu_pool or CpuPool()
        limits = Limits(memory=job.memory_limit, cpu=job.cpu_limit)
        self.limiter = ActionLimiter(f"ray{key}", limits, _mechanisms, _cpu_pool)
        self.pid: int | None = None
        self.killed = False

    def run(self, driver: tuple[str, int], token: str) -> None:
        job, server = self.job, self.server
        io = _connect(driver, token, self.key, "io")
        log = _connect(driver, token, self.key, "log")
        env = {name: value for name, value in os.environ.items() if name not in job.hidden} | job.env
        env[ENV_NODE] = self.node_id
        changes: dict[str, str | None] = {k: v for k, v in env.items() if server.environ.get(k) != v}
        changes.update((name, None) for name in server.environ.keys() - env.keys())
        setup = self.limiter.child_setup()
        launch = Launch(self.key, job.task, job.root_dir, changes, setup, job.max_inline_io_bytes)
        server.conn.send(("launch", launch), [io.detach(), log.detach()])
        selector = selectors.DefaultSelector()
        wake_read, wake_write = os.pipe()
        monitor = Monitor()
        try:
            selector.register(server.conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, "server")
            selector.register(self.control, selectors.EVENT_READ, "control")
            selector.register(wake_read, selectors.EVENT_READ, "wake")
            self._loop(selector, monitor, wake_read, wake_write)
        finally:
            monitor.stop()
            selector.close()
            os.close(wake_read)
            os.close(wake_write)
            self.control.close()

    def _loop(
        self, selector: selectors.BaseSelector, monitor: Monitor, wake_read: int, wake_write: int
    ) -> None:
        conn = self.server.conn
        while True:
            for key, mask in selector.select():
                if key.data == "wake":
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_read, 64)
                elif key.data == "control" and not self._on_control():
                    selector.unregister(self.control)
                elif mask & selectors.EVENT_WRITE:
                    conn.flush()
                if key.data != "server":
                    continue
                for message in conn.receive():
                    if message[1] != self.key:
                        continue
                    if message[0] == "started":
                        self.pid = message[2]
                        self.limiter.attach(message[2])
                        if self.killed:
                            self.limiter.kill()
                        monitor.add(self.limiter, lambda _breach: _poke(wake_write))
                        send_message(self.control, ("started", message[2], self.node_id))
                    elif message[0] == "exited":
                        monitor.remove(self.limiter)
                        usage = self.limiter.close()
                        with contextlib.suppress(OSError):
                            send_message(self.control, ("exited", message[2], usage))
                        return
                    elif message[0] == "fork_failed":
                        self.limiter.close()
                        with contextlib.suppress(OSError):
                            send_message(self.control, ("failed", FailureKind.CRASHED.value, message[2], ""))
                        return
                if conn.closed:
                    self.limiter.kill()
                    _servers.pop((self.job.run, self.job.environment), None)
                    with contextlib.suppress(OSError):
                        send_message(self.control, ("exited", None, self.limiter.close()))
                    return
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.wants_write else 0)
                selector.modify(conn.sock, events, "server")

    def _on_control(self) -> bool:
        """Act on the driver's message; False once the driver has gone (the attempt is killed)."""
        try:
            message: Any = recv_message(self.control)
        except (EOFError, OSError):  # the driver is gone: nothing of this attempt may outlive it
            message = None
        if message is not None and message[0] == "term":
            if self.pid is not None:
                proctree.kill_tree(self.pid, pgid=self.pid, sig=signal.SIGTERM)
        elif message is None or message[0] == "kill":
            self.killed = True
            if self.pid is not None:
                self.limiter.kill()
        return message is not None
