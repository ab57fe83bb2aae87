"""cgroup v2 enforcement on a real unified hierarchy, in the VM that tests/vm/run.py boots.

The VM starts as root in the root cgroup with an empty ``cgroup.subtree_control`` and no systemd.
Tests run in file order: the first one needs the root cgroup untouched; the in-process runs after
it move this pytest process into a runner leaf of its own, as any runner does. Python in the VM
is about 30 times slower than on the host, so each test starts as few interpreters as it can.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flyte_decl.runtime import proctree
from flyte_decl.runtime.limits import Mechanisms, detect_mechanisms
from flyte_decl.runtime.records import FailureKind, Phase, RunResult
from flyte_decl.runtime.runner import LocalRunner
from flyte_decl.spec import Capacity, RunConfig, TaskSpec

MI = 2**20
ROOT = "/sys/fs/cgroup"
NOBODY = 65534
SLOW = 480  # seconds one command may take in the VM (seconds on a quiet machine; minutes on a loaded one)

TASKS = """
import hashlib, os, subprocess, threading, time

def own_cgroup():
    for line in open("/proc/self/cgroup"):
        if line.startswith("0::"):
            return "/sys/fs/cgroup" + line.strip()[3:].rstrip("/")

def cgroup_of(pid):
    for line in open(f"/proc/{pid}/cgroup"):
        if line.startswith("0::"):
            return "/sys/fs/cgroup" + line.strip()[3:].rstrip("/")

def where():
    cgroup = own_cgroup()
    return {
        "cgroup": cgroup,
        "memory.max": open(cgroup + "/memory.max").read().strip(),
        "cpu.max": open(cgroup + "/cpu.max").read().strip(),
        "fork server": cgroup_of(os.getppid()),
    }

def allocate():
    chunks = []
    while True:
        chunks.append(b"x" * (4 << 20))

def spin(seconds):
    # The kernel's own accounts, read in one go: CPU used (usage_usec) over the quota periods that
    # passed (nr_periods, 100 ms of the guest's clock each) and how many of them ran out of quota
    # (nr_throttled). Both come from one read of cpu.stat, just after a period began, so neither
    # this thread's scheduling (it is throttled with the others) nor the host's load shifts them.
    cgroup = own_cgroup()
    def stat():
        with open(cgroup + "/cpu.stat") as handle:
            return {key: int(value) for key, value in (line.split() for line in handle)}
    def period_begins():
        began = stat()["nr_periods"]
        while True:
            time.sleep(0.005)
            now = stat()
            if now["nr_periods"] != began:
                return now, time.monotonic()
    block = b"x" * (1 << 16)
    stop = time.monotonic() + seconds + 5
    def busy():
        while time.monotonic() < stop:
            hashlib.sha256(block).digest()  # releases the GIL: two threads, two cores
    for _ in range(2):
        threading.Thread(target=busy, daemon=True).start()
    time.sleep(1.0)
    first, began = period_begins()
    time.sleep(seconds)
    last, ended = period_begins()
    spun = {key: last[key] - first[key] for key in ("usage_usec", "nr_periods", "nr_throttled")}
    return {**spun, "wall_usec": round((ended - began) * 1e6), "cpu.max": open(cgroup + "/cpu.max").read().strip()}

def escape(pid_file):
    # A grandchild in its own session and a double-forked daemon: only the cgroup holds them all.
    session = subprocess.Popen(["sleep", "600"], start_new_session=True)
    read, write = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(write, b"%d" % os.getpid())
            time.sleep(600)
        os._exit(0)
    daemon = int(os.read(read, 32))
    with open(pid_file + ".tmp", "w") as handle:
        handle.write(f"{os.getpid()} {session.pid} {daemon}")
    os.rename(pid_file + ".tmp", pid_file)
    time.sleep(600)
"""

# The same tasks as a Flyte-style program, for the command line.
PROGRAM = """
import flyte_decl as flyte
import vmtasks

env = flyte.TaskEnvironment(name="vm", resources=flyte.Resources(cpu="500m", memory="96Mi"))

@env.task
def where() -> dict:
    return vmtasks.where()

@env.task
def hello() -> str:
    return "hi"

@env.task
def escape(pid_file: str) -> None:
    vmtasks.escape(pid_file)
"""


def read(path: str) -> str:
    with open(path) as handle:
        return handle.read().strip()


def write(path: str, value: str) -> None:
    with open(path, "w") as handle:
        handle.write(value)


def subtrees(base: str) -> list[str]:
    return sorted(name for name in os.listdir(base) if name.startswith("flyte-decl-"))


def children(cgroup: str) -> list[str]:
    return sorted(name for name in os.listdir(cgroup) if os.path.isdir(os.path.join(cgroup, name)))


@pytest.fixture
def folder() -> Iterator[Path]:
    """A folder with the task module and the program, readable (and its store writable) by anyone."""
    path = Path(tempfile.mkdtemp(prefix="vm-", dir="/tmp"))
    path.chmod(0o777 | stat.S_ISVTX)
    (path / "vmtasks.py").write_text(textwrap.dedent(TASKS))
    (path / "prog.py").write_text(textwrap.dedent(PROGRAM))
    for name in ("vmtasks.py", "prog.py"):
        (path / name).chmod(0o644)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def flyte_decl(
    *args: str,
    cwd: Path,
    cgroup: str | None = None,
    user: int | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """Start `flyte-decl ARGS` as a new process, first joined to `cgroup` and switched to `user`."""

    def confine() -> None:
        if cgroup is not None:
            write(os.path.join(cgroup, "cgroup.procs"), str(os.getpid()))
        if user is not None:
            os.setgroups([])
            os.setgid(user)
            os.setuid(user)

    environ = {**os.environ, "FLYTE_DECL_HOME": str(cwd / ".flyte-decl"), **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "flyte_decl", *args],
        cwd=cwd,
        env=environ,
        preexec_fn=confine,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=SLOW)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return process.returncode, out, err


def doctor(cwd: Path, **options: Any) -> dict[str, str]:
    code, out, err = finish(flyte_decl("doctor", "--format", "json", cwd=cwd, **options))
    assert code == 0, err
    enforcement: dict[str, str] = json.loads(out)["enforcement"]
    return enforcement


def delegate(name: str) -> str:
    """A cgroup made by root and chowned to nobody, with memory and cpu available to it."""
    for controller in ("memory", "cpu"):
        write(f"{ROOT}/cgroup.subtree_control", f"+{controller}")
    base = os.path.join(ROOT, name)
    os.makedirs(base, exist_ok=True)
    for path in (
        base,
        *(os.path.join(base, f) for f in ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads")),
    ):
        os.chown(path, NOBODY, NOBODY)
    return base


# --- 1. root with an empty subtree_control: no manual step ---------------------------------------


def test_root_with_empty_subtree_control_gets_cgroup_v2_from_doctor(folder: Path) -> None:
    assert read(f"{ROOT}/cgroup.subtree_control") == "", "needs a freshly booted VM, and this test first"
    assert read("/proc/self/cgroup") == "0::/"

    report = doctor(folder)

    assert report["memory"].startswith(f"cgroup v2 memory.max under {ROOT}/flyte-decl-"), report
    assert "(hierarchy root)" in report["memory"]
    assert report["cpu"].startswith(f"cgroup v2 cpu.max under {ROOT}/flyte-decl-"), report
    assert report["cgroups"] == f"cgroup v2, hierarchy root {ROOT}"
    assert {"memory", "cpu"} <= set(read(f"{ROOT}/cgroup.subtree_control").split())
    assert subtrees(ROOT) == [], "the doctor's subtree is removed when it exits"


# --- in-process runs: this pytest process becomes a runner in a leaf of its own ---------------------


@pytest.fixture(scope="module")
def mechanisms() -> Mechanisms:
    found = detect_mechanisms()
    assert (found.memory, found.cpu, found.situation) == ("cgroup-v2", "cgroup-v2", "hierarchy root"), found
    assert found.cgroup_root == f"{ROOT}/flyte-decl-{os.getpid()}"
    assert read("/proc/self/cgroup") == f"0::/flyte-decl-{os.getpid()}/runner"
    return found


def run(folder: Path, mechanisms: Mechanisms, task: str, inputs: dict[str, Any], **limits: Any) -> RunResult:
    spec = TaskSpec(
        name=f"vm.{task}", environment="vm", task=task, fn=f"vmtasks:{task}", root_dir=folder, **limits
    )
    config = RunConfig(tasks={spec.name: spec}, queues={}, capacity=Capacity())
    runner = LocalRunner(config, log_dir=folder / "logs", mechanisms=mechanisms)
    return runner.run(spec.name, inputs)


def test_memory_breach_is_oom_killed_by_the_kernel_with_no_overshoot(
    folder: Path, mechanisms: Mechanisms
) -> None:
    result = run(folder, mechanisms, "allocate", {}, memory_limit=64 * MI)

    record = result.actions[-1]
    assert record.kind == FailureKind.OOM_KILLED, record
    assert record.message.startswith("memory limit 64Mi exceeded (peak ")
    # memory.peak, and the kill counted in memory.events: the kernel lets it reach memory.max, never past.
    assert record.peak_memory is not None and 56 * MI <= record.peak_memory <= 64 * MI, record.peak_memory
    assert children(mechanisms.cgroup_root or "") == ["runner"], "the action's cgroup is removed"


def test_half_a_core_holds_two_busy_threads_to_half_a_core(folder: Path, mechanisms: Mechanisms) -> None:
    result = run(folder, mechanisms, "spin", {"seconds": 5.0}, cpu_limit=0.5)

    assert result.status == Phase.SUCCEEDED, result.error
    spun = result.outputs
    quota, period = (int(value) for value in spun["cpu.max"].split())
    assert (quota, period) == (50_000, 100_000), spun
    periods = spun["nr_periods"]
    # The periods the kernel counted are the window's length on the guest's clock...
    assert periods * period / spun["wall_usec"] == pytest.approx(1.0, abs=0.15), spun
    # ...the two threads, wanting two cores, ran out of quota in (nearly) every one of them...
    assert spun["nr_throttled"] >= 0.8 * periods, spun
    # ...and used half a core over them: what the kernel enforced, whatever the host's load.
    assert spun["usage_usec"] / (periods * period) == pytest.approx(0.50, abs=0.03), spun


def forkserver_logs(folder: Path) -> str:
    """What the fork servers of the command-line runs in `folder` wrote, for a failure's message."""
    return "\n".join(path.read_text() for path in sorted(folder.glob(".flyte-decl/logs/*/forkserver-*.log")))


def escape_pids(pid_file: Path, timeout: float = SLOW) -> list[int]:
    deadline = time.monotonic() + timeout
    while not pid_file.exists():
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.2)
    return [int(pid) for pid in pid_file.read_text().split()]


def test_timeout_kills_the_whole_tree(folder: Path, mechanisms: Mechanisms) -> None:
    pid_file = folder / "timeout.pids"
    # Long enough for the task to start its escapees even when the host's load slows the VM down.
    result = run(folder, mechanisms, "escape", {"pid_file": str(pid_file)}, timeout=30.0)

    assert result.actions[-1].kind == FailureKind.TIMED_OUT
    assert proctree.wait_gone(escape_pids(pid_file, 0), timeout=5.0) == set()
    assert children(mechanisms.cgroup_root or "") == ["runner"]


def test_abort_kills_the_whole_tree(folder: Path, mechanisms: Mechanisms) -> None:
    pid_file = folder / "abort.pids"
    spec = TaskSpec(name="vm.escape", environment="vm", task="escape", fn="vmtasks:escape", root_dir=folder)
    runner = LocalRunner(RunConfig(tasks={spec.name: spec}, queues={}, capacity=Capacity()),
                         log_dir=folder / "logs", mechanisms=mechanisms)  # fmt: skip
    pids: list[int] = []

    def abort_once_running() -> None:
        pids.extend(escape_pids(pid_file))
        runner.abort()

    aborter = threading.Thread(target=abort_once_running)
    aborter.start()
    result = runner.run(spec.name, {"pid_file": str(pid_file)})
    aborter.join()

    assert result.status == Phase.ABORTED
    assert len(pids) == 3 and proctree.wait_gone(pids, timeout=5.0) == set()
    assert children(mechanisms.cgroup_root or "") == ["runner"]


# --- 2. a delegated subtree, the runner an unprivileged user ------------------------------------


def test_delegated_subtree_for_an_unprivileged_runner(folder: Path) -> None:
    base = delegate("delegated")

    code, out, err = finish(
        flyte_decl("run", "prog.py", "where", "--json", cwd=folder, cgroup=base, user=NOBODY)
    )

    assert code == 0, err
    result = json.loads(out)
    where = result["outputs"]
    subtree = os.path.dirname(where["cgroup"])
    assert os.path.dirname(subtree) == base and os.path.basename(subtree).startswith("flyte-decl-")
    assert where["fork server"] == f"{subtree}/runner", "the runner and its fork servers live in a leaf"
    assert where["memory.max"] == str(96 * MI) and where["cpu.max"] == "50000 100000"
    assert "(delegated subtree)" in result["mechanisms"]["memory"]
    # The no-internal-process rule: the delegated cgroup hands out controllers and holds no process.
    assert {"memory", "cpu"} <= set(read(f"{base}/cgroup.subtree_control").split())
    assert read(f"{base}/cgroup.procs") == ""
    # The action's cgroup went with the action; the empty leaf goes at the next start, here one
    # started from a leaf of its own (base hands out controllers now, so it takes no process).
    assert children(subtree) == ["runner"]
    login = os.path.join(base, "login")
    os.mkdir(login)
    os.chown(os.path.join(login, "cgroup.procs"), NOBODY, NOBODY)
    os.chown(login, NOBODY, NOBODY)
    report = doctor(folder, cgroup=login, user=NOBODY)
    assert "(delegated subtree)" in report["memory"] and "(delegated subtree)" in report["cpu"]
    assert os.path.basename(subtree) not in subtrees(base), "the next start sweeps what the last one left"


def test_a_process_in_the_delegated_cgroup_means_no_subtree_and_says_why(folder: Path) -> None:
    # Another process already in the delegated cgroup: enabling controllers there breaks the
    # no-internal-process rule, so the runner stays portable, and says why in one line.
    base = delegate("occupied")
    squatter = subprocess.Popen(
        ["sleep", "600"], preexec_fn=lambda: write(f"{base}/cgroup.procs", str(os.getpid()))
    )
    try:
        report = doctor(folder, cgroup=base, user=NOBODY, env={"XDG_RUNTIME_DIR": ""})
    finally:
        squatter.kill()
        squatter.wait()
    assert report["memory"].startswith("/proc watchdog"), report
    assert report["cgroups"] == (
        f"no cgroup v2 subtree of our own (/occupied: holds other processes: pid {squatter.pid} (sleep); "
        "/: Permission denied); systemd's user manager is not running (XDG_RUNTIME_DIR is not set)"
    )
    assert subtrees(base) == []


# --- 3. a non-root user without a cgroup of their own: a systemd user scope, or the reason ------


def test_a_user_without_a_cgroup_re_executes_the_run_in_a_systemd_user_scope(folder: Path) -> None:
    # No systemd in the VM: a stand-in systemd-run (a shell script) records how it was called and execs the rest,
    # which then, as after a real scope that gave nothing, runs portably and says why.
    fake = folder / "bin" / "systemd-run"
    fake.parent.mkdir(mode=0o755)
    fake.write_text(
        textwrap.dedent(f"""\
        #!/bin/sh
        {{ for arg in "$@"; do echo "$arg"; done; echo "marker=$FLYTE_DECL_IN_SYSTEMD_SCOPE"; }} > {folder}/scope.argv
        while [ "$1" != "--" ]; do shift; done
        shift
        exec "$@"
        """)
    )
    fake.chmod(0o755)
    # The program's top level records each import: the runner decides on the scope before it imports
    # the program, so only the re-executed runner (and its fork server) import it.
    (folder / "once.py").write_text(
        textwrap.dedent(PROGRAM)
        + "import os\n"
        + "with open(__file__ + '.imports', 'a') as log:\n"
        + "    log.write(f\"{os.getpid()} {os.environ.get('FLYTE_DECL_IN_SYSTEMD_SCOPE', '')}\\n\")\n"
    )
    imports = folder / "once.py.imports"
    imports.write_text("")
    imports.chmod(0o666)
    runtime = folder / "run-user"
    runtime.mkdir(mode=0o755)
    (runtime / "bus").write_text("")  # where the user manager's bus would be
    env = {"PATH": f"{fake.parent}:{os.environ['PATH']}", "XDG_RUNTIME_DIR": str(runtime)}

    # Started in this runner's leaf, which belongs to root: nothing in cgroupfs is this user's.
    runner = flyte_decl("run", "once.py", "hello", cwd=folder, user=NOBODY, env=env)
    code, out, err = finish(runner)

    assert code == 0, err
    called = (folder / "scope.argv").read_text().splitlines()
    assert called[:7] == ["--user", "--scope", "-p", "Delegate=yes", "--quiet", "--collect", "--"]
    assert called[7:-1] == [sys.executable, "-m", "flyte_decl", "run", "once.py", "hello"]
    assert called[-1] == "marker=1", "the re-executed run is marked, so it never tries again"
    by_runner = [line for line in imports.read_text().splitlines() if line.split()[0] == str(runner.pid)]
    assert by_runner == [f"{runner.pid} 1"], "the program is imported once, after the re-exec"
    header = next(line for line in err.splitlines() if "enforced by" in line)
    assert "enforced by watchdog (memory), quota-throttle (cpu); no cgroup v2 subtree of our own (" in header
    assert "; already re-executed in a systemd scope, which gave no usable subtree" in header


# --- nothing left behind -------------------------------------------------------------------------


def test_sigkilled_runners_leave_no_process_and_no_cgroup_after_the_next_start(folder: Path) -> None:
    # Two runs at once (each start costs half a minute under emulation), each with an action whose
    # tree escapes every way it can. One runner is SIGKILLed alone: its fork server sees it go and
    # kills its actions' cgroups, even a member no process tree leads to. The other is SIGKILLed
    # with its fork servers, as by a tree-killing supervisor: the next start kills what is left.
    alone_file, together_file = folder / "alone.pids", folder / "together.pids"
    alone = flyte_decl("run", "prog.py", "escape", "--pid_file", str(alone_file), cwd=folder)
    together = flyte_decl("run", "prog.py", "escape", "--pid_file", str(together_file), cwd=folder)
    outsider = None
    try:
        alone_pids, together_pids = escape_pids(alone_file), escape_pids(together_file)
        alone_subtree, together_subtree = (f"{ROOT}/flyte-decl-{run.pid}" for run in (alone, together))
        action = ROOT + read(f"/proc/{alone_pids[0]}/cgroup").removeprefix("0::")
        assert os.path.dirname(action) == alone_subtree
        outsider = subprocess.Popen(
            ["sleep", "600"], preexec_fn=lambda: write(f"{action}/cgroup.procs", str(os.getpid()))
        )
        servers = proctree.children(alone.pid)
        assert servers, "the runner has its fork server"

        os.kill(alone.pid, signal.SIGKILL)
        alone.wait()

        try:
            outsider.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"the fork server did not kill its run's cgroups; its log:\n{forkserver_logs(folder)}"
            )
        assert outsider.returncode == -signal.SIGKILL, "cgroup.kill, before any next start"
        assert proctree.wait_gone([*alone_pids, *servers], timeout=60) == set()
        assert children(alone_subtree) == ["runner"], "the actions' cgroups went with them"

        doomed = [together.pid, *proctree.children(together.pid)]
        for pid in doomed:
            os.kill(pid, signal.SIGKILL)
        together.wait()
        assert proctree.wait_gone(doomed, timeout=5.0) == set()
        assert os.path.isdir(together_subtree)

        doctor(folder)  # the next start

        assert proctree.wait_gone(together_pids, timeout=5.0) == set()
        assert not os.path.exists(alone_subtree) and not os.path.exists(together_subtree)
    finally:
        for run in (alone, together):
            run.kill()
            run.communicate()
        if outsider is not None:
            outsider.kill()
            outsider.wait()


@pytest.fixture(autouse=True)
def _no_stray_processes() -> Iterator[None]:
    yield
    assert proctree.descendants(os.getpid()) == [], "a test left a process behind"
