"""The fork server's spare child: forked ahead of a launch, confined after it, one action only.

Driven through the fork server's own protocol (init, launch, started, exited), with a real server
process, real forks and a real action: the spare is a child of the server before any launch, the
next launch runs in it (with that launch's environment), a new spare replaces it, a spare killed
before its launch costs nothing but a fork, and closing the control socket leaves no process.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flyte_decl.runtime import proctree
from flyte_decl.runtime.action import Launch
from flyte_decl.runtime.limits import ChildSetup
from flyte_decl.runtime.wire import Connection, dump_payload, load_payload, recv_message, send_message
from flyte_decl.spec import TaskSpec

TASKS = """
import os


def whoami() -> tuple[int, str | None]:
    return os.getpid(), os.environ.get("SPARE_TEST")


def nap() -> None:
    if os.fork() == 0:  # a child in the action's process group, as a task's own subprocess
        os.execvp("sleep", ["sleep", "300"])
    os.system("sleep 300")
"""


class Server:
    """A fork server process and the runner's end of its control socket."""

    def __init__(self, root: Path) -> None:
        ours, theirs = socket.socketpair()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flyte_decl.runtime.forkserver", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            cwd=root,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        theirs.close()
        self.conn = Connection(ours)
        self.selector = selectors.DefaultSelector()
        self.selector.register(ours, selectors.EVENT_READ)
        self.keys = iter(range(1, 1000))
        specs = [
            TaskSpec(name=f"env.{task}", environment="env", task=task, fn=f"tasks:{task}", root_dir=root)
            for task in ("whoami", "nap")
        ]
        self.root = root
        self.conn.send(("init", "env", specs))
        tag, problems, self.environ = self.next()
        assert (tag, problems) == ("ready", {})

    def next(self, timeout: float = 30.0) -> tuple[Any, ...]:
        deadline = time.monotonic() + timeout
        while True:
            self.conn.flush()
            messages = self.conn.receive()
            if messages:
                assert len(messages) == 1, messages
                return tuple(messages[0])
            assert not self.conn.closed, "the fork server went away"
            assert time.monotonic() < deadline, "no message from the fork server"
            self.selector.select(0.1)

    def children(self) -> list[int]:
        return [pid for pid in proctree.children(self.process.pid) if proctree.process_state(pid) != "Z"]

    def launch(self, env: dict[str, str]) -> tuple[int, tuple[int, str | None]]:
        """Run whoami as an action; (pid in "started", what the task returned)."""
        key = next(self.keys)
        ours, theirs = socket.socketpair()
        log_read, log_write = os.pipe()
        send_message(ours, ("inputs", dump_payload(((), {})), {}))
        launch = Launch(key, "env.whoami", str(self.root), env, ChildSetup(), 1 << 20)
        self.conn.send(("launch", launch), [theirs.detach(), log_write])
        tag, started_key, pid = self.next()
        assert (tag, started_key) == ("started", key)
        outcome = recv_message(ours)
        assert outcome[0] == "succeeded", outcome
        tag, exited_key, status, max_rss = self.next()
        assert (tag, exited_key, status) == ("exited", key, 0)
        assert 1 << 20 < max_rss < 1 << 30  # the kernel's high-water mark of its resident set, bytes
        ours.close()
        os.close(log_read)
        return pid, load_payload(outcome[1])

    def close(self) -> None:
        self.conn.close()
        self.selector.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            proctree.kill_tree(self.process.pid)
            self.process.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    (tmp_path / "tasks.py").write_text(TASKS)
    server = Server(tmp_path)
    yield server
    server.close()


def wait_for(condition: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
    return value


def test_a_launch_runs_in_the_spare_forked_before_it_with_its_own_environment(server: Server) -> None:
    (spare,) = wait_for(server.children)  # forked once the server was ready, before any launch
    pid, (task_pid, value) = server.launch({"SPARE_TEST": "first"})
    assert pid == task_pid == spare
    assert value == "first"
    (next_spare,) = wait_for(server.children)  # the next launch's, forked after this one
    assert next_spare != spare
    pid, (task_pid, value) = server.launch({})
    assert pid == task_pid == next_spare
    assert value is None  # the first launch's variable went with its process


def test_a_spare_that_died_before_its_launch_leaves_the_launch_to_a_fresh_fork(server: Server) -> None:
    (spare,) = wait_for(server.children)
    os.kill(spare, signal.SIGKILL)
    # Once it is gone its socket is closed, so the hand-over fails (one that dies after taking its
    # launch is an action killed at its start, and its exit status says so).
    wait_for(lambda: not proctree.is_alive(spare))
    pid, (task_pid, value) = server.launch({"SPARE_TEST": "after"})
    assert pid == task_pid != spare
    assert value == "after"
    assert wait_for(server.children)  # and there is a spare again


def test_closing_the_control_socket_takes_the_spare_along(server: Server) -> None:
    (spare,) = wait_for(server.children)
    server.close()
    assert server.process.returncode == 0
    assert wait_for(lambda: not proctree.is_alive(spare))


def test_an_action_frozen_by_a_kill_that_never_finished_dies_with_its_fork_server(server: Server) -> None:
    # A killer freezes a tree (SIGSTOP) before it kills it; SIGKILLed in between, together with the
    # fork server (as Ray ends a node agent whose driver died), it leaves the tree stopped, where the
    # action's lifeline cannot act. The fork server's death wakes the action (SIGCONT) to do so.
    ours, theirs = socket.socketpair()
    log_read, log_write = os.pipe()
    send_message(ours, ("inputs", dump_payload(((), {})), {}))
    launch = Launch(1, "env.nap", str(server.root), {}, ChildSetup(), 1 << 20)
    server.conn.send(("launch", launch), [theirs.detach(), log_write])
    tag, _key, pid = server.next()
    assert tag == "started"
    tree = wait_for(lambda: len(found := proctree.walk(pid)) >= 3 and found)  # nap, sleep, sh + sleep
    os.killpg(pid, signal.SIGSTOP)
    wait_for(lambda: proctree.process_state(pid) == "T")
    server.process.kill()
    server.process.wait()
    assert wait_for(lambda: not any(proctree.is_alive(p) for p in [pid, *tree]), timeout=10)
    ours.close()
    os.close(log_read)
