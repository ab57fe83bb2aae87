"""The inside of an action: what a process forked by the fork server does until it exits.

The child confines itself (new session, limits, lifeline, subreaper for its own tree), takes
exactly its resolved environment, reads its inputs from the runner, runs the task's original
function and reports one outcome. Calls to other declared tasks go through proxies to the runner
over the same socket, each becoming a new action; an async task's calls are awaitables, so
`asyncio.gather` fans out.

Tasks declared in code (`@env.task`, a `TaskTemplate`) route their calls through the submitter this
module installs into `flyte_decl._task`, carrying their `.override(...)` settings; plain functions
bound in environments.yaml are rerouted to `task_call` (see `forkserver` and `reroute`).

Messages, child to runner: any number of ("call", call_id, task, payload, call_settings, context), then
one of ("succeeded", payload), ("failed", message, traceback, final), ("oversize", size); `final` is
True for a `NonRecoverableError`, whose retries the runner skips.
Runner to child: ("inputs", payload, info) first, then ("reply", call_id, payload) or
("reply_failed", call_id, task, action_id, kind, message) per call, raised in the caller as the
Flyte error class of that failure kind (`flyte_decl.errors.child_failure`).
"""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import dataclasses
import os
import pickle
import select
import signal
import socket
import sys
import threading
import traceback
import types
from collections.abc import Callable, Coroutine, Generator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from flyte_decl import _context
from flyte_decl._task import TaskTemplate, install_submitter
from flyte_decl.errors import NonRecoverableError, child_failure
from flyte_decl.runtime import datetimes, proctree
from flyte_decl.runtime.limits import ChildSetup
from flyte_decl.runtime.records import ActionFailed, FailureKind
from flyte_decl.runtime.wire import Connection, dump_payload, frame, load_payload, recv_message, send_message

T = TypeVar("T")

# Exit status of an action whose own machinery failed before or after the task ran; the runner
# reports it as `crashed` because no outcome message arrived.
_EXIT_INTERNAL = 70
# Exit status of an action that outlived its fork server (see `_hold_lifeline`).
_EXIT_ORPHANED = 71


@dataclass(frozen=True)
class Launch:
    """Everything the fork server needs to start one attempt; its descriptors travel beside it."""

    key: int  # the runner's handle for this attempt
    task: str
    root_dir: str
    # What to set (or, for None, unset) in the fork server's environment to make it exactly the
    # action's: usually a handful of variables rather than the whole environment.
    env_changes: dict[str, str | None]
    setup: ChildSetup
    max_output_bytes: int
    # A warm worker of a reusable environment (`run_worker`) rather than a one-action process.
    worker: bool = False


class Channel:
    """The action's socket to the runner: nested calls out, replies in, the outcome at the end.

    Replies are read by one daemon thread, started on the first call, so sync callers block on a
    future and async callers await the same future from their event loop.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._send_lock = threading.Lock()
        self._pending: dict[int, Future[Any]] = {}
        self._next_call = 0
        self._reader: threading.Thread | None = None

    def receive_inputs(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The (args, kwargs) the runner sent first, before any other message.

        Beside them comes which action this is (run, action, task, attempt, data folder), for `flyte.ctx()`.
        """
        tag, payload, *info = recv_message(self._sock)
        assert tag == "inputs", tag
        _context.enter_action(info[0] if info else {})
        args, kwargs = load_payload(payload)
        return args, kwargs

    def submit(
        self,
        task: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        settings: dict[str, Any] | None = None,
        short_name: str | None = None,
    ) -> Future[Any]:
        """Ask the runner for a new action of `task` (with `.override` settings and the task's Flyte
        `short_name`, a display label); resolves with its outputs."""
        payload = dump_payload((args, kwargs))
        context = _context.call_context()
        if short_name:
            context["short_name"] = short_name
        future: Future[Any] = Future()
        with self._send_lock:
            self._next_call += 1
            call_id = self._next_call
            self._pending[call_id] = future
            if self._reader is None:
                self._reader = threading.Thread(
                    target=self._read_replies, name="flyte-decl-replies", daemon=True
                )
                self._reader.start()
            send_message(self._sock, ("call", call_id, task, payload, settings or {}, context))
        return future

    def report(self, message: tuple[Any, ...]) -> None:
        """Send the action's one outcome message."""
        with self._send_lock:
            send_message(self._sock, message)

    def close(self) -> None:
        """End the channel in a process that goes on (a warm worker): its reply reader ends too.

        Shut down before closing, so a reader blocked in recv sees EOF, and wait for it, so it never
        reads from a descriptor number the next action's socket has reused.
        """
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        if self._reader is not None:
            self._reader.join(timeout=1.0)
        self._sock.close()

    def _read_replies(self) -> None:
        while True:
            try:
                message = recv_message(self._sock)
            except (EOFError, OSError):
                # The runner is gone; the fork server is about to kill this tree anyway.
                for future in list(self._pending.values()):
                    future.set_exception(ConnectionError("the runner went away"))
                return
            future = self._pending.pop(message[1])
            if message[0] == "reply":
                try:
                    future.set_result(load_payload(message[2]))
                except Exception as exc:  # outputs that do not unpickle here (a class unknown to this env)
                    future.set_exception(exc)
            else:
                _tag, _call, task, action, kind, text = message
                future.set_exception(child_failure(task, action, FailureKind(kind) if kind else None, text))


_channel: Channel | None = None


def _current_channel(task: str) -> Channel:
    if _channel is None:
        raise RuntimeError(f"{task} was called outside an action; run it with flyte-decl")
    return _channel


class _Submitter:
    """Turns calls of code-declared tasks into actions; task names come from the loaded config."""

    def __init__(self, channel: Channel, names: dict[int, tuple[Callable[..., Any], str]]) -> None:
        self._channel = channel
        self._names = names

    def _submit(self, task: TaskTemplate, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Future[Any]:
        # The config may bind the function under another name than the decorator's environment gave it.
        known = self._names.get(id(task.func))
        name = known[1] if known else task.full_name
        return self._channel.submit(name, args, kwargs, task.call_settings, task.display_name)

    def submit(self, task: TaskTemplate, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self._submit(task, args, kwargs).result()

    async def submit_async(self, task: TaskTemplate, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return await asyncio.wrap_future(self._submit(task, args, kwargs))


def task_call(task: str, is_async: bool, drop_first: bool = False) -> Callable[..., Any]:
    """What a call of a declared task does inside an action: `call(args, kwargs)` starts a new action.

    An async task's call returns an awaitable. `drop_first` leaves out the class a class method
    is called with (the action runs it bound to the class that declares it).
    """

    def submit(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Future[Any]:
        return _current_channel(task).submit(task, args[1:] if drop_first else args, kwargs)

    if is_async:
        return lambda args, kwargs: asyncio.wrap_future(submit(args, kwargs))
    return lambda args, kwargs: submit(args, kwargs).result()


_session_prepared = False


def prepare_session() -> None:
    """What a freshly forked child does before it knows its launch: own session, subreaper, no stdin.

    The fork server's spare children (`forkserver._Spare`) do it while they wait; `_confine` does it
    for a child forked for a launch. Orphans of the task's own tree (double forks, setsid'd daemons)
    are re-parented to this process, so the memory watchdog counts them and the kill at the end
    reaches them.

    The fork server's death sends this process SIGCONT: a tree frozen (SIGSTOP) by a kill that
    never finished, its killer SIGKILLed in between (a Ray node agent ended by its driver's death),
    wakes, sees its lifeline closed and kills itself and its tree; stopped, it would wait forever.
    """
    global _session_prepared
    os.setsid()
    proctree.set_child_subreaper()
    proctree.set_parent_death_signal(signal.SIGCONT)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    _session_prepared = True


def rehearse(loop: asyncio.AbstractEventLoop | None) -> None:
    """Run, on made-up values, the steps every action takes before and after its task's own code.

    For a spare child waiting for its launch: what these steps write to memory shared with the
    fork server (reference counts, the allocator's pages) is copied now rather than on the way to
    the task. The action state they set is set again by the real steps. With `loop` (the server's
    event loop, when it has async tasks), the loop is made this process's own (`_own_loop`) and
    a coroutine run on it as a task's is.
    """
    info = {"run": "r0", "action": "a0", "task": "", "attempt": 1, "data_dir": os.sep}
    payload = pickle.loads(frame(("inputs", dump_payload(((0,), {"i": 0})), info))[8:])[1]
    _context.enter_action(info)
    load_payload(payload)
    if loop is not None:
        _run_eagerly(_own_loop(loop), _call_async(_nothing, (), {}))
    else:
        _call(_nothing_sync, (), {})
    _context.action_ended()
    _context.enter_action({})
    frame(("succeeded", dump_payload(0)))


async def _nothing() -> None:
    return None


def _nothing_sync() -> None:
    return None


def _confine(launch: Launch, log_fd: int, lifeline: int) -> None:
    """Become an action (or warm worker) process: own session, limits, lifeline, environment."""
    if not _session_prepared:
        prepare_session()
    launch.setup.apply()
    _hold_lifeline(lifeline)
    _redirect_output(log_fd)
    _change_environ(launch.env_changes)
    os.chdir(launch.root_dir)


def _hold_lifeline(lifeline: int) -> None:
    """Die with the fork server, and take this whole tree along, however the server dies.

    `lifeline` is the read end of a pipe whose write end only the fork server holds: EOF means it
    is gone, even SIGKILLed. A daemon thread waits for that and kills every descendant (all of them
    are below this subreaper), then exits. A parent-death signal would kill this process alone and
    leave its descendants to PID 1. The thread needs the GIL to act, so a task stuck in a long C
    call holding it delays the kill until the call returns; the next runner's sweep covers a
    process killed outright (`leftovers`).
    """

    def watch() -> None:
        while True:
            try:
                if os.read(lifeline, 1):
                    continue  # nobody writes to it; a reused descriptor number is not ours to judge
            except InterruptedError:
                continue
            except OSError:
                return  # the task closed the descriptor: this watch is over
            proctree.kill_tree(os.getpid(), include_root=False)
            os._exit(_EXIT_ORPHANED)

    # Not threading.Thread: its start() waits until the new thread has run, a hand-over between
    # threads on every action's way to its task. This thread needs no join: actions end by _exit.
    _thread.start_new_thread(watch, ())


def run_action(
    launch: Launch,
    function: Callable[..., Any],
    names: dict[int, tuple[Callable[..., Any], str]],
    sock: socket.socket,
    log_fd: int,
    lifeline: int,
    loop: asyncio.AbstractEventLoop | None,
) -> NoReturn:
    """The whole life of a freshly forked action process; never returns.

    `names` maps the id of every loaded declared task's original function to it and its name.
    `lifeline` reaches EOF when the fork server is gone (see `_hold_lifeline`). An async task runs
    on `loop`, the fork server's unused event loop, made private (see `_own_loop`).
    """
    global _channel
    me = os.getpid()
    status = _EXIT_INTERNAL
    try:
        _confine(launch, log_fd, lifeline)
        _channel = channel = Channel(sock)
        install_submitter(_Submitter(channel, names))
        outcome = _outcome(launch, function, channel, loop)
        if os.getpid() != me:  # the task forked and this copy returned from it: stay silent
            os._exit(0)
        channel.report(outcome)
        status = 0
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a closed or broken stream must not keep the tree alive
                stream.flush()
        # As a subreaper, this process has every living descendant below one of its children.
        if os.getpid() == me and proctree.children(me):
            proctree.kill_tree(me, include_root=False)
        os._exit(status)


def run_worker(
    launch: Launch,
    functions: dict[str, Callable[..., Any]],
    loops: Mapping[str, asyncio.AbstractEventLoop | None],
    names: dict[int, tuple[Callable[..., Any], str]],
    control: socket.socket,
    log_fd: int,
    lifeline: int,
) -> NoReturn:
    """The whole life of a warm worker of a reusable environment; never returns.

    Confines itself once, exactly as an action does (`run_action`), then runs one action at a time
    for as long as the runner keeps its control socket open. Each job arrives as
    ``("run", key, task, max_output_bytes)`` with that action's socket and log pipe beside it; the
    action's stdout and stderr go to that pipe while it runs, and ``("done", key)`` follows once
    its outcome is sent and the pipe is closed. `loops` holds the fork server's event loop for
    each async task (None for sync ones).

    Module state persists from one action to the next in the same worker: that is what reuse is.
    """
    global _channel
    me = os.getpid()
    status = _EXIT_INTERNAL
    try:
        _confine(launch, log_fd, lifeline)
        # Between actions stdout and stderr go back to the worker's own log.
        worker_log = os.dup(1)
        os.set_inheritable(worker_log, False)
        conn = Connection(control)
        private: dict[int, asyncio.AbstractEventLoop] = {}
        while True:
            job = _next_job(conn)
            if job is None:
                status = 0
                break
            (_tag, key, task, max_output_bytes), sock_fd, job_log = job
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os.dup2(job_log, 1)
            os.dup2(job_log, 2)
            os.close(job_log)
            _channel = channel = Channel(socket.socket(fileno=sock_fd))
            install_submitter(_Submitter(channel, names))
            loop = loops.get(task)
            if loop is not None:
                # One private self-pipe per inherited loop, made once: later actions reuse it.
                loop = private.setdefault(id(loop), _own_loop(loop))
            job_launch = dataclasses.replace(launch, key=key, task=task, max_output_bytes=max_output_bytes)
            outcome = _outcome(job_launch, functions[task], channel, loop)
            if os.getpid() != me:  # the task forked and this copy returned from it: stay silent
                os._exit(0)
            channel.report(outcome)
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            # What this action started must not outlive it, as with an isolated action.
            if proctree.children(me):
                proctree.kill_tree(me, include_root=False)
            os.dup2(worker_log, 1)
            os.dup2(worker_log, 2)
            channel.close()
            _channel = None
            conn.send(("done", key))
            while conn.wants_write:
                _wait_for(conn, select.POLLOUT)
                conn.flush()
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        if os.getpid() == me and proctree.children(me):
            proctree.kill_tree(me, include_root=False)
        os._exit(status)


def _next_job(conn: Connection) -> tuple[tuple[Any, ...], int, int] | None:
    """Block until the runner sends a job (with its two descriptors); None once it closed the socket."""
    while True:
        messages = conn.receive()
        if messages:
            # The runner sends one job at a time and waits for "done" before the next.
            return messages[0], conn.fds.popleft(), conn.fds.popleft()
        if conn.closed:
            return None
        _wait_for(conn, select.POLLIN)


def _wait_for(conn: Connection, events: int) -> None:
    """Block until the socket is readable or writable; poll(2), which has no FD_SETSIZE cap."""
    poller = select.poll()
    poller.register(conn.sock, events)
    poller.poll()


def _outcome(
    launch: Launch, function: Callable[..., Any], channel: Channel, loop: asyncio.AbstractEventLoop | None
) -> tuple[Any, ...]:
    try:
        args, kwargs = channel.receive_inputs()
    except Exception as exc:
        return ("failed", f"inputs cannot be deserialized: {type(exc).__name__}: {exc}", "")
    kwargs = datetimes.with_defaults(function, args, kwargs)
    if loop is not None:
        ok, value = _run_eagerly(_own_loop(loop), _call_async(function, args, kwargs))
    else:
        ok, value = _call(function, args, kwargs)
    with contextlib.suppress(Exception):  # a report that cannot be written must not fail the task
        _context.action_ended()
    if not ok:
        return ("failed", _describe(value), _user_traceback(value), isinstance(value, NonRecoverableError))
    try:
        payload = dump_payload(value)
    except Exception as exc:
        return ("failed", f"outputs cannot be serialized: {type(exc).__name__}: {exc}", "")
    if len(payload) > launch.max_output_bytes:
        return ("oversize", len(payload))
    return ("succeeded", payload)


# Both callers catch in the frame that calls the task, so the task's traceback starts one frame in.
def _call(function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[bool, Any]:
    try:
        return True, function(*args, **kwargs)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt in a task are its own failure too
        return False, exc


async def _call_async(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[bool, Any]:
    try:
        return True, await function(*args, **kwargs)
    except BaseException as exc:
        return False, exc


def _own_loop(inherited: asyncio.AbstractEventLoop) -> asyncio.AbstractEventLoop:
    """The fork server's event loop, with a self-pipe of this process's own.

    Building a loop in a freshly forked process writes to (and so copies) hundreds of memory
    pages shared with the fork server, about a millisecond here; the inherited one only needs
    the one thing it shares with other processes, its self-pipe (how other threads wake it),
    replaced. Should a Python version lack those internals, build a new loop after all.
    """
    if getattr(inherited, "_flyte_decl_owner", None) == os.getpid():
        return inherited  # made this process's own already (a spare's `rehearse`)
    close_pipe = getattr(inherited, "_close_self_pipe", None)
    make_pipe = getattr(inherited, "_make_self_pipe", None)
    if close_pipe is None or make_pipe is None:
        return asyncio.new_event_loop()
    close_pipe()
    make_pipe()
    inherited._flyte_decl_owner = os.getpid()  # type: ignore[attr-defined]
    return inherited


def _run_eagerly(loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end, starting the event loop only if it has to wait for something.

    The first step runs right here with `loop` set as the running loop (as Python 3.12's eager
    tasks do), so a task that never waits costs no event loop turns at all. Not asyncio.run: its
    set-up and tear-down cost more than a tiny task, and the process exits right after, which ends
    whatever the task left running.
    """
    asyncio.set_event_loop(loop)
    asyncio.events._set_running_loop(loop)
    try:
        waiting_on = coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    finally:
        asyncio.events._set_running_loop(None)
    return loop.run_until_complete(_resume(coroutine, waiting_on))


@types.coroutine
def _resume(coroutine: Coroutine[Any, Any, T], waiting_on: Any) -> Generator[Any, Any, T]:
    """Hand the future a coroutine's first step yielded to the Task, then keep driving it.

    asyncio always resumes a coroutine with send(None) (a future's result is read by the awaiting
    code itself), so `yield from` can take over after the first wait; what is thrown in while
    waiting (a cancellation) is thrown into the coroutine.
    """
    try:
        yield waiting_on
    except BaseException as exc:
        try:
            waiting_on = coroutine.throw(exc)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        return (yield from _resume(coroutine, waiting_on))
    return (yield from coroutine)  # type: ignore[misc]


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _describe(exc: BaseException) -> str:
    # A child's failure keeps naming the child in its caller's failure message.
    text = exc.summary if isinstance(exc, ActionFailed) else str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _user_traceback(exc: BaseException) -> str:
    """The traceback as Python prints it, without flyte-decl's own frames (also in chained exceptions)."""
    tb = exc.__traceback__.tb_next if exc.__traceback__ else None
    shown = traceback.TracebackException(type(exc), exc, tb)
    pending, seen = [shown], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        frames = [frame for frame in current.stack if not frame.filename.startswith(_PACKAGE_DIR)]
        current.stack = traceback.StackSummary.from_list(frames)
        pending += [chained for chained in (current.__cause__, current.__context__) if chained is not None]
    return "".join(shown.format())


def _change_environ(changes: dict[str, str | None]) -> None:
    for name, value in changes.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _redirect_output(log_fd: int) -> None:
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    for stream in (sys.stdout, sys.stderr):
        # Line by line, so the runner can stream prefixed lines while the task runs.
        stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
