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

from flyte_decl.runtime import cgroup2, proctree
from flyte_decl.runtime.limits import Mechanisms, detect_mechanisms
from flyte_decl.runtime.records import FailureKind, Phase, RunResult
from flyte_decl.runtime.runner import LocalRunner
from flyte_decl.spec import Capacity, RunConfig, TaskSpec

MI = 2**20
ROOT = "/sys/fs/cgroup"
NOBODY = 65534
SLOW = 480  # seconds one command may take in the VM (seconds on a quiet machine; minutes on a loaded one)

TASKS = """
import ctypes, hashlib, os, shutil, signal, threading, time

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
    # A daemon that escapes all but its cgroup: not below this action (which stops being a subreaper,
    # so the daemon is adopted above it and the action's lifeline kill misses it), in a session of
    # its own, deaf to SIGTERM, holding no inherited descriptor (the lifeline), without the runner's mark.
    ctypes.CDLL(None).prctl(36, 0, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER, off
    environ = {key: value for key, value in os.environ.items() if key != "FLYTE_DECL_RUNNER"}
    sleep = shutil.which("sleep")
    read, write = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.setsid()
        if os.fork() == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # kept across exec
            os.write(write, b"%d" % os.getpid())
            os.closerange(3, 1 << 16)
            os.execve(sleep, ["sleep", "600"], environ)
        os._exit(0)
    os.waitpid(middle, 0)
    daemon = int(os.read(read, 32))
    with open(pid_file + ".tmp", "w") as handle:
        handle.write(f"{os.getpid()} {daemon}")
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


def cgroup_of(pid: int) -> str:
    return ROOT + read(f"/proc/{pid}/cgroup").removeprefix("0::")


def join(cgroup: str) -> subprocess.Popen[bytes]:
    """`sleep 600` as a member of `cgroup`: no process tree, group, session or mark leads to it."""
    return subprocess.Popen(
        ["sleep", "600"], preexec_fn=lambda: write(f"{cgroup}/cgroup.procs", str(os.getpid()))
    )


class Escapees:
    """Once the `escape` task runs: its pids, and a process that joined its cgroup from outside."""

    def __init__(self, pid_file: Path, then: Any = None) -> None:
        self.pids: list[int] = []
        self.outsider: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._watch, args=(pid_file, then))
        self._thread.start()

    def _watch(self, pid_file: Path, then: Any) -> None:
        self.pids = escape_pids(pid_file)
        self.cgroup, self.daemon_cgroup = cgroup_of(self.pids[0]), cgroup_of(self.pids[1])
        self.outsider = join(self.cgroup)
        if then is not None:
            then()

    def assert_all_gone(self, cgroup_root: str | None) -> None:
        self._thread.join()
        assert self.outsider is not None and len(self.pids) == 2, self.pids
        try:
            assert self.daemon_cgroup == self.cgroup, "the daemon is in the action's cgroup"
            assert self.outsider.wait(timeout=5.0) == -signal.SIGKILL, "cgroup.kill reaches what no tree does"
        finally:
            self.outsider.kill()
            self.outsider.wait()
        assert proctree.wait_gone(self.pids, timeout=5.0) == set(), "the daemon is gone"
        assert children(cgroup_root or "") == ["runner"], "the action's cgroup is removed"


def test_timeout_kills_the_whole_tree(folder: Path, mechanisms: Mechanisms) -> None:
    pid_file = folder / "timeout.pids"
    escapees = Escapees(pid_file)
    # Long enough for the task to start its escapees even when the host's load slows the VM down.
    result = run(folder, mechanisms, "escape", {"pid_file": str(pid_file)}, timeout=30.0)

    assert result.actions[-1].kind == FailureKind.TIMED_OUT
    escapees.assert_all_gone(mechanisms.cgroup_root)


def test_abort_kills_the_whole_tree(folder: Path, mechanisms: Mechanisms) -> None:
    pid_file = folder / "abort.pids"
    spec = TaskSpec(name="vm.escape", environment="vm", task="escape", fn="vmtasks:escape", root_dir=folder)
    runner = LocalRunner(RunConfig(tasks={spec.name: spec}, queues={}, capacity=Capacity()),
                         log_dir=folder / "logs", mechanisms=mechanisms)  # fmt: skip
    escapees = Escapees(pid_file, then=runner.abort)

    result = runner.run(spec.name, {"pid_file": str(pid_file)})

    assert result.status == Phase.ABORTED
    escapees.assert_all_gone(mechanisms.cgroup_root)


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
    # Two runs at once (each start costs half a minute under emulation), each with an action that
    # leaves a daemon only its cgroup holds. One runner is SIGKILLed alone: its fork server sees it
    # go and kills its actions' cgroups, even a member no process tree leads to. The other, in a
    # scope of a user manager as a re-executed run is, is SIGKILLed with its fork servers, as by a
    # tree-killing supervisor: its daemon lives on until the next start, in a new scope, kills it.
    app = f"{ROOT}/user.slice/user@0.service/app.slice"
    old_scope, new_scope = f"{app}/run-u1.scope", f"{app}/run-u2.scope"
    for cgroup in (old_scope, new_scope):
        os.makedirs(cgroup)
    for parent in (ROOT, *(app.rsplit("/", depth)[0] for depth in (2, 1, 0))):
        write(f"{parent}/cgroup.subtree_control", "+memory +cpu")
    scoped = {"FLYTE_DECL_IN_SYSTEMD_SCOPE": "1"}
    alone_file, together_file = folder / "alone.pids", folder / "together.pids"
    alone = flyte_decl("run", "prog.py", "escape", "--pid_file", str(alone_file), cwd=folder)
    together = flyte_decl(
        "run", "prog.py", "escape", "--pid_file", str(together_file), cwd=folder, cgroup=old_scope, env=scoped
    )
    outsider = None
    try:
        alone_pids, together_pids = escape_pids(alone_file), escape_pids(together_file)
        alone_subtree, together_subtree = (
            f"{ROOT}/flyte-decl-{alone.pid}",
            f"{old_scope}/flyte-decl-{together.pid}",
        )
        action = cgroup_of(alone_pids[0])
        assert os.path.dirname(action) == alone_subtree
        outsider = join(action)
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

        together_action, daemon = together_pids
        assert os.path.dirname(cgroup_of(daemon)) == together_subtree
        doomed = [together.pid, *proctree.children(together.pid)]
        for pid in doomed:
            os.kill(pid, signal.SIGKILL)
        together.wait()
        assert proctree.wait_gone(doomed, timeout=5.0) == set()
        assert proctree.wait_gone([together_action], timeout=60) == set(), "the action's lifeline ends it"
        assert proctree.wait_gone([daemon], timeout=2.0) == {daemon}, "the daemon outlives them all"
        assert os.path.dirname(cgroup_of(daemon)) == together_subtree

        doctor(folder, cgroup=new_scope, env=scoped)  # the next start, in a scope of its own

        assert proctree.wait_gone([daemon], timeout=5.0) == set(), "the next start's sweep kills it"
        assert not os.path.exists(together_subtree), "and removes the subtree it left in its old scope"
        assert not os.path.exists(alone_subtree)
    finally:
        for run in (alone, together):
            run.kill()
            run.communicate()
        if outsider is not None:
            outsider.kill()
            outsider.wait()
        cgroup2.destroy(f"{ROOT}/user.slice")


@pytest.fixture(autouse=True)
def _no_stray_processes() -> Iterator[None]:
    yield
    assert proctree.descendants(os.getpid()) == [], "a test left a process behind"
