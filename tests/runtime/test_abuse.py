"""Signals and cleanup under abuse, on real runners and real signals.

Ctrl-C or SIGTERM at any moment of a run ends it in exit 130 without a traceback; actions die
with their fork server however it dies; and what a runner killed together with its fork servers
and actions left behind is killed by the next runner's start, found through its per-action
cgroups or the runner's mark in its environment. Races are tried several times each.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flyte_decl.runtime import proctree
from flyte_decl.runtime.leftovers import RUNNER_MARK
from flyte_decl.runtime.limits import CGROUP_PREFIX, Mechanisms, detect_mechanisms
from flyte_decl.runtime.records import ActionEvent, Phase
from flyte_decl.runtime.runner import LocalRunner
from flyte_decl.spec import RunConfig, TaskSpec

CGROUPS = detect_mechanisms().memory != "watchdog"

# Each leaf leaves a setsid'd child, a double-forked setsid'd daemon and, with `scrub`, a child
# with an empty environment behind, then writes the pids ("action child daemon [scrubbed]").
TASKS = """
import asyncio, os, subprocess, time

def leaf(pid_file: str, scrub: bool) -> None:
    pids = [os.getpid(), subprocess.Popen(["sleep", "300"], start_new_session=True).pid]
    read, write = os.pipe()
    if os.fork() == 0:
        if os.fork() == 0:
            os.setsid()
            os.write(write, str(os.getpid()).encode())
            time.sleep(300)
        os._exit(0)
    os.close(write)
    pids.append(int(os.read(read, 32)))
    if scrub:
        pids.append(subprocess.Popen(["sleep", "300"], env={}, start_new_session=True).pid)
    with open(pid_file + ".tmp", "w") as handle:
        handle.write(" ".join(map(str, pids)))
    os.rename(pid_file + ".tmp", pid_file)
    time.sleep(300)

async def fan_out(root: str, n: int, scrub: bool) -> None:
    await asyncio.gather(*(asyncio.to_thread(leaf, f"{root}/pids{i}", scrub) for i in range(n)))

async def quick(i: int) -> int:
    await asyncio.sleep(0.05)
    return i

async def many(n: int) -> list:
    return await asyncio.gather(*(quick(i) for i in range(n)))
"""

CONFIG = """
version: 1
environments:
  env1:
    tasks:
      many: {fn: "tasks:many"}
  env2:
    resources: {cpu: 500m, memory: 200Mi}
    tasks:
      quick: {fn: "tasks:quick"}
"""

RUNNER = """
import sys
from pathlib import Path
from flyte_decl.runtime.runner import LocalRunner
from flyte_decl.spec import ReusePolicy, RunConfig, TaskSpec

root, n, reusable, scrub = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4] == "1"
policy = ReusePolicy(replicas=n) if reusable else None
specs = [
    TaskSpec(name="env1.fan_out", environment="env1", task="fan_out", fn="tasks:fan_out", root_dir=root),
    TaskSpec(name="env2.leaf", environment="env2", task="leaf", fn="tasks:leaf", root_dir=root,
             memory_limit=200 * 2**20, cpu_limit=1.0, reusable=policy),
]
runner = LocalRunner(RunConfig(tasks={s.name: s for s in specs}, queues={}), log_dir=root / "logs")
runner.run("env1.fan_out", {"root": str(root), "n": n, "scrub": scrub})
"""

LEAVES = 2  # each reserves one of the two cores CI machines have


def _flyte_decl(root: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "flyte_decl", *args],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _catches(pid: int, signum: int) -> bool:
    """Whether `pid` has a handler for `signum` installed (SigCgt in /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) & (1 << (signum - 1)))


@pytest.fixture
def fan_out_config(tmp_path: Path) -> Path:
    (tmp_path / "tasks.py").write_text(TASKS)
    (tmp_path / "environments.yaml").write_text(CONFIG)
    return tmp_path


# -- Ctrl-C and SIGTERM -----------------------------------------------------------------------------


def _interrupt(root: Path, n: int, signum: int, delay: float, *, launching: bool) -> tuple[int, str]:
    """Run `many --n N`, send `signum` `delay` s after its handler is in place (or, `launching`, after
    its leaves have begun to start); returns the exit code and stderr."""
    launched = len(list(root.glob(".flyte-decl/logs/*/a3.1.log")))
    process = _flyte_decl(root, "run", "many", "--n", str(n))
    deadline = time.monotonic() + 20
    while not _catches(process.pid, signal.SIGTERM) or (
        launching and len(list(root.glob(".flyte-decl/logs/*/a3.1.log"))) == launched
    ):
        assert process.poll() is None and time.monotonic() < deadline, "not started in time"
        time.sleep(0.002)
    time.sleep(delay)
    process.send_signal(signum)
    _out, err = process.communicate(timeout=30)
    return process.returncode, err.decode()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_a_fan_out_launches_ends_in_130_without_a_traceback(
    fan_out_config: Path, signum: int
) -> None:
    """While launches are on their way to a fork server, which the abort must not cut off."""
    rng = random.Random(signum)
    for _trial in range(3):
        code, err = _interrupt(fan_out_config, 30, signum, rng.uniform(0.0, 0.3), launching=True)
        assert "Traceback" not in err, err
        assert code == 130, err


def test_an_abort_requested_halfway_through_a_launch_waits_for_the_launch_to_finish(tmp_path: Path) -> None:
    """`abort` called on the loop's own thread while it queues actions, as a signal handler would be."""
    (tmp_path / "tasks.py").write_text(TASKS)
    specs = [
        TaskSpec(name="env1.many", environment="env1", task="many", fn="tasks:many", root_dir=tmp_path),
        TaskSpec(name="env2.quick", environment="env2", task="quick", fn="tasks:quick", root_dir=tmp_path),
    ]
    runner: LocalRunner | None = None
    seen: list[ActionEvent] = []

    def on_event(event: ActionEvent) -> None:
        seen.append(event)
        if runner is not None and event.task == "env2.quick" and event.phase == Phase.RUNNING:
            runner.abort()  # inside the loop, between a launch and the next

    runner = LocalRunner(RunConfig(tasks={s.name: s for s in specs}, queues={}), log_dir=tmp_path / "logs",
                         on_event=on_event)  # fmt: skip
    result = runner.run("env1.many", {"n": 20})

    assert result.status == Phase.ABORTED
    pids = {event.record.pid for event in seen if event.record is not None and event.record.pid is not None}
    assert pids and proctree.wait_gone(pids, 5.0) == set()


def test_an_abort_before_the_run_starts_aborts_it(tmp_path: Path) -> None:
    """A signal that lands while the runner sets up (before any action exists) is not lost."""
    (tmp_path / "tasks.py").write_text(TASKS)
    spec = TaskSpec(name="env1.many", environment="env1", task="many", fn="tasks:many", root_dir=tmp_path)
    runner = LocalRunner(RunConfig(tasks={spec.name: spec}, queues={}), log_dir=tmp_path / "logs")
    runner.abort()
    started = time.monotonic()

    result = runner.run("env1.many", {"n": 3})

    assert result.status == Phase.ABORTED
    assert time.monotonic() - started < 5


def test_sigterm_right_after_the_runner_starts_exits_130(fan_out_config: Path) -> None:
    """SIGTERM in the first moments (imports, config loading, store) interrupts like Ctrl-C."""
    rng = random.Random(0)
    for _trial in range(3):
        code, err = _interrupt(fan_out_config, 3, signal.SIGTERM, rng.uniform(0.0, 0.3), launching=False)
        assert "Traceback" not in err, err
        assert code == 130, err


# -- a runner killed together with its fork servers -------------------------------------------------


@pytest.fixture(params=["cgroups", "watchdog", "reusable"])
def mode(request: pytest.FixtureRequest) -> str:
    if request.param != "watchdog" and not CGROUPS:
        pytest.skip("needs writable cgroups (root on a cgroup v1 or delegated v2 hierarchy)")
    return str(request.param)


@pytest.fixture
def killed_run(tmp_path: Path, mode: str) -> Iterator[tuple[Path, subprocess.Popen[bytes], list[int]]]:
    """A runner fanning out LEAVES leaves; yields (root, runner, every action's recorded pids)."""
    (tmp_path / "tasks.py").write_text(TASKS)
    (tmp_path / "run_it.py").write_text(RUNNER)
    env = dict(os.environ)
    if mode == "watchdog":
        env["FLYTE_DECL_NO_CGROUPS"] = "1"
    reusable, scrub = mode == "reusable", mode != "watchdog"  # only a cgroup holds a scrubbed child
    args = [str(tmp_path), str(LEAVES), str(int(reusable)), str(int(scrub))]
    process = subprocess.Popen([sys.executable, str(tmp_path / "run_it.py"), *args], env=env)
    files = [tmp_path / f"pids{i}" for i in range(LEAVES)]
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while not all(path.exists() for path in files):
            assert process.poll() is None, "the runner exited early"
            assert time.monotonic() < deadline, "the leaves never started"
            time.sleep(0.02)
        pids = [int(pid) for path in files for pid in path.read_text().split()]
        yield tmp_path, process, pids
    finally:
        for pid in pids:
            proctree.signal_pid(pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()
        process.wait()


def _kill_together(processes: list[int]) -> None:
    """SIGKILL all at once, as `kill -9 PID...` or the OOM killer: stopped first, so none reacts."""
    for pid in processes:
        proctree.signal_pid(pid, signal.SIGSTOP)
    for pid in processes:
        proctree.signal_pid(pid, signal.SIGKILL)


def _stale_cgroups(runner_pid: int) -> list[str]:
    mechanisms = detect_mechanisms()
    roots = {root for root in (mechanisms.cgroup_root, mechanisms.cpu_cgroup_root) if root}
    prefix = f"{CGROUP_PREFIX}{runner_pid}-"
    return [name for root in roots for name in os.listdir(root) if name.startswith(prefix)]


def test_actions_die_with_their_fork_server_without_help(
    killed_run: tuple[Path, subprocess.Popen[bytes], list[int]],
) -> None:
    _root, runner, pids = killed_run
    forkservers = proctree.children(runner.pid)
    assert forkservers

    _kill_together([runner.pid, *forkservers])
    runner.wait()

    assert sorted(proctree.wait_gone(pids, 5.0)) == []


def test_the_next_start_kills_what_a_killed_runner_left_behind(
    killed_run: tuple[Path, subprocess.Popen[bytes], list[int]], mode: str
) -> None:
    root, runner, pids = killed_run
    forkservers = proctree.children(runner.pid)
    # The kernel's list of a process's children may miss one it is forking or reaping meanwhile (a
    # fork server forks its next spare child after each launch): stopped first, the list is whole.
    for pid in [runner.pid, *forkservers]:
        proctree.signal_pid(pid, signal.SIGSTOP)
    for pid in forkservers:
        while proctree.process_state(pid) not in ("T", None):
            time.sleep(0.01)
    actions = [pid for server in forkservers for pid in proctree.children(server)]
    assert len(actions) >= 2  # the fan-out's caller and its leaves (or their warm workers)

    _kill_together([runner.pid, *forkservers, *actions])
    runner.wait()
    left = sorted(set(pids) - set(actions))
    assert all(proctree.is_alive(pid) for pid in left)  # no action was left to kill them
    marked = [pid for pid in left if proctree.environ_value(pid, RUNNER_MARK)]
    assert marked  # the runner's mark names them...
    if mode != "watchdog":
        assert len(marked) < len(left)  # ...except children started with an empty environment

    mechanisms: Mechanisms = detect_mechanisms(allow_cgroups=mode != "watchdog")
    spec = TaskSpec(name="env1.many", environment="env1", task="many", fn="tasks:many", root_dir=root)
    LocalRunner(RunConfig(tasks={spec.name: spec}, queues={}), log_dir=root / "logs", mechanisms=mechanisms)

    assert sorted(proctree.wait_gone(left, 5.0)) == []
    if mode != "watchdog":
        assert _stale_cgroups(runner.pid) == []


def test_the_sweep_leaves_a_live_runners_actions_alone(
    killed_run: tuple[Path, subprocess.Popen[bytes], list[int]], mode: str
) -> None:
    root, runner, pids = killed_run
    spec = TaskSpec(name="env1.many", environment="env1", task="many", fn="tasks:many", root_dir=root)

    LocalRunner(RunConfig(tasks={spec.name: spec}, queues={}), log_dir=root / "logs")

    assert all(proctree.is_alive(pid) for pid in pids)
    assert runner.poll() is None


def test_a_reused_pid_is_never_signalled() -> None:
    """A process is only signalled while it is the one whose start time was read."""
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        started = proctree.start_time(sleeper.pid)
        assert started is not None
        assert not proctree.signal_if_same(sleeper.pid, started + 1, signal.SIGKILL)
        assert proctree.is_alive(sleeper.pid)
        assert proctree.signal_if_same(sleeper.pid, started, signal.SIGKILL)
        assert sleeper.wait(5) == -signal.SIGKILL
    finally:
        sleeper.kill()
        sleeper.wait()
