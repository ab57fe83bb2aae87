"""cgroup v2 subtree helpers and the systemd user scope, on this machine (the cgroup v2 kernel paths
themselves are tested in a VM: tests/vm)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flyte_decl.cli.doctor import _cgroups
from flyte_decl.runtime import cgroup2, proctree
from flyte_decl.runtime.limits import Mechanisms, detect_mechanisms, mechanisms_in, own_cgroup_dirs


@pytest.fixture
def fake_systemd_run(tmp_path: Path) -> Path:
    """A `systemd-run` that records its arguments and the marker, then execs what follows `--`."""
    script = tmp_path / "bin" / "systemd-run"
    script.parent.mkdir()
    script.write_text(
        textwrap.dedent(f"""\
        #!{sys.executable}
        import os, sys
        with open({str(tmp_path / "argv")!r}, "w") as handle:
            handle.write("\\n".join([*sys.argv[1:], "marker=" + os.environ.get({cgroup2.ENV_IN_SCOPE!r}, "")]))
        rest = sys.argv[sys.argv.index("--") + 1 :]
        os.execv(rest[0], rest)
        """)
    )
    script.chmod(0o755)
    return script


def user_session(tmp_path: Path, fake: Path) -> dict[str, str]:
    """The environment of a login session whose systemd user manager listens on its bus."""
    runtime = tmp_path / "run-user"
    runtime.mkdir()
    bus = socket.socket(socket.AF_UNIX)
    bus.bind(str(runtime / "bus"))
    bus.close()
    return {"PATH": f"{fake.parent}:/usr/bin:/bin", "XDG_RUNTIME_DIR": str(runtime)}


def test_scope_command_is_systemd_run_user_scope_with_delegation(
    tmp_path: Path, fake_systemd_run: Path
) -> None:
    command, why_not = cgroup2.systemd_scope_command(
        ["flyte-decl", "run", "main"], user_session(tmp_path, fake_systemd_run)
    )
    assert why_not == ""
    assert command == [
        str(fake_systemd_run), "--user", "--scope", "-p", "Delegate=yes", "--quiet", "--collect", "--",
        "flyte-decl", "run", "main",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"FLYTE_DECL_SYSTEMD_SCOPE": "0"},
            "FLYTE_DECL_SYSTEMD_SCOPE=0 turns the delegated systemd scope off",
        ),
        (
            {"FLYTE_DECL_IN_SYSTEMD_SCOPE": "1"},
            "already re-executed in a systemd scope, which gave no usable subtree",
        ),
        ({"PATH": "/nonexistent"}, "systemd-run is not installed"),
        ({"XDG_RUNTIME_DIR": ""}, "systemd's user manager is not running (XDG_RUNTIME_DIR is not set)"),
    ],
)
def test_scope_falls_back_with_a_one_line_reason(
    tmp_path: Path, fake_systemd_run: Path, change: dict[str, str], reason: str
) -> None:
    environ = {**user_session(tmp_path, fake_systemd_run), **change}
    assert cgroup2.systemd_scope_command(["flyte-decl"], environ) == (None, reason)


def test_scope_needs_the_user_managers_bus(tmp_path: Path, fake_systemd_run: Path) -> None:
    environ = {"PATH": str(fake_systemd_run.parent), "XDG_RUNTIME_DIR": str(tmp_path)}
    assert cgroup2.systemd_scope_command(["x"], environ) == (
        None,
        f"systemd's user manager is not running (no user bus at {tmp_path}/bus)",
    )


def test_scope_falls_back_when_systemd_run_fails_here(tmp_path: Path) -> None:
    # A bus socket is there, but its manager refuses this user (as after `su`): a trial scope fails, so
    # the run stays here with the portable mechanisms instead of exec'ing into a failing systemd-run.
    failing = tmp_path / "bin" / "systemd-run"
    failing.parent.mkdir()
    failing.write_text("#!/bin/sh\necho 'Failed to connect to bus: Permission denied' >&2\nexit 1\n")
    failing.chmod(0o755)
    assert cgroup2.systemd_scope_command(["flyte-decl"], user_session(tmp_path, failing)) == (
        None,
        "systemd-run --user --scope failed here (exit 1): Failed to connect to bus: Permission denied",
    )


def test_exec_in_scope_runs_the_command_marked_as_re_executed(tmp_path: Path, fake_systemd_run: Path) -> None:
    # A real exec: the process becomes systemd-run (here the fake), which execs the command.
    code = (
        "import sys; from flyte_decl.runtime import cgroup2; "
        "cgroup2.exec_in_systemd_scope(sys.argv[1:]); print('not replaced')"
    )
    command, _ = cgroup2.systemd_scope_command(
        ["/bin/echo", "inside"], user_session(tmp_path, fake_systemd_run)
    )
    assert command is not None
    done = subprocess.run([sys.executable, "-c", code, *command], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "inside\n")
    recorded = (tmp_path / "argv").read_text().splitlines()
    assert recorded == [
        "--user",
        "--scope",
        "-p",
        "Delegate=yes",
        "--quiet",
        "--collect",
        "--",
        "/bin/echo",
        "inside",
        "marker=1",
    ]


def test_exec_failure_returns_so_the_run_goes_on_portably() -> None:
    cgroup2.exec_in_systemd_scope(["/nonexistent/systemd-run", "--user"])  # logs, returns


def test_a_hierarchy_without_controllers_is_refused_with_a_reason(tmp_path: Path) -> None:
    # A directory tree shaped like a cgroup2 mount whose root offers no memory or cpu controller,
    # as the empty unified hierarchy of a cgroup v1 machine.
    own = tmp_path / "a" / "b"
    own.mkdir(parents=True)
    for folder in (tmp_path, tmp_path / "a", own):
        (folder / "cgroup.controllers").write_text("pids\n")
    assert cgroup2.hierarchy_root(str(own)) == str(tmp_path)
    assert cgroup2.claim_subtree(str(own)) == cgroup2.Unclaimed(
        f"the cgroup v2 hierarchy at {tmp_path} has neither a memory nor a cpu controller"
    )


def test_summary_names_the_situation_or_the_reason() -> None:
    delegated = Mechanisms(
        "cgroup-v2", "cgroup-v2", "/sys/fs/cgroup/d/flyte-decl-7", situation="delegated subtree"
    )
    assert delegated.summary() == "cgroup-v2 (memory), cgroup-v2 (cpu) in a delegated subtree"
    assert "(delegated subtree)" in delegated.describe()["memory"]
    portable = Mechanisms(
        "watchdog", "quota-throttle", note="no cgroup v2 subtree of our own (/: Permission denied)"
    )
    assert portable.summary() == (
        "watchdog (memory), quota-throttle (cpu); no cgroup v2 subtree of our own (/: Permission denied)"
    )


# The unified hierarchy of a v1 machine has no controllers, but cgroup.kill and rmdir work.
UNIFIED = "/sys/fs/cgroup/unified"
needs_unified = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists(f"{UNIFIED}/cgroup.procs"),
    reason="needs root and an empty cgroup2 mount (a cgroup v1 machine's unified hierarchy)",
)


def sleeper_in(cgroup: str) -> subprocess.Popen[bytes]:
    """`sleep 60`, started as a member of `cgroup` (made if missing)."""
    os.makedirs(cgroup, exist_ok=True)

    def join() -> None:
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as handle:
            handle.write(str(os.getpid()))

    return subprocess.Popen(["sleep", "60"], preexec_fn=join)


@needs_unified
def test_sweep_kills_and_removes_the_subtree_of_a_runner_that_is_gone() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = os.path.join(UNIFIED, f"flyte-decl-{dead.pid}")
    orphan = sleeper_in(os.path.join(stale, "flyte-decl-1-action"))
    try:
        assert cgroup2.sweep(UNIFIED) >= 1
        assert orphan.wait(timeout=5) == -9
        assert not os.path.exists(stale)
    finally:
        orphan.kill()
        orphan.wait()
        if os.path.exists(stale):
            cgroup2.destroy(stale)


@needs_unified
def test_a_reused_pid_does_not_keep_a_dead_runners_subtree() -> None:
    # The subtree's action outlived its runner, whose pid now names a younger, unrelated process.
    survivor = sleeper_in(os.path.join(UNIFIED, "flyte-decl-test-survivor"))
    reuser = subprocess.Popen(["sleep", "60"])
    stale = os.path.join(UNIFIED, f"flyte-decl-{reuser.pid}")
    # A live runner sits in its leaf; its actions are left alone.
    runner = subprocess.Popen(["sleep", "60"])
    live = os.path.join(UNIFIED, f"flyte-decl-{runner.pid}")
    sleepers = [survivor, reuser, runner]
    try:
        for cgroup, member in ((f"{stale}/flyte-decl-1-1-task", survivor), (f"{live}/runner", runner)):
            os.makedirs(cgroup)
            with open(f"{cgroup}/cgroup.procs", "w") as handle:
                handle.write(str(member.pid))
        sleepers.append(sleeper_in(f"{live}/flyte-decl-{runner.pid}-1-task"))

        assert not cgroup2.runner_alive(stale, reuser.pid)
        assert cgroup2.runner_alive(live, runner.pid)
        assert cgroup2.sweep(UNIFIED) >= 1

        assert survivor.wait(timeout=5) == -9
        assert not os.path.exists(stale)
        assert reuser.poll() is None, "the process that reused the pid is not touched"
        assert os.path.isdir(live) and sleepers[-1].poll() is None
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait()
        for path in (stale, live, os.path.join(UNIFIED, "flyte-decl-test-survivor")):
            if os.path.exists(path):
                cgroup2.destroy(path)


def test_an_empty_subtree_belongs_to_a_live_pid_only_if_it_started_first(tmp_path: Path) -> None:
    # A runner that is claiming its subtree is not in it yet: it counts if it started by the
    # subtree's creation, a process that got the pid later does not (start times known to a second).
    older = subprocess.Popen(["sleep", "60"])
    subtree = tmp_path / "flyte-decl-1"
    subtree.mkdir()
    time.sleep(proctree.START_SLACK + 0.2)
    younger = subprocess.Popen(["sleep", "60"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    try:
        assert cgroup2.runner_alive(str(subtree), older.pid)
        assert not cgroup2.runner_alive(str(subtree), younger.pid)
        assert not cgroup2.runner_alive(str(subtree), dead.pid)
    finally:
        for sleeper in (older, younger):
            sleeper.kill()
            sleeper.wait()


@needs_unified
def test_a_runner_in_a_systemd_scope_sweeps_the_scopes_beside_it() -> None:
    # An earlier run re-executed in run-u1.scope was SIGKILLed with its fork servers; this one
    # runs in run-u2.scope of the same user manager. Other units' cgroups are not scopes of runs.
    user = os.path.join(UNIFIED, "flyte-decl-test-user@1000.service")
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"{user}/app.slice/run-u1.scope/flyte-decl-{dead.pid}"
    elsewhere = f"{user}/app.slice/other.service/flyte-decl-{dead.pid}"
    own = f"{user}/app.slice/run-u2.scope"
    os.makedirs(own)
    survivor = sleeper_in(f"{stale}/flyte-decl-{dead.pid}-1-task")
    bystander = sleeper_in(f"{elsewhere}/flyte-decl-{dead.pid}-1-task")
    try:
        assert cgroup2.sweep_scopes(f"{user}/app.slice/other.service") == 0
        assert survivor.poll() is None

        assert cgroup2.sweep_scopes(own) == 1

        assert survivor.wait(timeout=5) == -9
        assert not os.path.exists(stale)
        assert os.path.isdir(os.path.dirname(stale)), "the scope itself is systemd's to collect"
        assert bystander.poll() is None and os.path.isdir(elsewhere)
    finally:
        for sleeper in (survivor, bystander):
            sleeper.kill()
            sleeper.wait()
        cgroup2.destroy(user)


def test_memory_events_are_read_and_re_read_from_one_descriptor(tmp_path: Path) -> None:
    # The kernel file's format; the descriptor is re-read from its start, which also re-arms POLLPRI.
    events = tmp_path / "memory.events"
    events.write_text("low 0\nhigh 0\nmax 3\noom 0\noom_kill 0\noom_group_kill 0\n")
    fd = cgroup2.watch_events(str(tmp_path))
    try:
        assert cgroup2.read_events(fd) == {
            "low": 0, "high": 0, "max": 3, "oom": 0, "oom_kill": 0, "oom_group_kill": 0,
        }  # fmt: skip
        events.write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 1\n")
        assert cgroup2.read_events(fd)["oom_kill"] == 1
    finally:
        os.close(fd)


def test_watching_memory_events_needs_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        cgroup2.watch_events(str(tmp_path))


@needs_unified
def test_a_fork_server_whose_runner_died_kills_every_action_cgroup_of_the_run() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    subtree = os.path.join(UNIFIED, f"flyte-decl-{dead.pid}")
    leaf = os.path.join(subtree, "runner")
    os.makedirs(leaf)
    actions = [os.path.join(subtree, f"flyte-decl-{dead.pid}-{n}-vm.task") for n in (1, 2)]
    sleepers = [sleeper_in(action) for action in actions]
    try:
        # Asked from another runner's leaf, or of another runner, it touches nothing.
        assert cgroup2.kill_actions_of(leaf, dead.pid + 1) == 0
        assert cgroup2.kill_actions_of(subtree, dead.pid) == 0
        assert [sleeper.poll() for sleeper in sleepers] == [None, None]

        assert cgroup2.kill_actions_of(leaf, dead.pid) == 2

        assert [sleeper.wait(timeout=5) for sleeper in sleepers] == [-9, -9]
        left = [name for name in os.listdir(subtree) if os.path.isdir(os.path.join(subtree, name))]
        assert left == ["runner"], (
            "the actions' cgroups are removed; the leaf waits for the next start's sweep"
        )
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait()
        cgroup2.destroy(subtree)


# --- every fallback says why: one line in doctor (`cgroups:`) and in the run header ------------------


def reasons(mechanisms: Mechanisms) -> tuple[str, str, str]:
    """(mechanisms, doctor's `cgroups` line, the run header's words) for a portable fallback."""
    return f"{mechanisms.memory}/{mechanisms.cpu}", _cgroups(mechanisms)["cgroups"], mechanisms.summary()


@pytest.mark.skipif(
    not os.path.exists(f"{UNIFIED}/cgroup.controllers"), reason="needs an empty cgroup2 mount at " + UNIFIED
)
def test_cgroup_v2_without_controllers_says_so() -> None:
    # This machine's unified hierarchy is a real cgroup2 mount with no controller in it; seen alone
    # (no v1 hierarchy to fall back on), as on a v2 machine whose controllers all went elsewhere.
    why = f"the cgroup v2 hierarchy at {UNIFIED} has neither a memory nor a cpu controller"
    assert reasons(mechanisms_in(UNIFIED, {})) == (
        "watchdog/quota-throttle",
        why,
        f"watchdog (memory), quota-throttle (cpu); {why}",
    )


def test_no_cgroup_hierarchy_at_all_says_so() -> None:
    why = "no mounted cgroup hierarchy with a memory or cpu controller shows this process's cgroup"
    assert reasons(mechanisms_in(None, {})) == (
        "watchdog/quota-throttle",
        why,
        f"watchdog (memory), quota-throttle (cpu); {why}",
    )


def test_cgroups_turned_off_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYTE_DECL_NO_CGROUPS", "1")
    assert reasons(detect_mechanisms())[1:] == (
        "FLYTE_DECL_NO_CGROUPS=1 turns cgroups off",
        "watchdog (memory), quota-throttle (cpu); FLYTE_DECL_NO_CGROUPS=1 turns cgroups off",
    )


def v1_dirs() -> dict[str, str]:
    _, v1 = own_cgroup_dirs()
    if not {"memory", "cpu"} <= set(v1):
        pytest.skip("needs cgroup v1 memory and cpu hierarchies (this machine's)")
    return v1


def in_child(work: str) -> str:
    """Run `work` (Python code that sets `out`) in a forked child, as nobody if this is root; its `out`."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            scope: dict[str, str] = {}
            exec(work, scope)
            os.write(write, scope["out"].encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as handle:
        out = handle.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0
    return out


NOBODY = 65534


def test_a_user_who_cannot_write_cgroup_v1_is_told_so() -> None:
    # This machine's own v1 hierarchies, as an ordinary user (nobody, when the suite runs as root):
    # the same doctor line and header as `flyte-decl doctor` and `run` give there.
    v1 = v1_dirs()
    if os.geteuid() != 0 and all(os.access(v1[name], os.W_OK) for name in ("memory", "cpu")):
        pytest.skip("this user may write the cgroup v1 hierarchies")
    got = in_child(
        "import json\n"
        "from flyte_decl.cli.doctor import _cgroups\n"
        "from flyte_decl.runtime.limits import mechanisms_in, own_cgroup_dirs\n"
        "found = mechanisms_in(*own_cgroup_dirs())\n"
        "out = json.dumps([found.memory, found.cpu, _cgroups(found), found.summary()])\n"
    )
    why = (
        f"cgroup v1 is not writable here (memory: {v1['memory']}: Permission denied; "
        f"cpu: {v1['cpu']}: Permission denied)"
    )
    assert json.loads(got) == [
        "watchdog",
        "quota-throttle",
        {"cgroups": why},
        f"watchdog (memory), quota-throttle (cpu); {why}",
    ]


@pytest.mark.requires_root("mounts the cgroup v1 hierarchies read-only in a mount namespace of its own")
def test_a_read_only_cgroupfs_is_named_as_the_reason() -> None:
    # As a container sees cgroupfs by default: mounted read-only. A private mount namespace (unshare)
    # keeps the change from everything else on the machine.
    v1 = v1_dirs()
    points = [
        subprocess.run(["findmnt", "-n", "-o", "TARGET", "--target", v1[name]], capture_output=True,
                       text=True, check=True).stdout.strip()
        for name in ("memory", "cpu")
    ]  # fmt: skip
    remount = " && ".join(f"mount -o remount,bind,ro {point}" for point in dict.fromkeys(points))
    code = (
        "import json; from flyte_decl.runtime.limits import detect_mechanisms; "
        "found = detect_mechanisms(); print(json.dumps([found.memory, found.cpu, found.note]))"
    )
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         f'{remount} && exec "$0" -c "$1"', sys.executable, code],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        "watchdog",
        "quota-throttle",
        f"cgroup v1 is not writable here (memory: {v1['memory']}: Read-only file system; "
        f"cpu: {v1['cpu']}: Read-only file system)",
    ]
