"""A warm fork server for one environment: import the task modules once, fork one process per action.

The runner starts it as ``python -m flyte_decl.runtime.forkserver FD`` with FD one end of a Unix
socket pair, and sends ``("init", environment, specs)`` with every declared TaskSpec. The server
puts the config folders on sys.path, imports every declared task's module (`binding.bind`), and
reroutes every declared function (`reroute`), so a task calling another task inside an action,
through any reference, starts a new action. Calls of tasks declared in code (`@env.task`) go through
the submitter the action installs, with their `.override` settings. It answers ``("ready", errors, environ)`` with
an import error per task that could not be loaded, and its environment after the imports.

Then, for each ``("launch", Launch)`` message (the action's socket and log pipe travel beside it as
descriptors) a child of its own becomes the action (`action.run_action`). It tells the runner
``("started", key, pid)`` and, once reaped, ``("exited", key, wait_status, max_rss)`` (the
kernel's high-water mark of its resident set, bytes, from ``wait4``). The fork is taken off
the launch's path: whenever the server has nothing else to do it keeps one *spare* child forked
ahead, which has left the server's state behind, started its own session and waits for exactly one
launch on a socket of its own (`_Spare`). A launch goes to the spare if there is one (its descriptors
are passed on to it), else to a fresh fork, as a burst of launches finds. Either way the child
confines itself (cgroups, rlimits, affinity, environment) before any task code runs, and runs one
action only; a spare that never gets a launch exits when its socket closes. A launch marked
`worker` forks a warm worker of a reusable environment instead (`action.run_worker`): the same
confinement, then one action after another over the socket that came with the launch.

It is a child subreaper, and nothing it started outlives it: when the runner goes away (EOF on the
control socket, which a SIGKILLed runner also produces) or sends SIGTERM, it kills every
descendant, including setsid'd and double-forked ones, and exits. If the runner died (this server
was re-parented, or the runner is in the kernel's exit path), it first kills the cgroup of every
action and warm worker of the run on cgroup v2 (``cgroup.kill``, `cgroup2.kill_actions_of`): all at
once, and whatever the process tree no longer leads to. Orphans an action left behind are killed as
soon as that action is reaped. Should the server itself be killed (SIGKILL, the OOM killer), every
action notices the end of its lifeline (a pipe only the server can write to) and kills its own tree
(`action`); what even that misses, the next runner's start sweeps (`leftovers`).

Unlike multiprocessing's forkserver in Python 3.11, it does apply its sys.path and it reports
import errors instead of swallowing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import inspect
import os
import pickle
import selectors
import signal
import socket
import sys
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from flyte_decl import _alias
from flyte_decl.binding import Binding, Unbindable, bind
from flyte_decl.runtime import cgroup2, datetimes, proctree
from flyte_decl.runtime.action import Launch, prepare_session, rehearse, run_action, run_worker, task_call
from flyte_decl.runtime.limits import own_cgroup_dirs
from flyte_decl.runtime.reroute import reroute
from flyte_decl.runtime.wire import Connection
from flyte_decl.spec import TaskSpec

ImportProblem = tuple[str, str]  # (one-line message, traceback text)


@dataclass
class LoadedTasks:
    """The outcome of loading an environment's tasks."""

    functions: dict[str, Callable[..., Any]]  # original function of each of its tasks, by name
    problems: dict[str, ImportProblem]  # why a task could not be loaded, by name
    # Task name of every loaded declared function, by the function's id (so any callable will do);
    # each entry holds its function too, which keeps that id from being reused.
    names: dict[int, tuple[Callable[..., Any], str]]


def load_tasks(environment: str, specs: list[TaskSpec]) -> LoadedTasks:
    """Import every declared task's module and reroute every declared function to a new action.

    Every environment's functions, not only this one's: a task of another environment called from
    an action here must become an action in its own environment too.
    """
    for root in dict.fromkeys(str(spec.root_dir) for spec in specs):
        if root not in sys.path:
            sys.path.insert(0, root)
    own = [spec for spec in specs if spec.environment == environment]
    # This environment's own tasks go last, so they win when one function is declared twice.
    ordered = [*(spec for spec in specs if spec.environment != environment), *own]
    bindings: dict[str, Binding] = {}
    problems: dict[str, ImportProblem] = {}
    for spec in ordered:
        try:
            bindings[spec.name] = bind(spec.fn, spec.root_dir)
        except Unbindable as exc:
            # Another environment's task that cannot be bound has no function here to reroute;
            # its own fork server reports it when it is called (and `run` refuses it up front).
            if spec.environment == environment:
                message = exc.message + (f" ({exc.hint})" if exc.hint else "")
                problems[spec.name] = (f"{spec.name}: {message}", exc.traceback)
    names: dict[int, tuple[Callable[..., Any], str]] = {}
    for spec in ordered:
        if spec.name in bindings:
            names[id(bindings[spec.name].function)] = (bindings[spec.name].function, spec.name)
    copies: dict[int, types.FunctionType] = {}
    for function, name in names.values():
        binding = bindings[name]
        # A task declared with @env.task is called through its TaskTemplate (the submitter carries
        # its .override settings), but its function may be held elsewhere too (a registry under
        # the decorator): that reference must start an action as well.
        if isinstance(function, types.FunctionType):
            call = task_call(name, inspect.iscoroutinefunction(function), binding.owner_class is not None)
            copies[id(function)] = reroute(function, call, name)
    functions: dict[str, Callable[..., Any]] = {}
    for spec in own:
        if spec.name in bindings:
            binding = bindings[spec.name]
            copy = copies.get(id(binding.function), binding.function)
            functions[spec.name] = dataclasses.replace(binding, function=copy).entry
    return LoadedTasks(functions, problems, names)


@dataclass
class _Spare:
    """A child forked ahead of its launch: `sock` is the server's end of the socket it waits on.

    The server writes the pickled Launch to it, the action's socket and log pipe beside the first
    byte, and closes it; the child reads to end of file. End of file with nothing read (the
    server closed it, or died) makes the child exit without running anything.
    """

    pid: int
    sock: socket.socket


class ForkServer:
    """The server loop: launches, reaping, and the runner's liveness, on one selector."""

    def __init__(self, sock: socket.socket) -> None:
        self._conn = Connection(sock)
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = os.pipe()
        self._loaded = LoadedTasks({}, {}, {})
        self._async: dict[str, bool] = {}  # task name -> its function is a coroutine function
        # One event loop, never run here, that every async action starts from (see run_action).
        # With poll(2) its registrations live in process memory, not in a kernel object that the
        # forked actions would share with this server and with each other.
        self._loop = asyncio.SelectorEventLoop(selectors.PollSelector())
        self._actions: dict[int, int] = {}  # pid -> launch key
        self._ready = False  # the tasks are loaded: spares may be forked
        self._spare: _Spare | None = None
        # Actions inherit the read end; the write end stays here, so they see EOF once this server is gone.
        self._lifeline, self._lifeline_end = os.pipe()
        self._runner = os.getppid()

    def serve(self) -> None:
        """Run until the runner goes away or sends SIGTERM, then kill every descendant."""
        proctree.set_child_subreaper()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        signal.set_wakeup_fd(self._wake_write)
        # Handlers that do nothing: the wakeup fd tells the loop which signal came.
        for signum in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(signum, lambda *_: None)
        # The runner owns Ctrl-C; it shuts this server down itself.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self._selector.register(self._conn.sock, selectors.EVENT_READ)
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        try:
            while self._step():
                pass
        finally:
            self._kill_everything()

    def _step(self) -> bool:
        events = self._selector.select()
        for selected, _mask in events:
            if selected.fd == self._wake_read:
                signals = os.read(self._wake_read, 4096)
                self._reap()
                if signal.SIGTERM in signals:
                    return False
        for message in self._conn.receive():
            self._handle(message)
        self._conn.flush()
        if self._conn.closed:
            return False
        self._selector.modify(
            self._conn.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if self._conn.wants_write else 0)
        )
        if self._ready and self._spare is None:
            self._fork_spare()  # after the replies went out: the next launch need not wait for a fork
        return True

    def _handle(self, message: tuple[Any, ...]) -> None:
        if message[0] == "init":
            _tag, environment, specs = message
            self._loaded = load_tasks(environment, specs)
            self._async = {
                name: inspect.iscoroutinefunction(fn) for name, fn in self._loaded.functions.items()
            }
            for function in self._loaded.functions.values():
                datetimes.prepare_defaults(function)
            # Whatever the imports printed must not land in the first action's log.
            sys.stdout.flush()
            sys.stderr.flush()
            # Every object alive now is shared with the actions; the collector must not walk them
            # (in an action that would write to, and so copy, most pages of this heap).
            gc.collect()
            gc.freeze()
            # The environment as the imports left it: what each action's env_changes apply to.
            self._conn.send(("ready", self._loaded.problems, dict(os.environ)))
            self._ready = True
        elif message[0] == "launch":
            launch: Launch = message[1]
            sock_fd, log_fd = self._conn.fds.popleft(), self._conn.fds.popleft()
            self._fork(launch, sock_fd, log_fd)

    def _fork(self, launch: Launch, sock_fd: int, log_fd: int) -> None:
        spare, self._spare = self._spare, None
        if spare is not None and self._hand_to(spare, launch, sock_fd, log_fd):
            pid = spare.pid
        else:
            try:
                pid = os.fork()
            except OSError as exc:
                self._conn.send(("fork_failed", launch.key, f"cannot fork: {exc}"))
                os.close(sock_fd)
                os.close(log_fd)
                return
            if pid == 0:
                self._become_action()
                self._run(launch, sock_fd, log_fd)
        self._actions[pid] = launch.key
        self._conn.send(("started", launch.key, pid))
        os.close(sock_fd)
        os.close(log_fd)

    def _run(self, launch: Launch, sock_fd: int, log_fd: int) -> NoReturn:
        """In the child: become the action (or warm worker) `launch` describes; never returns."""
        os.set_inheritable(sock_fd, False)
        sock = socket.socket(fileno=sock_fd)
        if launch.worker:  # a warm worker runs any of this environment's tasks, one at a time
            loops = {name: self._loop if is_async else None for name, is_async in self._async.items()}
            functions, names = self._loaded.functions, self._loaded.names
            run_worker(launch, functions, loops, names, sock, log_fd, self._lifeline)
        loop = self._loop if self._async[launch.task] else None
        function = self._loaded.functions[launch.task]
        run_action(launch, function, self._loaded.names, sock, log_fd, self._lifeline, loop)

    def _fork_spare(self) -> None:
        """Fork a child that waits for the next launch (see `_Spare`); none if the fork fails."""
        ours, theirs = socket.socketpair()
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            return
        if pid == 0:
            ours.close()
            self._become_action()
            self._await_launch(theirs)
        theirs.close()
        self._spare = _Spare(pid, ours)

    def _await_launch(self, sock: socket.socket) -> NoReturn:
        """In a spare: take a session of its own now, then wait for one launch and run it."""
        status = 0
        try:
            prepare_session()
            rehearse(self._loop if any(self._async.values()) else None)
            data, fds, _flags, _address = socket.recv_fds(sock, 65536, 2, socket.MSG_CMSG_CLOEXEC)
            chunks = [data]
            while data:
                data = sock.recv(1 << 20)
                chunks.append(data)
            sock.close()
            if len(fds) == 2:
                self._run(pickle.loads(b"".join(chunks)), *fds)
            for fd in fds:  # a launch cut off: the server died while handing it over
                os.close(fd)
        except BaseException:
            traceback.print_exc()
            status = 70
        os._exit(status)

    def _hand_to(self, spare: _Spare, launch: Launch, sock_fd: int, log_fd: int) -> bool:
        """Pass `launch` and its descriptors to the spare; False if it is gone (fork instead)."""
        data = pickle.dumps(launch, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            sent = socket.send_fds(spare.sock, [data], [sock_fd, log_fd])
            spare.sock.sendall(data[sent:])
            return True
        except OSError:  # it died (it is reaped as any child); the launch gets a fresh fork
            return False
        finally:
            spare.sock.close()

    def _become_action(self) -> None:
        """In the forked child: drop every trace of the server before the task runs."""
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        self._selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)
        os.close(self._lifeline_end)
        self._conn.close()  # also closes descriptors that arrived for later launches

    def _reap(self) -> None:
        left_orphans = False
        while True:
            try:
                pid, status, rusage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            key = self._actions.pop(pid, None)
            if key is not None:
                self._conn.send(("exited", key, status, rusage.ru_maxrss * 1024), flush=False)
            elif self._spare is not None and pid == self._spare.pid:  # killed before its launch came
                self._spare.sock.close()
                self._spare = None
            # An action that exits normally has killed its own descendants; one that died, or an
            # orphan dying here, means others may have been re-parented to this server.
            left_orphans = left_orphans or key is None or status != 0
        if left_orphans:
            # Anything re-parented here that is not a live action was left behind by one that ended.
            spare = self._spare.pid if self._spare is not None else None
            for orphan in proctree.children(os.getpid()):
                if orphan not in self._actions and orphan != spare:
                    proctree.kill_tree(orphan)

    def _kill_everything(self) -> None:
        if os.getppid() != self._runner or proctree.is_exiting(self._runner):  # it died, or is dying
            own, _ = own_cgroup_dirs()
            if own is not None:
                cgroup2.kill_actions_of(own, self._runner)
        proctree.kill_descendants_of_self()
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass


def main(argv: list[str]) -> None:
    """Entry point: ``python -m flyte_decl.runtime.forkserver FD``."""
    _alias.install_if_asked()  # a Flyte program's `import flyte`, when `flyte-decl run prog.py` asked
    ForkServer(socket.socket(fileno=int(argv[0]))).serve()


if __name__ == "__main__":
    main(sys.argv[1:])
