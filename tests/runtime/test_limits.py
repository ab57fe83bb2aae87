"""Limits enforced on real process trees, with cgroups (where writable) and with the portable path.

Each action is started the way the runtime starts one: a forked child that calls ``os.setsid()``,
applies its ChildSetup, becomes a child subreaper for its own tree, then runs the task (here a
fresh interpreter running a small script). Allocation scripts report their progress through a
pipe, so the memory actually reached when the kill came is measured from the inside.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import signal
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from flyte_decl.runtime import cgpool, proctree
from flyte_decl.runtime.limits import (
    ENV_NO_CGROUPS,
    MEMORY_POLL_INTERVAL,
    OOM_RECHECK_INTERVAL,
    SAMPLE_INTERVAL,
    THROTTLE_CHECK_INTERVAL,
    ActionLimiter,
    Breach,
    ChildSetup,
    CpuPool,
    Limits,
    Mechanisms,
    Monitor,
    Usage,
    detect_mechanisms,
)

MiB = 1 << 20

# The allocation loop of every memory test: 8 MiB written chunks as fast as possible
# (about 2.5 GiB/s here), each followed by a report of the MiB allocated so far.
ALLOCATE = """
import os
chunks = []
while True:
    chunks.append(b"x" * (8 << 20))
    os.write(REPORT, b"%d\\n" % (8 * len(chunks)))
"""
# An intermediate process waits while its child allocates.
GRANDCHILD_ALLOCATES = f"""
import subprocess, sys, time
code = "REPORT = %d\\n" % REPORT + {ALLOCATE!r}
subprocess.run([sys.executable, "-c", code], pass_fds=[REPORT])
time.sleep(30)
"""


@pytest.fixture(params=["cgroups", "portable"])
def mechanisms(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Mechanisms:
    """Every mechanism test runs twice: with the machine's cgroups, and forced onto the portable path."""
    if request.param == "portable":
        monkeypatch.setenv(ENV_NO_CGROUPS, "1")
        found = detect_mechanisms()
        assert found == Mechanisms("watchdog", "quota-throttle", note=f"{ENV_NO_CGROUPS}=1 turns cgroups off")
        return found
    return detect_mechanisms()


def require_cgroup(mechanisms: Mechanisms, resource: str) -> None:
    """Skip the cgroup variant of a test on a machine where that controller is not writable."""
    if resource == "memory" and mechanisms.memory == "watchdog" and not os.environ.get(ENV_NO_CGROUPS):
        pytest.skip("no writable memory cgroup here (needs a v2 memory controller or v1 memory mount)")
    if resource == "cpu" and mechanisms.cpu == "quota-throttle" and not os.environ.get(ENV_NO_CGROUPS):
        pytest.skip("no writable cpu cgroup here (needs a v2 cpu controller or v1 cpu mount)")


@pytest.fixture(scope="module")
def monitor() -> Iterator[Monitor]:
    monitor = Monitor()
    yield monitor
    monitor.stop()


def spawn(script: str, setup: ChildSetup, report_fd: int, *, favoured: bool = False) -> int:
    """Fork an action the way the fork server does, running `script` with REPORT = `report_fd`.

    `favoured` raises the action's scheduling weight against other work on a shared machine, so
    a CPU measurement is not starved by neighbours; weight never lifts a quota or an affinity.
    """
    code = f"REPORT = {report_fd}\n" + textwrap.dedent(script)
    if favoured:
        for procs in setup.cgroup_procs:
            with (
                contextlib.suppress(OSError),
                open(os.path.join(os.path.dirname(procs), "cpu.shares"), "w") as f,
            ):
                f.write("262144")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.setsid()
            if favoured:  # setsid() gave us a new autogroup: weigh it like nice -20
                with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as f:
                    f.write("-20")
            setup.apply()
            proctree.set_child_subreaper()
            os.execv(sys.executable, [sys.executable, "-c", code])
        finally:
            os._exit(127)
    return pid


@dataclass
class Outcome:
    breach: Breach | None
    usage: Usage
    status: int | None  # wait status of the main process, None if it was still running at the deadline
    reports: list[str]
    cgroup_dirs: list[str]


class Action:
    """One running action under an ActionLimiter registered with the monitor."""

    def __init__(
        self, mechanisms: Mechanisms, limits: Limits, script: str, monitor: Monitor, *, favoured: bool = False
    ) -> None:
        self.monitor = monitor
        self.limiter = ActionLimiter("test-action", limits, mechanisms, CpuPool())
        self.setup = self.limiter.child_setup()
        self._read, write = os.pipe()
        os.set_inheritable(write, True)
        self.pid = spawn(script, self.setup, write, favoured=favoured)
        os.close(write)
        self.limiter.attach(self.pid)
        self.breaches: queue.Queue[Breach] = queue.Queue()
        monitor.add(self.limiter, self.breaches.put)
        self._buffer = b""

    def read_line(self, timeout: float = 10.0) -> str:
        """The next line the action reported."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([self._read], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(self._read, 65536) if ready else b""
            if not chunk:
                raise AssertionError(f"the action reported nothing within {timeout}s")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def finish(self, timeout: float) -> Outcome:
        """Wait up to `timeout` s for the main process to end, then unregister, close and reap."""
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
            status = None
            time.sleep(0.01)
        self.monitor.remove(self.limiter)
        usage = self.limiter.close()
        if status is None:
            os.waitpid(self.pid, 0)
        while select.select([self._read], [], [], 0)[0] and (chunk := os.read(self._read, 65536)):
            self._buffer += chunk
        reports = self._buffer.decode().split()
        os.close(self._read)
        breach = None if self.breaches.empty() else self.breaches.get()
        cgroup_dirs = [os.path.dirname(procs) for procs in self.setup.cgroup_procs]
        return Outcome(breach, usage, status, reports, cgroup_dirs)


def assert_cleaned_up(outcome: Outcome) -> None:
    """Nothing is left once the run ends: a cgroup kept for reuse is empty, and the drain removes it."""
    for directory in outcome.cgroup_dirs:
        if os.path.exists(directory):
            assert proctree.cgroup_members(os.path.join(directory, "cgroup.procs")) == []
    cgpool.POOL.drain()
    for directory in outcome.cgroup_dirs:
        assert not os.path.exists(directory), f"cgroup {directory} left behind"


@pytest.mark.parametrize("grandchild", [False, True], ids=["child", "grandchild"])
def test_memory_breach_is_killed_with_small_overshoot(
    mechanisms: Mechanisms, monitor: Monitor, grandchild: bool
) -> None:
    require_cgroup(mechanisms, "memory")
    limit = 250 * MiB
    script = GRANDCHILD_ALLOCATES if grandchild else ALLOCATE
    action = Action(mechanisms, Limits(memory=limit), script, monitor)
    outcome = action.finish(timeout=15)

    assert outcome.breach is not None, outcome
    assert outcome.breach.kind == "oom_killed"
    assert outcome.breach.limit == limit
    assert outcome.breach.message.startswith("memory limit 250Mi exceeded (peak ")
    assert outcome.usage.breach == outcome.breach
    assert outcome.status is not None and os.WIFSIGNALED(outcome.status)
    assert os.WTERMSIG(outcome.status) == signal.SIGKILL
    allocated = int(outcome.reports[-1]) * MiB  # what the allocator had when it was stopped
    assert allocated < limit + 64 * MiB
    assert outcome.breach.peak - limit < 64 * MiB
    assert outcome.usage.peak_memory >= outcome.breach.peak
    assert_cleaned_up(outcome)


def test_kernel_oom_kill_noticed_only_after_exit_is_still_reported(mechanisms: Mechanisms) -> None:
    # The kernel kills the action before any poll; remove() and close() still attribute it.
    require_cgroup(mechanisms, "memory")
    if mechanisms.memory == "watchdog":
        pytest.skip("only a cgroup kills without the limiter looking")
    limiter = ActionLimiter("late", Limits(memory=100 * MiB), mechanisms, CpuPool())
    setup = limiter.child_setup()
    read, write = os.pipe()
    os.set_inheritable(write, True)
    pid = spawn(ALLOCATE, setup, write)
    os.close(write)
    limiter.attach(pid)
    _, status = os.waitpid(pid, 0)
    os.close(read)
    assert os.WTERMSIG(status) == signal.SIGKILL
    late: list[Breach] = []
    monitor = Monitor()
    monitor.add(limiter, late.append)
    monitor.remove(limiter)
    monitor.stop()
    usage = limiter.close()
    assert len(late) == 1 and late[0].kind == "oom_killed"
    assert usage.breach == late[0]
    assert usage.peak_memory == 100 * MiB  # the kernel's high-water mark: exactly the limit


def test_kernel_oom_kill_wakes_its_watch_and_is_attributed_from_it() -> None:
    # The OOM event, not a poll: the watched descriptor polls ready, and oom_event() attributes it.
    mechanisms = detect_mechanisms()
    if mechanisms.memory == "watchdog":
        pytest.skip("no writable memory cgroup here (needs a v2 memory controller or v1 memory mount)")
    limiter = ActionLimiter("watched", Limits(memory=100 * MiB), mechanisms, CpuPool())
    setup = limiter.child_setup()
    assert limiter.oom_watch is not None
    assert limiter.poll_interval == SAMPLE_INTERVAL  # no memory poll: the kernel's event wakes the Monitor
    fd, mask = limiter.oom_watch
    read, write = os.pipe()
    os.set_inheritable(write, True)
    pid = spawn(ALLOCATE, setup, write)
    os.close(write)
    limiter.attach(pid)
    poller = select.poll()
    poller.register(fd, mask)
    assert poller.poll(15_000), "no OOM event within 15 s"
    breach = limiter.oom_event()
    if breach is None:  # out of memory, the kill not counted yet: the Monitor looks again every 2 ms
        assert limiter.poll_interval == OOM_RECHECK_INTERVAL
        deadline = time.monotonic() + 1
        while breach is None and time.monotonic() < deadline:
            time.sleep(OOM_RECHECK_INTERVAL)
            breach = limiter.poll()
    os.waitpid(pid, 0)
    os.close(read)
    usage = limiter.close()
    assert breach == Breach("oom_killed", "memory limit 100Mi exceeded (peak 100.0Mi)", 100 * MiB, 100 * MiB)
    assert usage.breach == breach
    assert limiter.oom_watch is None  # closed with the cgroup
    assert limiter.oom_event() is None  # after close: nothing, once


def test_only_an_unwatched_memory_limit_is_polled_every_10_ms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_NO_CGROUPS, "1")
    watchdog = ActionLimiter("portable", Limits(memory=100 * MiB), detect_mechanisms(), CpuPool())
    watchdog.child_setup()
    assert watchdog.oom_watch is None
    assert watchdog.poll_interval == MEMORY_POLL_INTERVAL
    throttled = ActionLimiter("throttled", Limits(cpu=0.5), detect_mechanisms(), CpuPool())
    throttled.child_setup()
    assert throttled.poll_interval == THROTTLE_CHECK_INTERVAL
    for limiter in (watchdog, throttled):
        limiter.close()


def test_copy_on_write_fork_tree_is_not_killed(mechanisms: Mechanisms, monitor: Monitor) -> None:
    # Summed RSS is about 4 x 200 MiB; the pages are shared, so PSS (and the cgroup) see ~200 MiB.
    script = """
    import os, time
    data = b"x" * (200 << 20)
    children = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:
            time.sleep(1.2)
            os._exit(0)
        children.append(pid)
    os.write(REPORT, b"forked\\n")
    for pid in children:
        os.waitpid(pid, 0)
    """
    action = Action(mechanisms, Limits(memory=300 * MiB), script, monitor)
    assert action.read_line() == "forked"
    outcome = action.finish(timeout=10)

    assert outcome.breach is None
    assert outcome.status is not None and os.waitstatus_to_exitcode(outcome.status) == 0
    assert 200 * MiB < outcome.usage.peak_memory < 300 * MiB
    assert_cleaned_up(outcome)


# Two threads hashing (hashlib releases the GIL) keep two cores busy without limits.
BUSY_THREADS = """
import hashlib, os, threading
block = b"x" * (1 << 20)
def spin():
    while True:
        hashlib.sha256(block).digest()
for _ in range(2):
    threading.Thread(target=spin, daemon=True).start()
os.write(REPORT, b"busy\\n")
threading.Event().wait()
"""


@pytest.mark.requires_root(
    "raising the action's scheduling weight (autogroup nice -20), without which a CPU measurement starves on a shared machine"
)
@pytest.mark.parametrize(("cpu", "window"), [(0.5, 3.0), (1.5, 1.5)])
def test_cpu_limit_holds_for_two_busy_threads(
    mechanisms: Mechanisms, monitor: Monitor, cpu: float, window: float
) -> None:
    if os.cpu_count() is None or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two cores to show two busy threads being held back")
    require_cgroup(mechanisms, "cpu")
    action = Action(mechanisms, Limits(cpu=cpu), BUSY_THREADS, monitor, favoured=True)
    assert action.read_line() == "busy"
    time.sleep(0.3)  # let the throttle's first periods settle
    cpu_start, wall_start = proctree.cpu_seconds(action.pid), time.monotonic()
    time.sleep(window)
    cpu_end, wall_end = proctree.cpu_seconds(action.pid), time.monotonic()
    action.limiter.kill()
    outcome = action.finish(timeout=5)

    assert cpu_start is not None and cpu_end is not None
    cores = (cpu_end - cpu_start) / (wall_end - wall_start)
    if cpu <= 1:
        assert cores == pytest.approx(cpu, abs=0.05)
    else:
        # Never above the limit; below it only when other work shares this 2-core machine.
        assert cpu - 0.3 <= cores <= cpu + 0.05
    assert outcome.usage.cpu_seconds >= cpu_end
    assert outcome.usage.samples, "CPU and memory are sampled for plots"
    assert_cleaned_up(outcome)


# The main process starts a grandchild in its own session and a double-forked daemon, reports
# their pids, and waits.
ESCAPING_DESCENDANTS = """
import os, subprocess, time
session = subprocess.Popen(["sleep", "60"], start_new_session=True)
read, write = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(write, b"%d" % os.getpid())
        time.sleep(60)
    os._exit(0)
daemon = int(os.read(read, 32))
os.write(REPORT, b"%d %d\\n" % (session.pid, daemon))
time.sleep(EXIT_AFTER)
"""


def test_kill_reaches_setsid_grandchild_and_double_forked_daemon(
    mechanisms: Mechanisms, monitor: Monitor
) -> None:
    script = ESCAPING_DESCENDANTS.replace("EXIT_AFTER", "60")
    action = Action(mechanisms, Limits(memory=500 * MiB, cpu=1), script, monitor)
    session, daemon = map(int, action.read_line().split())
    assert proctree.is_alive(session) and proctree.is_alive(daemon)
    action.limiter.kill()
    action.limiter.kill()  # idempotent

    assert proctree.wait_gone([action.pid, session, daemon], timeout=2.0) == set()
    outcome = action.finish(timeout=2)
    assert outcome.breach is None
    assert outcome.status is not None and os.WTERMSIG(outcome.status) == signal.SIGKILL
    assert_cleaned_up(outcome)


def test_close_kills_what_an_ended_action_left_behind(mechanisms: Mechanisms, monitor: Monitor) -> None:
    # The main process exits normally; its daemons escape the tree (re-parented outside it).
    # cgroup membership still names them; on the portable path the limiter saw them while polling.
    script = ESCAPING_DESCENDANTS.replace("EXIT_AFTER", "0.3")
    action = Action(mechanisms, Limits(memory=500 * MiB), script, monitor)
    session, daemon = map(int, action.read_line().split())
    outcome = action.finish(timeout=5)

    assert outcome.status is not None and os.waitstatus_to_exitcode(outcome.status) == 0
    assert proctree.wait_gone([session, daemon], timeout=2.0) == set()
    assert_cleaned_up(outcome)


def test_close_is_idempotent_and_releases_cores(mechanisms: Mechanisms) -> None:
    pool = CpuPool([0, 1])
    limiter = ActionLimiter("idle", Limits(memory=64 * MiB, cpu=0.5), mechanisms, pool)
    setup = limiter.child_setup()
    dirs = [os.path.dirname(procs) for procs in setup.cgroup_procs]
    assert all(os.path.isdir(directory) for directory in dirs)
    first = limiter.close()
    assert limiter.close() is first
    assert first.breach is None and first.cpu_seconds == 0.0
    cgpool.POOL.drain()  # the end of a run
    assert not any(os.path.exists(directory) for directory in dirs)
    # Whatever was pinned went back to the pool: two single cores are free again.
    assert {next(iter(pool.acquire(1))), next(iter(pool.acquire(1)))} == {0, 1}


def test_portable_setup_pins_cores_and_sets_the_data_backstop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_NO_CGROUPS, "1")
    limiter = ActionLimiter("a", Limits(memory=250 * MiB, cpu=1.5), detect_mechanisms(), CpuPool([0, 1, 2]))
    setup = limiter.child_setup()
    assert setup == ChildSetup(cgroup_procs=(), cpus=frozenset({0, 1}), data_rlimit=250 * MiB + (1 << 30))
    assert limiter.poll_interval == 0.005  # 1.5 of 2 pinned cores: the throttle runs
    limiter.close()


def test_cpu_pool_spreads_load() -> None:
    pool = CpuPool([0, 1, 2, 3])
    first, second = pool.acquire(2), pool.acquire(2)
    assert first | second == {0, 1, 2, 3}
    pool.release(first)
    assert pool.acquire(1) <= first  # the least-loaded cores come first
    assert pool.acquire(9) == {0, 1, 2, 3}  # clamped to the pool


def test_mechanisms_describe_every_combination() -> None:
    for memory in ("cgroup-v2", "cgroup-v1", "watchdog"):
        for cpu in ("cgroup-v2", "cgroup-v1", "quota-throttle"):
            lines = Mechanisms(memory, cpu, "/sys/fs/cgroup/x").describe()
            assert set(lines) == {"memory", "cpu"} and all(lines.values())


# -- reuse of per-action cgroups (cgroup v1) ------------------------------------------------------

HOLD = """
import os
data = b"x" * (MEGABYTES << 20)
os.write(REPORT, b"held\\n")
"""


def run_to_end(mechanisms: Mechanisms, limits: Limits, script: str) -> tuple[ChildSetup, Usage, int]:
    """One action from its cgroups' creation to its close; (setup, usage, wait status)."""
    limiter = ActionLimiter("reuse", limits, mechanisms, CpuPool())
    setup = limiter.child_setup()
    read, write = os.pipe()
    os.set_inheritable(write, True)
    pid = spawn(script, setup, write)
    os.close(write)
    limiter.attach(pid)
    _, status = os.waitpid(pid, 0)
    os.close(read)
    return setup, limiter.close(), status


def v1_only() -> Mechanisms:
    mechanisms = detect_mechanisms()
    if mechanisms.memory != "cgroup-v1" or mechanisms.cpu != "cgroup-v1":
        pytest.skip("per-action cgroups are reused on cgroup v1 only")
    return mechanisms


def read(cgroup: str, name: str) -> str:
    with open(os.path.join(cgroup, name)) as handle:
        return handle.read().strip()


def test_a_cgroup_is_reused_reset_with_the_next_actions_limits() -> None:
    mechanisms = v1_only()
    cgpool.POOL.drain()
    first, usage, _ = run_to_end(
        mechanisms, Limits(memory=200 * MiB, cpu=0.5), HOLD.replace("MEGABYTES", "60")
    )
    assert usage.breach is None and usage.peak_memory > 60 * MiB
    # The next action (a higher memory limit, another CPU quota) gets the same, reset cgroups.
    second, usage, status = run_to_end(
        mechanisms, Limits(memory=300 * MiB, cpu=1.0), HOLD.replace("MEGABYTES", "1")
    )
    assert second.cgroup_procs == first.cgroup_procs and os.waitstatus_to_exitcode(status) == 0
    memory, cpu = (os.path.dirname(procs) for procs in second.cgroup_procs)
    assert usage.peak_memory < 40 * MiB  # its own peak, not the first action's 60 MiB
    assert read(memory, "memory.limit_in_bytes") == str(300 * MiB)
    assert read(cpu, "cpu.cfs_quota_us") == "100000"
    # A lower limit again, then none: each takes.
    third, usage, _ = run_to_end(
        mechanisms, Limits(memory=100 * MiB, cpu=0.5), HOLD.replace("MEGABYTES", "1")
    )
    assert third.cgroup_procs == first.cgroup_procs
    assert read(memory, "memory.limit_in_bytes") == str(100 * MiB)
    assert cgpool.POOL.drain() == 2
    assert not os.path.exists(memory) and not os.path.exists(cpu)


def test_a_cgroup_the_kernel_oom_killed_in_is_removed_not_reused() -> None:
    mechanisms = v1_only()
    cgpool.POOL.drain()
    setup, usage, status = run_to_end(mechanisms, Limits(memory=64 * MiB), ALLOCATE)
    assert os.WTERMSIG(status) == signal.SIGKILL
    assert usage.breach is not None and usage.breach.message == "memory limit 64Mi exceeded (peak 64.0Mi)"
    (memory,) = (os.path.dirname(procs) for procs in setup.cgroup_procs)
    assert not os.path.exists(memory)  # its oom_kill counter cannot be reset
    # So the next action's attribution starts from zero, in a new cgroup.
    after, usage, status = run_to_end(mechanisms, Limits(memory=64 * MiB), HOLD.replace("MEGABYTES", "1"))
    assert os.waitstatus_to_exitcode(status) == 0 and usage.breach is None
    assert after.cgroup_procs != setup.cgroup_procs
    cgpool.POOL.drain()


def test_a_cgroup_still_charged_with_shared_memory_is_removed_not_reused() -> None:
    mechanisms = v1_only()
    cgpool.POOL.drain()
    # 8 MiB in /dev/shm outlive the action and stay charged to its cgroup: not "as good as new".
    name = f"/dev/shm/flyte-decl-test-{os.getpid()}"
    script = f"""
    with open({name!r}, "wb") as handle:
        handle.write(b"x" * (8 << 20))
    """
    try:
        setup, usage, status = run_to_end(mechanisms, Limits(memory=64 * MiB), script)
        assert os.waitstatus_to_exitcode(status) == 0
        (memory,) = (os.path.dirname(procs) for procs in setup.cgroup_procs)
        assert not os.path.exists(memory) or cgpool.POOL.take(mechanisms.cgroup_root or "") is None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        cgpool.POOL.drain()
