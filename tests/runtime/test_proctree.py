"""Process-tree utilities on real processes: walking, liveness, measuring, killing, prctl helpers.

Scenarios that change process-wide state (becoming a child subreaper, being re-parented to)
run in a fresh interpreter, so the test session itself stays as it was.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from flyte_decl.runtime import proctree


def run_python(code: str, timeout: float = 20.0) -> dict[str, object]:
    """Run `code` in a fresh interpreter; it prints one JSON object as its last line."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.fixture
def shell_tree() -> Iterator[subprocess.Popen[bytes]]:
    """sh -> (sleep, sleep): a parent with two children, in its own session."""
    process = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait"], start_new_session=True)
    deadline = time.monotonic() + 5
    while len(proctree.children(process.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    yield process
    proctree.kill_tree(process.pid, pgid=process.pid)
    process.wait()


def test_walk_finds_children_and_their_parents(shell_tree: subprocess.Popen[bytes]) -> None:
    tree = proctree.walk(shell_tree.pid)
    kids = proctree.children(shell_tree.pid)
    assert len(kids) == 2
    assert tree == {shell_tree.pid: 0, kids[0]: shell_tree.pid, kids[1]: shell_tree.pid}
    assert proctree.descendants(shell_tree.pid) == kids
    assert proctree.walk(2**22 + 1) == {}  # beyond any pid_max: no such process


def test_zombie_counts_as_dead() -> None:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os._exit(0)
    deadline = time.monotonic() + 5
    while proctree.process_state(pid) != "Z" and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(pid, 0)  # the signal check succeeds on a zombie ...
    assert not proctree.is_alive(pid)  # ... but it is not alive
    os.waitpid(pid, 0)
    assert proctree.process_state(pid) is None and not proctree.is_alive(pid)


def test_is_exiting_once_the_main_thread_has_exited() -> None:
    # A process whose main thread has exited while another thread runs is still there, but its
    # exit has begun (its leader is a zombie, PF_EXITING set). The moment between a SIGKILL and
    # the zombie is too short to catch here; the VM test of a SIGKILLed runner meets it.
    code = "import ctypes, threading, time; threading.Thread(target=time.sleep, args=(60,)).start(); "
    code += "print(flush=True); ctypes.CDLL(None).pthread_exit(None)"
    leaving = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert leaving.stdout is not None and leaving.stdout.readline() == b"\n"
        deadline = time.monotonic() + 5
        while not proctree.is_exiting(leaving.pid) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert proctree.is_exiting(leaving.pid)
        assert os.path.exists(f"/proc/{leaving.pid}/task/{leaving.pid}"), "still there, exiting"
    finally:
        leaving.kill()
        leaving.wait()
    assert proctree.is_exiting(leaving.pid)  # gone
    assert not proctree.is_exiting(os.getpid())


def test_measurements_of_a_busy_process() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "data = b'x' * (64 << 20)\nwhile True: pass"])
    try:
        time.sleep(0.5)
        first = proctree.cpu_seconds(busy.pid)
        time.sleep(0.2)
        second = proctree.cpu_seconds(busy.pid)
        assert first is not None and second is not None and second > first > 0
        assert proctree.rss_bytes(busy.pid) > 64 << 20
        assert 64 << 20 < proctree.pss_bytes(busy.pid) <= proctree.rss_bytes(busy.pid)
        started = proctree.start_time(busy.pid)
        assert started is not None and started == proctree.start_time(busy.pid)
        assert started >= proctree.start_time(os.getpid())  # type: ignore[operator]
    finally:
        busy.kill()
        busy.wait()
    assert proctree.cpu_seconds(busy.pid) is None
    assert proctree.rss_bytes(busy.pid) == 0


def test_reaped_children_cpu_is_counted() -> None:
    result = run_python(
        """
        import json, os, subprocess, sys
        from flyte_decl.runtime import proctree
        before = proctree.reaped_children_cpu_seconds(os.getpid())
        subprocess.run([sys.executable, "-c", "import time\\nend = time.process_time() + 0.3\\n"
                        "while time.process_time() < end: pass"])
        print(json.dumps({"before": before, "after": proctree.reaped_children_cpu_seconds(os.getpid())}))
        """
    )
    assert result["before"] == 0.0
    assert 0.25 <= float(result["after"]) < 1.0  # type: ignore[arg-type]


def test_kill_tree_signals_group_and_descendants(shell_tree: subprocess.Popen[bytes]) -> None:
    kids = proctree.children(shell_tree.pid)
    killed = proctree.kill_tree(shell_tree.pid, pgid=shell_tree.pid)
    assert killed == {shell_tree.pid, *kids}
    assert proctree.wait_gone(killed, timeout=2.0) == set()


def test_kill_tree_with_sigterm_reaches_a_stopped_process() -> None:
    # A stopped process holds SIGTERM pending forever; kill_tree continues it so it can act.
    process = subprocess.Popen(["sleep", "30"])
    os.kill(process.pid, signal.SIGSTOP)
    proctree.kill_tree(process.pid, signal.SIGTERM)
    assert process.wait(timeout=5) == -signal.SIGTERM


def test_kill_tree_never_signals_the_caller() -> None:
    result = run_python(
        """
        import json, os, subprocess
        from flyte_decl.runtime import proctree
        os.setsid()  # our own group too: it must not be signalled either
        child = subprocess.Popen(["sleep", "30"])
        killed = proctree.kill_tree(os.getpid(), pgid=os.getpgrp())
        child.wait()
        print(json.dumps({"killed": sorted(killed), "child": child.pid, "code": child.returncode}))
        """
    )
    assert result["killed"] == [result["child"]]
    assert result["code"] == -signal.SIGKILL


ESCAPES = """
import json, os, subprocess, time
from flyte_decl.runtime import proctree
SUBREAPER
session = subprocess.Popen(["sleep", "60"], start_new_session=True)
read, write = os.pipe()
middle = os.fork()
if middle == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(write, b"%d" % os.getpid())
        time.sleep(60)
    os._exit(0)
os.waitpid(middle, 0)
daemon = int(os.read(read, 32))
reparented = proctree.walk(os.getpid()).get(daemon)
survivors = proctree.kill_descendants_of_self(timeout=2.0)
alive = [pid for pid in (session.pid, daemon) if proctree.is_alive(pid)]
for pid in (session.pid, daemon):  # best-effort cleanup if the test fails
    if proctree.is_alive(pid):
        os.kill(pid, 9)
print(json.dumps({"parent_of_daemon": reparented, "me": os.getpid(), "alive": alive,
                  "survivors": sorted(survivors)}))
"""


def test_subreaper_catches_setsid_grandchild_and_double_forked_daemon() -> None:
    result = run_python(ESCAPES.replace("SUBREAPER", "proctree.set_child_subreaper()"))
    assert result["parent_of_daemon"] == result["me"]  # re-parented to us, not to PID 1
    assert result["alive"] == [] and result["survivors"] == []


def test_without_subreaper_a_double_forked_daemon_escapes_the_tree() -> None:
    # The reason the runner and every action are child subreapers.
    result = run_python(ESCAPES.replace("SUBREAPER", "assert not proctree.is_child_subreaper()"))
    assert result["parent_of_daemon"] is None
    assert len(result["alive"]) == 1  # type: ignore[arg-type]  # the daemon; the cleanup killed it


def test_subreaper_flag_round_trips() -> None:
    result = run_python(
        """
        import json
        from flyte_decl.runtime import proctree
        states = [proctree.is_child_subreaper()]
        proctree.set_child_subreaper()
        states.append(proctree.is_child_subreaper())
        proctree.set_child_subreaper(False)
        states.append(proctree.is_child_subreaper())
        print(json.dumps({"states": states}))
        """
    )
    assert result["states"] == [False, True, False]
