"""Which cgroup v2 situation a runner finds, and what `doctor` and the run header say of it, in the VM.

Each test builds its situation from the hierarchy's root (as root, with no systemd in the VM): a
systemd host's login session, a container's cgroup namespace, a read-only cgroupfs. The runners of a
test start together, since each start costs seconds under emulation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cgroup_v2 import ROOT, _no_stray_processes, finish, flyte_decl, folder, write

from flyte_decl.runtime import cgroup2

__all__ = ["_no_stray_processes", "folder"]  # fixtures, used by name

MI = 2**20


def enable_at_root() -> None:
    for controller in ("memory", "cpu"):
        write(f"{ROOT}/cgroup.subtree_control", f"+{controller}")


def sleeper_in(cgroup: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["sleep", "600"], preexec_fn=lambda: write(f"{cgroup}/cgroup.procs", str(os.getpid()))
    )


@pytest.fixture
def cgroups() -> Iterator[list[str]]:
    """Cgroups a test makes (outermost first); each is killed and removed afterwards."""
    made: list[str] = []
    yield made
    for path in reversed(made):
        cgroup2.destroy(path)


def header(err: str) -> str:
    return next(line for line in err.splitlines() if "enforced by" in line)


# --- root on a systemd host, started from a login session or a service ------------------------------


def test_root_in_a_crowded_session_scope_gets_memory_and_cpu_at_the_hierarchy_root(
    folder: Path, cgroups: list[str]
) -> None:
    # systemd's shape: the root hands out memory and cpu, user.slice and user-0.slice hand out memory
    # only, and the session scope holds the login shell. The scope cannot hand out controllers (it
    # has a process), the slice offers memory only: root takes both at the hierarchy's root.
    enable_at_root()
    user_slice, user, session = (f"{ROOT}/user.slice", f"{ROOT}/user.slice/user-0.slice",
                                 f"{ROOT}/user.slice/user-0.slice/session-1.scope")  # fmt: skip
    for cgroup in (user_slice, user, session):
        os.mkdir(cgroup)
        cgroups.append(cgroup)
    for cgroup in (user_slice, user):
        write(f"{cgroup}/cgroup.subtree_control", "+memory")
    assert set(cgroup2.controllers(user, "cgroup.subtree_control")) == {"memory"}
    shell = sleeper_in(session)
    try:
        checking = flyte_decl("doctor", "--format", "json", cwd=folder, cgroup=session)
        running = flyte_decl("run", "prog.py", "where", cwd=folder, cgroup=session)
        checked, ran = finish(checking), finish(running)
    finally:
        shell.kill()
        shell.wait()
    assert checked[0] == 0 and ran[0] == 0, (checked, ran)
    report = json.loads(checked[1])["enforcement"]
    err = ran[2]

    assert report["memory"].startswith(f"cgroup v2 memory.max under {ROOT}/flyte-decl-"), report
    assert report["cpu"].startswith(f"cgroup v2 cpu.max under {ROOT}/flyte-decl-"), report
    assert "(hierarchy root)" in report["memory"] and "(hierarchy root)" in report["cpu"]
    assert report["cgroups"] == f"cgroup v2, hierarchy root {ROOT}"
    enforced = header(err).split("; enforced by ")[1].removesuffix("; `import flyte` is flyte-decl")
    assert enforced == "cgroup-v2 (memory), cgroup-v2 (cpu) in a hierarchy root", err


# --- a container with its own cgroup namespace ----------------------------------------------------


def entrypoint(folder: Path, cgroup: str, *args: str) -> subprocess.Popen[str]:
    """`flyte-decl ARGS` as a container's entrypoint would be: `cgroup` is the root of a cgroup
    namespace of its own, with cgroup2 mounted there at /sys/fs/cgroup (as Docker and Podman do)."""
    mount = 'umount /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$@"'
    return subprocess.Popen(
        [
            "unshare",
            "--cgroup",
            "--mount",
            "sh",
            "-c",
            mount,
            "sh",
            sys.executable,
            "-m",
            "flyte_decl",
            *args,
        ],
        cwd=folder,
        env={**os.environ, "FLYTE_DECL_HOME": str(folder / ".flyte-decl")},
        preexec_fn=lambda: write(f"{cgroup}/cgroup.procs", str(os.getpid())),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_container_entrypoint_gets_cgroup_v2_and_a_crowded_one_says_what_to_do(
    folder: Path, cgroups: list[str]
) -> None:
    enable_at_root()
    alone, crowded = f"{ROOT}/container-alone", f"{ROOT}/container-crowded"
    for cgroup in (alone, crowded):
        os.mkdir(cgroup)
        cgroups.append(cgroup)
    other = sleeper_in(crowded)  # a process of the container that is not flyte-decl's
    try:
        running = entrypoint(folder, alone, "run", "prog.py", "where", "--json")
        checking = entrypoint(folder, crowded, "doctor", "--format", "json")
        checked, ran = finish(checking), finish(running)
    finally:
        other.kill()
        other.wait()
    assert checked[0] == 0 and ran[0] == 0, (checked, ran)
    report = json.loads(checked[1])["enforcement"]
    result = json.loads(ran[1])

    # The only process of its namespace: the runner moves into a leaf and enables the controllers.
    assert (
        "(hierarchy root)" in result["mechanisms"]["memory"]
        and "(hierarchy root)" in result["mechanisms"]["cpu"]
    )
    where = result["outputs"]
    assert where["memory.max"] == str(96 * MI) and where["cpu.max"] == "50000 100000", where
    assert os.path.dirname(where["cgroup"]).startswith("/sys/fs/cgroup/flyte-decl-"), where
    # Beside another process, v2's no-internal-process rule forbids it; nothing is moved, and it says why.
    assert report["memory"].startswith("/proc watchdog") and report["cpu"].startswith("pinned to"), report
    assert report["cgroups"] == (
        f"no cgroup v2 subtree of our own (/: holds other processes: pid {other.pid} (sleep)); "
        "in a container, run flyte-decl as its entrypoint or give it a delegated cgroup subtree"
    )


# --- a read-only cgroupfs -------------------------------------------------------------------------


def test_a_read_only_cgroupfs_says_so(folder: Path) -> None:
    # As a container without a writable cgroup namespace sees it.
    read_only = 'mount -o remount,bind,ro /sys/fs/cgroup && exec "$@"'
    process = subprocess.Popen(
        ["unshare", "--mount", "sh", "-c", read_only, "sh", sys.executable, "-m", "flyte_decl", "doctor",
         "--format", "json"],
        cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    code, out, err = finish(process)
    assert code == 0, err
    report = json.loads(out)["enforcement"]
    assert report["memory"].startswith("/proc watchdog") and report["cpu"].startswith("pinned to"), report
    assert report["cgroups"] == f"the cgroup v2 hierarchy at {ROOT} is mounted read-only"
