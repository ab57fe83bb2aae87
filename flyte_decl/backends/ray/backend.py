"""The Ray backend: Ray places each attempt on a node; flyte-decl confines it there (see `node`).

Each attempt is one Ray task (`node.run_attempt`) with the resolved spec's requests as Ray
resources: cpu -> ``num_cpus``, memory -> ``memory`` (bytes), gpu -> ``num_gpus``, and its queue ->
``label_selector={"flyte-decl.queue": QUEUE}`` (`QUEUE_LABEL`); the ``default`` queue runs on any
node, and so does every queue on a Ray instance started for the run (as the local backend serves
every declared queue). A GPU type (``gpu: A100:1``) adds Ray's own node label to the selector,
``{"ray.io/accelerator-type": "A100"}`` (see `accelerator`; Ray sets it on each GPU node). Ray
leaves a task that no node can take pending forever, so before submitting, an attempt whose queue
or GPU type no live node has, or whose request is larger than every node that has them, ends
``unschedulable`` at once, naming what exists.

The Ray task connects back to this driver's listener (`RayCluster` opens one per run); the
attempt's socket and log arrive as TCP connections and are served by the runner exactly as a local
attempt's socket and pipe, so nested calls, outputs and log lines take the same path. Secrets travel
only on those connections (never as Ray task arguments, runtime_env or names).

Cancelling: a kill is sent to the node, which kills the attempt's tree; stopping the run cancels
every Ray task with ``force=True``, which kills their worker processes, whose fork servers then kill
every descendant.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import selectors
import socket
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from flyte_decl.backends.ray.accelerator import accelerator_selector, with_accelerator
from flyte_decl.backends.ray.node import Job, run_attempt
from flyte_decl.problems import UsageError
from flyte_decl.quantity import format_bytes, format_cpu
from flyte_decl.runtime.records import FailureKind
from flyte_decl.runtime.scheduler import Resources, demand_of
from flyte_decl.runtime.tracking import Action, State
from flyte_decl.runtime.wire import Connection, recv_message
from flyte_decl.spec import DEFAULT_QUEUE

if TYPE_CHECKING:
    from flyte_decl.runtime.runner import _Run

# The node label that says which queue a node serves (`ray start --labels flyte-decl.queue=NAME`).
QUEUE_LABEL = "flyte-decl.queue"
# How long a node may take to send its first frame on a new connection.
_HELLO_TIMEOUT = 10.0
INSTALL_HINT = "--backend ray needs Ray: pip install 'flyte-decl[ray]'"
# Ray's settings for an instance started for the run. An attempt holds its Ray worker process for
# its whole life, so a fan-out of fractional-CPU attempts makes Ray start one worker per attempt in
# flight; by default Ray kills every worker above one per CPU after 1 s idle, and the next burst
# pays their start (seconds each on a busy node) and their fork servers' imports again. Kept for a
# minute, the workers (and their warm fork servers) serve the rest of the run. A cluster that
# flyte-decl joins keeps its own settings (`RAY_idle_worker_killing_time_threshold_ms` on `ray start`).
WARM_WORKERS = {"idle_worker_killing_time_threshold_ms": 60_000}


def import_ray() -> Any:
    """The `ray` module; UsageError (exit 2) with the install line when the extra is missing."""
    try:
        import ray
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return ray


class RayCluster:
    """A connection to a Ray cluster for one or more runs; `backend` makes each run's RayBackend.

    `address` is Ray's: None follows Ray's own rule (``RAY_ADDRESS``, else a Ray instance started
    here for this connection and stopped by `close`). A self-started instance serves every queue.
    """

    def __init__(self, address: str | None = None) -> None:
        self.ray = import_ray()
        self.self_started = address is None and not os.environ.get("RAY_ADDRESS")
        self.owns_ray = not self.ray.is_initialized()
        if self.owns_ray:
            try:
                self.ray.init(
                    address="local" if self.self_started else address,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level="ERROR",
                    **({"_system_config": WARM_WORKERS} if self.self_started else {}),
                )
            except ConnectionError as exc:
                raise UsageError(f"cannot connect to the Ray cluster at {address}: {exc}") from None
        self.remote = self.ray.remote(max_retries=0)(run_attempt)

    def backend(self, run: _Run) -> RayBackend:
        return RayBackend(run, self)

    def nodes(self) -> list[dict[str, Any]]:
        """The live nodes, as `ray.nodes()` lists them."""
        return [node for node in self.ray.nodes() if node.get("Alive")]

    def capacity(self) -> Resources:
        """What every live node has together: the runner admits no more than that at once."""
        total = Resources()
        for node in self.nodes():
            total = total + _node_resources(node)
        return total

    def describe(self) -> str:
        """For the run's header: "on Ray, 3 nodes" (", started for this run" when it was)."""
        nodes = len(self.nodes())
        started = ", started for this run" if self.self_started and self.owns_ray else ""
        return f"on Ray, {nodes} node{'s' if nodes != 1 else ''}{started}"

    def close(self) -> None:
        if self.owns_ray:
            self.ray.shutdown()


def _node_resources(node: dict[str, Any]) -> Resources:
    have = node.get("Resources", {})
    return Resources(round(have.get("CPU", 0) * 1000), int(have.get("memory", 0)), int(have.get("GPU", 0)))


@dataclasses.dataclass(eq=False)
class _Remote:
    """One attempt placed on Ray: its task, and its control connection once the node has called."""

    action: Action
    ref: Any
    done: bool = False  # its Ray task has ended (seen by the waiting thread)
    control: Connection | None = None
    io: socket.socket | None = None
    log: socket.socket | None = None
    exited: bool = False


class RayBackend:
    """Runs a run's attempts as Ray tasks; every method on the runner's thread (`Backend`)."""

    def __init__(self, run: _Run, cluster: RayCluster) -> None:
        self.run = run
        self.cluster = cluster
        self.ray = cluster.ray
        self.token = secrets.token_hex(16)
        host = self.ray.util.get_node_ip_address()
        self.listener = socket.create_server((host, 0), backlog=128)
        self.listener.setblocking(False)
        self.address = (host, self.listener.getsockname()[1])
        run.selector.register(self.listener, selectors.EVENT_READ, lambda _mask: self._accept_all())
        self.remotes: dict[int, _Remote] = {}  # by attempt key
        self.nodes = cluster.nodes()
        self.nodes_at = time.monotonic()
        # Attempts whose Ray task ended, handed from the waiting thread to the runner's.
        self.finished: deque[_Remote] = deque()
        self.lock = threading.Lock()
        self.stopping = False
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_read, False)
        run.selector.register(self.wake_read, selectors.EVENT_READ, lambda _mask: self._on_finished())
        self.waiter = threading.Thread(target=self._wait_refs, name="flyte-decl-ray", daemon=True)
        self.waiter.start()

    # -- the backend interface ----------------------------------------------------------------------

    def capacity(self) -> Resources:
        return self.cluster.capacity()

    def start(self, action: Action) -> None:
        spec = action.spec
        demand = demand_of(spec, action.queue).resources
        options: dict[str, Any] = {"num_cpus": demand.cpu / 1000, "name": spec.name}
        if demand.memory:
            options["memory"] = demand.memory
        if demand.gpu:
            options["num_gpus"] = demand.gpu
        selector = (
            {QUEUE_LABEL: action.queue}
            if action.queue != DEFAULT_QUEUE and not self.cluster.self_started
            else {}
        )
        selector.update(accelerator_selector(spec.accelerator, self.nodes))
        if selector:
            options["label_selector"] = selector
        ref = self.cluster.remote.options(**options).remote(self.address, self.token, action.key)
        with self.lock:
            self.remotes[action.key] = _Remote(action, ref)

    def terminate(self, action: Action) -> None:
        self._send(action, ("term",))

    def kill(self, action: Action) -> None:
        self._send(action, ("kill",))

    def withdraw(self, action: Action) -> None:
        with self.lock:
            remote = self.remotes.pop(action.key, None)
        if remote is not None:
            self._drop(remote)
            with contextlib.suppress(Exception):
                self.ray.cancel(remote.ref, force=True)

    def initializing(self, action: Action) -> bool:
        return False

    def queued(self, action: Action) -> bool:
        with self.lock:  # Ray has not placed it on a node yet
            remote = self.remotes.get(action.key)
        return remote is not None and remote.control is None

    def waiting_on_calls(self, parent: Action) -> None:
        pass

    def control_fds(self) -> set[int]:
        return {r.control.sock.fileno() for r in self.remotes.values() if r.control and not r.control.closed}

    def kill_all(self) -> None:
        for remote in list(self.remotes.values()):
            if remote.control is not None:
                self._send(remote.action, ("kill",))

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            remotes = list(self.remotes.values())
        for remote in remotes:
            with contextlib.suppress(Exception):
                self.ray.cancel(remote.ref, force=True)
        for remote in remotes:
            self._drop(remote)
        with contextlib.suppress(KeyError, ValueError):
            self.run.selector.unregister(self.listener)
        self.listener.close()

    def close(self) -> None:
        self.stop()
        self.waiter.join()
        with contextlib.suppress(KeyError, ValueError):
            self.run.selector.unregister(self.wake_read)
        os.close(self.wake_read)
        os.close(self.wake_write)

    # -- placement ----------------------------------------------------------------------------------

    def problem(self, action: Action) -> str | None:
        """Why no live node could ever take this attempt, or None (Ray would leave it pending)."""
        if time.monotonic() - self.nodes_at > 1.0:
            self.nodes, self.nodes_at = self.cluster.nodes(), time.monotonic()
        spec, queue = action.spec, action.queue
        nodes = self.nodes
        where = "no live Ray node"
        if queue != DEFAULT_QUEUE and not self.cluster.self_started:
            nodes = [node for node in nodes if node.get("Labels", {}).get(QUEUE_LABEL) == queue]
            if not nodes:
                served = sorted({n.get("Labels", {}).get(QUEUE_LABEL) for n in self.nodes} - {None})
                return (
                    f"{spec.name}: no live Ray node serves queue {queue!r} (queues served: "
                    f"{', '.join([DEFAULT_QUEUE, *served])}; label a node with {QUEUE_LABEL}={queue})"
                )
            where = f"no live Ray node of queue {queue!r}"
        if spec.accelerator:
            nodes, missing = with_accelerator(spec, nodes, where)
            if missing:
                return missing
        want = demand_of(spec, queue).resources
        if any(want.fits_in(_node_resources(node)) for node in nodes):
            return None
        largest = ", ".join(
            f"cpu {format_cpu(have.cpu / 1000)} memory {format_bytes(have.memory)} gpu {have.gpu}"
            for have in sorted({_node_resources(node) for node in nodes}, key=lambda r: (r.cpu, r.memory))
        )
        return (
            f"{spec.name} requests cpu {format_cpu(want.cpu / 1000)}, memory {format_bytes(want.memory)}, "
            f"gpu {want.gpu}, but {where} has that much (nodes: {largest})"
        )

    # -- connections from the nodes -----------------------------------------------------------------

    def _accept_all(self) -> None:
        while True:
            try:
                sock, _peer = self.listener.accept()
            except (BlockingIOError, OSError):
                return
            self._greet(sock)

    def _greet(self, sock: socket.socket) -> None:
        """Read a new connection's hello and hand it to its attempt (closed if it has none)."""
        sock.settimeout(_HELLO_TIMEOUT)
        try:
            tag, token, key, role = recv_message(sock)
        except (EOFError, OSError, ValueError):
            sock.close()
            return
        remote = self.remotes.get(key) if tag == "hello" and token == self.token else None
        if remote is None or remote.exited or remote.action.state not in (State.STARTING, State.RUNNING):
            sock.close()  # withdrawn, or not ours: the node gives up
            return
        sock.setblocking(False)
        if role == "control":
            remote.control = Connection(sock)
            self.run.selector.register(
                sock, selectors.EVENT_READ, lambda mask: self._on_control(remote, mask)
            )
            self._send(remote.action, ("job", self._job(remote.action)))
        elif role == "io":
            remote.io = sock
        elif role == "log":
            remote.log = sock
        if remote.io is not None and remote.log is not None:
            io, log = remote.io, remote.log
            remote.io = remote.log = None
            self.run._attach_io(remote.action, io, log.detach())

    def _job(self, action: Action) -> Job:
        spec, run = action.spec, self.run
        env = dict(spec.env_vars)
        env.update({name: run.secrets[name] for name in spec.secrets if name in run.secrets})
        env.update(run.run_env)
        hidden = frozenset(name for other in run.config.tasks.values() for name in other.secrets)
        return Job(
            self.token,
            spec.environment,
            spec.name,
            str(spec.root_dir),
            env,
            hidden,
            spec.memory_limit,
            spec.cpu_limit,
            spec.max_inline_io_bytes,
            list(run.config.tasks.values()),
        )

    def _send(self, action: Action, message: tuple[Any, ...]) -> None:
        remote = self.remotes.get(action.key)
        if remote is None or remote.control is None or remote.control.closed:
            return
        if message[0] == "job":
            remote.control.send(message[1])
        else:
            remote.control.send(message)
        self.run._watch_writes(remote.control)

    def _on_control(self, remote: _Remote, mask: int) -> None:
        conn = remote.control
        if conn is None:
            return
        if mask & selectors.EVENT_WRITE:
            conn.flush()
            if not conn.closed:
                self.run._watch_writes(conn)
        action = remote.action
        for message in conn.receive():
            if message[0] == "started":
                action.record.node = message[2]
                self.run._on_started(action, message[1])
            elif message[0] == "exited":
                self._accept_all()  # its socket and log connected before it started
                self._exited(remote, message[1], message[2])
            elif message[0] == "failed":
                self._forget(remote)
                self.run.by_key.pop(action.key, None)
                self.run._fail_before_start(action, FailureKind(message[1]), message[2], message[3])
        if conn.closed and not remote.exited:
            self._exited(remote, None, None)

    def _exited(self, remote: _Remote, status: int | None, usage: Any) -> None:
        action = remote.action
        self._forget(remote)
        if usage is not None:
            record = action.record
            record.peak_memory, record.cpu_seconds = usage.peak_memory, usage.cpu_seconds
            # Node samples are on the node's monotonic clock; kept as durations from now.
            offset = time.time() - time.monotonic()
            record.samples = [(at + offset, rss, cpu) for at, rss, cpu in usage.samples]
            action.breach = action.breach or usage.breach
        self.run.by_key.pop(action.key, None)
        if action.state in (State.STARTING, State.RUNNING):
            self.run._on_exited(action, status)

    def _forget(self, remote: _Remote) -> None:
        remote.exited = True
        with self.lock:
            self.remotes.pop(remote.action.key, None)
        self._drop(remote)

    def _drop(self, remote: _Remote) -> None:
        if remote.control is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.run.selector.unregister(remote.control.sock)
            remote.control.close()
        for sock in (remote.io, remote.log):
            if sock is not None:
                sock.close()

    # -- Ray tasks that end without reporting -------------------------------------------------------

    def _wait_refs(self) -> None:
        """On a thread of its own: notice Ray tasks that end (or fail) and wake the runner."""
        while True:
            with self.lock:
                if self.stopping:
                    return
                refs = {remote.ref: remote for remote in self.remotes.values() if not remote.done}
            if not refs:
                time.sleep(0.05)
                continue
            ready, _ = self.ray.wait(list(refs), num_returns=1, timeout=0.2)
            with self.lock:
                for ref in ready:
                    refs[ref].done = True
                    self.finished.append(refs[ref])
            if ready:
                with contextlib.suppress(OSError):
                    os.write(self.wake_write, b"!")

    def _on_finished(self) -> None:
        """Ray tasks ended: an attempt that has not reported its exit has lost its node or worker."""
        with contextlib.suppress(BlockingIOError):
            os.read(self.wake_read, 4096)
        with self.lock:
            finished = list(self.finished)
            self.finished.clear()
        for remote in finished:
            if remote.exited:
                continue
            self._accept_all()
            if remote.control is not None and not remote.control.closed:
                self._on_control(remote, selectors.EVENT_READ)  # its last report may be on its way
            if remote.exited:
                continue
            try:
                self.ray.get(remote.ref, timeout=0)
                problem = "lost its Ray task, which ended without reporting"
            except Exception as exc:
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                problem = f"lost its Ray task: {first}"
            remote.action.lost = problem
            if remote.action.state == State.STARTING and remote.control is None:
                self._forget(remote)
                self.run.by_key.pop(remote.action.key, None)
                message = f"{remote.action.spec.name} {problem}"
                self.run._fail_before_start(remote.action, FailureKind.CRASHED, message)
            else:
                self._exited(remote, None, None)
