"""The Ray backend: the driver places each attempt on a Ray node; flyte-decl confines it there (see `node`).

Each live node runs one `node.NodeAgent` Ray actor (no resources of its own, placed by node
affinity) that starts, confines and reports many attempts, so an attempt costs a fork on a warm
fork server, not a Ray worker process. Placement stays Ray's vocabulary: an attempt's request is
built as Ray task options (`RayBackend.task_options`: cpu -> ``num_cpus``, memory -> ``memory``
in bytes, gpu -> ``num_gpus``, a queue -> ``label_selector={"flyte-decl.queue": QUEUE}``
(`QUEUE_LABEL`); the ``default`` queue runs on any node, and so does every queue on a Ray instance
started for the run, as the local backend serves every declared queue; a GPU type, ``gpu: A100:1``,
adds Ray's own node label ``{"ray.io/accelerator-type": "A100"}``, see `accelerator`), and the driver places it
on a live node whose labels match and whose Ray resources (`ray.nodes()`) have room, counting
every attempt of the run it placed there, the least loaded node first. An attempt that fits no
node now waits (queued) until one has room. A parent waiting on nested calls holds nothing on its
node meanwhile (as Ray's blocked workers, and the runner's `Scheduler.block`), so nesting deeper
than the cluster's CPUs still runs. Before placing, an attempt whose queue no live node serves, or
whose GPU type no live node has, or whose request is larger than every node that has them, ends
``unschedulable`` at once, naming what exists (Ray would leave it pending forever).

The agents connect back to this driver's listener (`RayCluster` opens one per run): one control
connection per node, then the attempt's socket and log as TCP connections, served by the runner
exactly as a local attempt's socket and pipe, so nested calls, outputs and log lines take the same
path. Jobs and secrets travel only on those connections (never as Ray task or actor arguments,
runtime_env or names).

Cancelling: a kill is sent to the node, which kills the attempt's tree. Ending the run closes the
control connections and waits for each agent to have killed every attempt tree of the run and
stopped its fork servers; a driver that dies closes them too, and Ray ends the agents it owns.
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

from flyte_decl.backends.ray.accelerator import ACCELERATOR_LABEL, accelerator_selector, with_accelerator
from flyte_decl.backends.ray.node import MAX_RUNS, Job, NodeAgent
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
# How long ending a run waits for each node to confirm that nothing of the run is left there.
_NODE_STOP_WAIT = 15.0
# How often the live nodes are read again from Ray (new nodes get an agent).
_NODES_REFRESH = 1.0
INSTALL_HINT = "--backend ray needs Ray: pip install 'flyte-decl[ray]'"


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
    The node agents (`agent`) live as long as this connection and serve each of its runs.
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
                )
            except ConnectionError as exc:
                raise UsageError(f"cannot connect to the Ray cluster at {address}: {exc}") from None
        self.agent_class = self.ray.remote(num_cpus=0, max_concurrency=MAX_RUNS, max_restarts=0)(NodeAgent)
        self.agents: dict[str, Any] = {}  # by node id

    def backend(self, run: _Run) -> RayBackend:
        return RayBackend(run, self)

    def nodes(self) -> list[dict[str, Any]]:
        """The live nodes, as `ray.nodes()` lists them."""
        return [node for node in self.ray.nodes() if node.get("Alive")]

    def agent(self, node_id: str) -> Any:
        """The node's agent actor, started there on first use (it starts no task of its own)."""
        agent = self.agents.get(node_id)
        if agent is None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
            agent = self.agent_class.options(scheduling_strategy=strategy).remote()
            self.agents[node_id] = agent
        return agent

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
        for agent in self.agents.values():
            with contextlib.suppress(Exception):
                self.ray.kill(agent)
        self.agents.clear()
        if self.owns_ray:
            self.ray.shutdown()


def _node_resources(node: dict[str, Any]) -> Resources:
    have = node.get("Resources", {})
    return Resources(round(have.get("CPU", 0) * 1000), int(have.get("memory", 0)), int(have.get("GPU", 0)))


def ray_demand(options: dict[str, Any]) -> dict[str, float]:
    """The Ray resources that task options ask for, by Ray's resource names (``CPU``, ``memory``, ...)."""
    want = {
        "CPU": options.get("num_cpus", 0),
        "memory": options.get("memory", 0),
        "GPU": options.get("num_gpus", 0),
    }
    want.update(options.get("resources", {}))
    if options.get("accelerator_type"):
        want[f"accelerator_type:{options['accelerator_type']}"] = 0.001  # as Ray asks for it
    return {name: amount for name, amount in want.items() if amount}


def label_selector_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether a node's labels satisfy a Ray label selector: ``value``, ``!value``, ``in(a,b)``, ``!in(a,b)``."""
    for label, want in selector.items():
        have = labels.get(label)
        negated = want.startswith("!")
        want = want[1:] if negated else want
        if want.startswith("in(") and want.endswith(")"):
            matches = have in {value.strip() for value in want[3:-1].split(",")}
        else:
            matches = have == want
        if matches == negated:
            return False
    return True


def _fits(want: dict[str, float], have: dict[str, float]) -> bool:
    return all(amount <= have.get(name, 0) + 1e-9 for name, amount in want.items())


@dataclasses.dataclass(eq=False)
class _Node:
    """A live Ray node for this run: what it has, its agent and what the run placed there."""

    id: str
    resources: dict[str, float]  # Ray's resources of the node
    labels: dict[str, str]
    serving: Any  # the ref of its agent's `serve` for this run: ready once that ended
    control: Connection | None = None  # once its agent has called
    jobs: list[int] = dataclasses.field(default_factory=list)  # keys placed before it called
    remotes: dict[int, _Remote] = dataclasses.field(default_factory=dict)  # placed here, by key
    lost: str = ""
    ended: bool = False  # its `serve` ended (seen by the waiting thread)

    def serves(self, selector: dict[str, str]) -> bool:
        return label_selector_matches(selector, self.labels)

    def free(self) -> dict[str, float]:
        """Its resources less what the run's attempts placed here hold (a parent awaiting calls holds none)."""
        free = dict(self.resources)
        for remote in self.remotes.values():
            if not remote.action.children:
                for name, amount in remote.demand.items():
                    free[name] = free.get(name, 0) - amount
        return free


@dataclasses.dataclass(eq=False)
class _Remote:
    """One attempt for Ray: what it asks for, the node it was placed on, its connections."""

    action: Action
    demand: dict[str, float]
    selector: dict[str, str]
    node: _Node | None = None
    started: bool = False
    io: socket.socket | None = None
    log: socket.socket | None = None
    exited: bool = False


class RayBackend:
    """Places a run's attempts on the nodes' agents; every method on the runner's thread (`Backend`)."""

    def __init__(self, run: _Run, cluster: RayCluster) -> None:
        self.run = run
        self.cluster = cluster
        self.ray = cluster.ray
        self.token = secrets.token_hex(16)
        host = self.ray.util.get_node_ip_address()
        self.listener = socket.create_server((host, 0), backlog=1024)
        self.listener.setblocking(False)
        self.address = (host, self.listener.getsockname()[1])
        run.selector.register(self.listener, selectors.EVENT_READ, lambda _mask: self._accept_all())
        self.remotes: dict[int, _Remote] = {}  # by attempt key
        self.pending: deque[_Remote] = deque()  # no node has room for them yet
        self.nodes: dict[str, _Node] = {}
        self.seen: list[dict[str, Any]] = []  # the live nodes as Ray last listed them
        self.seen_at = 0.0
        # Nodes whose agent's `serve` ended, handed from the waiting thread to the runner's.
        self.finished: deque[_Node] = deque()
        self.lock = threading.Lock()
        self.stopping = False
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_read, False)
        run.selector.register(self.wake_read, selectors.EVENT_READ, lambda _mask: self._on_finished())
        self._refresh_nodes(force=True)
        self.waiter = threading.Thread(target=self._wait_nodes, name="flyte-decl-ray", daemon=True)
        self.waiter.start()

    # -- the backend interface ----------------------------------------------------------------------

    def capacity(self) -> Resources:
        return self.cluster.capacity()

    def task_options(self, action: Action) -> dict[str, Any]:
        """The attempt's request as Ray task options: ``num_cpus``, ``memory``, ``num_gpus``, ``label_selector``."""
        demand = demand_of(action.spec, action.queue).resources
        options: dict[str, Any] = {"num_cpus": demand.cpu / 1000}
        if demand.memory:
            options["memory"] = demand.memory
        if demand.gpu:
            options["num_gpus"] = demand.gpu
        selector = (
            {QUEUE_LABEL: action.queue}
            if action.queue != DEFAULT_QUEUE and not self.cluster.self_started
            else {}
        )
        selector.update(accelerator_selector(action.spec.accelerator, self.seen))
        if selector:
            options["label_selector"] = selector
        return options

    def start(self, action: Action) -> None:
        options = self.task_options(action)
        remote = _Remote(action, ray_demand(options), dict(options.get("label_selector", {})))
        self.remotes[action.key] = remote
        if not self._place(remote):
            self.pending.append(remote)

    def terminate(self, action: Action) -> None:
        self._send(action, "term")

    def kill(self, action: Action) -> None:
        self._send(action, "kill")

    def withdraw(self, action: Action) -> None:
        remote = self.remotes.get(action.key)
        if remote is not None:
            self._send(action, "kill")  # should the node be starting it
            self._forget(remote)

    def initializing(self, action: Action) -> bool:
        remote = self.remotes.get(action.key)  # placed on a node whose agent has not called yet
        return remote is not None and remote.node is not None and remote.node.control is None

    def queued(self, action: Action) -> bool:
        remote = self.remotes.get(action.key)  # no node has room for it yet
        return remote is not None and remote.node is None

    def waiting_on_calls(self, parent: Action) -> None:
        self._place_pending()  # the parent's node has its room back

    def control_fds(self) -> set[int]:
        return {n.control.sock.fileno() for n in self.nodes.values() if n.control and not n.control.closed}

    def kill_all(self) -> None:
        for remote in list(self.remotes.values()):
            self._send(remote.action, "kill")

    def stop(self) -> None:
        """Close every node's control connection and wait until each agent has ended the run there."""
        with self.lock:
            if self.stopping:
                return
            self.stopping = True
        for remote in list(self.remotes.values()):
            self._drop(remote)
        with contextlib.suppress(KeyError, ValueError):
            self.run.selector.unregister(self.listener)
        self.listener.close()
        controls = []
        for node in self.nodes.values():
            if node.control is not None and not node.control.closed:
                with contextlib.suppress(KeyError, ValueError):
                    self.run.selector.unregister(node.control.sock)
                node.control.flush()
                with contextlib.suppress(OSError):
                    node.control.sock.shutdown(socket.SHUT_WR)  # the agent ends the run's attempts...
                controls.append(node.control)
        deadline = time.monotonic() + _NODE_STOP_WAIT
        for control in controls:  # ...and closes its end once nothing of the run is left there
            control.sock.setblocking(True)
            with contextlib.suppress(OSError):
                while time.monotonic() < deadline:
                    control.sock.settimeout(max(0.01, deadline - time.monotonic()))
                    if not control.sock.recv(65536):
                        break
            control.close()
        # An agent that has not called yet finds the listener closed and ends its `serve` at once.

    def close(self) -> None:
        self.stop()
        self.waiter.join()
        with contextlib.suppress(KeyError, ValueError):
            self.run.selector.unregister(self.wake_read)
        os.close(self.wake_read)
        os.close(self.wake_write)

    # -- placement ----------------------------------------------------------------------------------

    def _refresh_nodes(self, force: bool = False) -> None:
        """Read the live nodes again (at most every second); a new node gets the run's agent call."""
        if not force and time.monotonic() - self.seen_at < _NODES_REFRESH:
            return
        self.seen, self.seen_at = self.cluster.nodes(), time.monotonic()
        for seen in self.seen:
            node_id = seen["NodeID"]
            if node_id not in self.nodes:
                serving = self.cluster.agent(node_id).serve.remote(self.address, self.token)
                node = _Node(node_id, dict(seen.get("Resources", {})), dict(seen.get("Labels", {})), serving)
                with self.lock:
                    self.nodes[node_id] = node

    def _place(self, remote: _Remote) -> bool:
        """Put the attempt on the least loaded node that serves it and has room; False: none has."""
        best, best_cpu = None, -1.0
        for node in self.nodes.values():
            if node.lost or not node.serves(remote.selector):
                continue
            free = node.free()
            if _fits(remote.demand, free) and free.get("CPU", 0) > best_cpu:
                best, best_cpu = node, free.get("CPU", 0)
        if best is None:
            return False
        remote.node = best
        best.remotes[remote.action.key] = remote
        if best.control is None:
            best.jobs.append(remote.action.key)
        else:
            self._send_job(best, remote)
        return True

    def _place_pending(self) -> None:
        for _ in range(len(self.pending)):
            remote = self.pending.popleft()
            if remote.exited:
                continue
            if not self._place(remote):
                self.pending.append(remote)

    def problem(self, action: Action) -> str | None:
        """Why no live node could ever take this attempt, or None (Ray would leave it pending)."""
        self._refresh_nodes()
        spec, queue = action.spec, action.queue
        options = self.task_options(action)
        selector = {k: v for k, v in options.get("label_selector", {}).items() if k != ACCELERATOR_LABEL}
        lost = {node.id for node in self.nodes.values() if node.lost}
        seen = [node for node in self.seen if node["NodeID"] not in lost]
        nodes = [node for node in seen if label_selector_matches(selector, node.get("Labels", {}))]
        where = "no live Ray node"
        if queue != DEFAULT_QUEUE and not self.cluster.self_started:
            if not nodes:
                served = sorted({n.get("Labels", {}).get(QUEUE_LABEL) for n in seen} - {None})
                return (
                    f"{spec.name}: no live Ray node serves queue {queue!r} (queues served: "
                    f"{', '.join([DEFAULT_QUEUE, *served])}; label a node with {QUEUE_LABEL}={queue})"
                )
            where = f"no live Ray node of queue {queue!r}"
        if spec.accelerator:
            nodes, missing = with_accelerator(spec, nodes, where)
            if missing:
                return missing
        want = ray_demand(options)
        if any(_fits(want, node.get("Resources", {})) for node in nodes):
            return None
        largest = ", ".join(
            f"cpu {format_cpu(have.cpu / 1000)} memory {format_bytes(have.memory)} gpu {have.gpu}"
            for have in sorted({_node_resources(node) for node in nodes}, key=lambda r: (r.cpu, r.memory))
        )
        asked = demand_of(spec, queue).resources
        return (
            f"{spec.name} requests cpu {format_cpu(asked.cpu / 1000)}, memory {format_bytes(asked.memory)}, "
            f"gpu {asked.gpu}, but {where} has that much (nodes: {largest})"
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
        """Read a new connection's hello and hand it to its node or attempt (closed if it has none)."""
        sock.settimeout(_HELLO_TIMEOUT)
        try:
            tag, token, key, role = recv_message(sock)
        except (EOFError, OSError, ValueError):
            sock.close()
            return
        if tag != "hello" or token != self.token:
            sock.close()
            return
        if role == "node":
            self._node_called(key, sock)
            return
        remote = self.remotes.get(key)
        if remote is None or remote.exited or remote.action.state not in (State.STARTING, State.RUNNING):
            sock.close()  # withdrawn: its process reads EOF and ends, and the node kills it
            return
        sock.setblocking(False)
        if role == "io":
            remote.io = sock
        elif role == "log":
            remote.log = sock
        if remote.io is not None and remote.log is not None:
            io, log = remote.io, remote.log
            remote.io = remote.log = None
            self.run._attach_io(remote.action, io, log.detach())

    def _node_called(self, node_id: str, sock: socket.socket) -> None:
        node = self.nodes.get(node_id)
        if node is None or node.control is not None or node.lost:
            sock.close()
            return
        node.control = Connection(sock)
        self.run.selector.register(sock, selectors.EVENT_READ, lambda mask: self._on_node(node, mask))
        config = self.run.config
        hidden = frozenset(name for spec in config.tasks.values() for name in spec.secrets)
        node.control.send(("run", list(config.tasks.values()), hidden))
        jobs, node.jobs = node.jobs, []
        for key in jobs:
            remote = node.remotes.get(key)
            if remote is not None and not remote.exited:
                self._send_job(node, remote)
        self.run._watch_writes(node.control)

    def _send_job(self, node: _Node, remote: _Remote) -> None:
        action, run = remote.action, self.run
        spec = action.spec
        env = dict(spec.env_vars)
        env.update({name: run.secrets[name] for name in spec.secrets if name in run.secrets})
        env.update(run.run_env)
        job = Job(
            spec.environment,
            spec.name,
            str(spec.root_dir),
            env,
            spec.memory_limit,
            spec.cpu_limit,
            spec.max_inline_io_bytes,
        )
        assert node.control is not None
        node.control.send(("job", action.key, job))
        remote.started = True
        self.run._watch_writes(node.control)

    def _send(self, action: Action, tag: str) -> None:
        remote = self.remotes.get(action.key)
        if remote is None or not remote.started:
            return
        node = remote.node
        if node is None or node.control is None or node.control.closed:
            return
        node.control.send((tag, action.key))
        self.run._watch_writes(node.control)

    def _on_node(self, node: _Node, mask: int) -> None:
        conn = node.control
        if conn is None:
            return
        if mask & selectors.EVENT_WRITE:
            conn.flush()
            if not conn.closed:
                self.run._watch_writes(conn)
        for message in conn.receive():
            remote = node.remotes.get(message[1])
            if remote is None or remote.exited:
                continue
            action = remote.action
            if message[0] == "started":
                action.record.node = node.id
                self.run._on_started(action, message[2])
            elif message[0] == "exited":
                self._accept_all()  # its socket and log connected before it started
                self._exited(remote, message[2], message[3])
            elif message[0] == "failed":
                self._forget(remote)
                self.run.by_key.pop(action.key, None)
                self.run._fail_before_start(action, FailureKind(message[2]), message[3], message[4])
                self._place_pending()
        if conn.closed:
            self._lose(node, "lost its Ray node agent, whose connection closed")

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
        self._place_pending()

    def _forget(self, remote: _Remote) -> None:
        remote.exited = True
        self.remotes.pop(remote.action.key, None)
        if remote.node is not None:
            remote.node.remotes.pop(remote.action.key, None)
        self._drop(remote)

    def _drop(self, remote: _Remote) -> None:
        for sock in (remote.io, remote.log):
            if sock is not None:
                sock.close()
        remote.io = remote.log = None

    # -- nodes that go away -------------------------------------------------------------------------

    def _lose(self, node: _Node, problem: str) -> None:
        """The node's agent is gone: each attempt placed there is lost (retried as a crash)."""
        if node.lost or self.stopping:
            return
        node.lost = problem
        # The next run starts a new agent there (Ray ends an actor once no handle to it is left).
        self.cluster.agents.pop(node.id, None)
        if node.control is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.run.selector.unregister(node.control.sock)
            node.control.close()
            node.control = None
        self._accept_all()
        for remote in list(node.remotes.values()):
            action = remote.action
            action.lost = problem
            if action.state == State.STARTING and action.record.pid is None:
                self._forget(remote)
                self.run.by_key.pop(action.key, None)
                self.run._fail_before_start(action, FailureKind.CRASHED, f"{action.spec.name} {problem}")
            else:
                self._exited(remote, None, None)
        for remote in list(self.pending):  # waiting for room on nodes that are all gone now
            if not any(n.serves(remote.selector) and _fits(remote.demand, n.resources) for n in self._live()):
                action = remote.action
                self.pending.remove(remote)
                self._forget(remote)
                self.run.by_key.pop(action.key, None)
                message = f"{action.spec.name}: no live Ray node that could run it is left"
                self.run._fail_before_start(action, FailureKind.UNSCHEDULABLE, message)

    def _live(self) -> list[_Node]:
        return [node for node in self.nodes.values() if not node.lost]

    def _wait_nodes(self) -> None:
        """On a thread of its own: notice agents whose `serve` ends (the actor died) and wake the runner."""
        while True:
            with self.lock:
                if self.stopping:
                    return
                refs = {node.serving: node for node in self.nodes.values() if not node.ended}
            if not refs:
                time.sleep(0.05)
                continue
            ready, _ = self.ray.wait(list(refs), num_returns=1, timeout=0.2)
            with self.lock:
                for ref in ready:
                    refs[ref].ended = True
                    self.finished.append(refs[ref])
            if ready:
                with contextlib.suppress(OSError):
                    os.write(self.wake_write, b"!")

    def _on_finished(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self.wake_read, 4096)
        with self.lock:
            finished = list(self.finished)
            self.finished.clear()
        for node in finished:
            if node.control is not None and not node.control.closed:
                self._on_node(node, selectors.EVENT_READ)  # its last reports may be on their way
            try:
                self.ray.get(node.serving, timeout=0)
                problem = "lost its Ray node agent, which ended its run"
            except Exception as exc:
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                problem = f"lost its Ray node agent: {first}"
            self._lose(node, problem)
