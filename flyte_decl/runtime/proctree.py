"""Process trees on Linux, read straight from /proc: find, measure and kill every descendant.

Nothing here relies on being the parent of the processes it looks at: an action's parent is the
fork server, not the runner. Liveness comes from the state in ``/proc/<pid>/stat`` (a zombie
counts as dead, because ``kill(pid, 0)`` succeeds on one), and killing uses signals only.

Example::

    tree = walk(action_pid)                    # {pid: parent pid}, the root maps to 0
    rss = sum(rss_bytes(pid) for pid in tree)
    kill_tree(action_pid, pgid=action_pid)     # group + descendants, even setsid'd ones
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import signal
import time
from collections.abc import Iterable

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# prctl(2) options, from <linux/prctl.h>.
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37

# Indexes into the fields of /proc/<pid>/stat that follow "pid (comm)": field 3 (state) is 0.
_STATE, _PPID, _UTIME, _STIME, _CUTIME, _CSTIME, _STARTTIME = 0, 1, 11, 12, 13, 14, 19
_FLAGS = 6
_PF_EXITING = 0x4  # the kernel's flag for a process in its exit path (include/linux/sched.h)

# How much later than a given moment a process may have started and still count as started by it
# (`started_by`): start times count from boot, whose moment moves a little when the clock is set.
START_SLACK = 1.0

# Rounds of "stop what we found, look again" before the kill; each round can only add processes
# forked by a not-yet-stopped member, so a handful always suffices outside a deliberate race.
_FREEZE_ROUNDS = 20

# /proc/<pid>/task/<tid>/children needs CONFIG_PROC_CHILDREN; without it, fall back to a full scan.
_HAS_CHILDREN_FILES = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def _read(path: str) -> bytes | None:
    """The whole of a small /proc file, or None if the process (or file) is gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:  # ESRCH and friends: the process exited between open and read
        return None
    finally:
        os.close(fd)


def _stat(pid: int) -> list[bytes] | None:
    data = _read(f"/proc/{pid}/stat")
    if not data:
        return None
    # comm may contain spaces and parentheses; it ends at the last ')'.
    return data[data.rfind(b")") + 2 :].split()


def _parent_map() -> dict[int, int]:
    """pid -> parent pid for every process, by scanning /proc (the slow fallback)."""
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (fields := _stat(int(name))):
            parents[int(name)] = int(fields[_PPID])
    return parents


def children(pid: int) -> list[int]:
    """Direct children of `pid` (forked by any of its threads); empty if it is gone.

    For example, ``children(os.getpid())`` lists the processes this one started and not yet reaped.
    """
    if not _HAS_CHILDREN_FILES:
        return [child for child, parent in _parent_map().items() if parent == pid]
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for tid in tids:
        # A child belongs to the thread that forked it, so every thread's list is needed.
        data = _read(f"/proc/{pid}/task/{tid}/children")
        if data:
            found.extend(int(child) for child in data.split())
    return found


def walk(root: int) -> dict[int, int]:
    """`root` and all its descendants, as {pid: parent pid} in breadth-first order (root -> 0).

    Empty if `root` does not exist. Only reads the tree below `root`, never all of /proc.
    """
    if not os.path.exists(f"/proc/{root}"):
        return {}
    tree = {root: 0}
    queue = [root]
    for parent in queue:  # the list grows while iterating: a breadth-first walk
        for child in children(parent):
            if child not in tree:  # a pid reused mid-walk must not loop
                tree[child] = parent
                queue.append(child)
    return tree


def descendants(pid: int) -> list[int]:
    """Every descendant of `pid`, parents before their children; `pid` itself is not included."""
    return [p for p in walk(pid) if p != pid]


def process_state(pid: int) -> str | None:
    """The one-letter state from /proc/<pid>/stat ("R", "S", "T", "Z", ...), or None if gone."""
    fields = _stat(pid)
    return fields[_STATE].decode() if fields else None


def is_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (``kill(pid, 0)`` cannot tell those apart)."""
    return process_state(pid) not in (None, "Z", "X", "x")


def is_exiting(pid: int) -> bool:
    """True if `pid` is gone, a zombie, or already exiting (the kernel's PF_EXITING flag).

    A killed process closes its descriptors before its children are re-parented and before it
    becomes a zombie: a child that sees EOF from it may still find it alive, as its parent.
    """
    fields = _stat(pid)
    if not fields or fields[_STATE] in (b"Z", b"X", b"x"):
        return True
    return bool(int(fields[_FLAGS]) & _PF_EXITING)


def start_time(pid: int) -> int | None:
    """Start time in clock ticks since boot: with the pid, it names one process despite pid reuse."""
    fields = _stat(pid)
    return int(fields[_STARTTIME]) if fields else None


def started_by(pid: int, moment: float) -> bool:
    """Whether a live process `pid` exists that started no later than `moment` (epoch seconds).

    A start time counts clock ticks from boot, whose moment is known to /proc/uptime's 10 ms and
    moves when the clock is set: a process that started up to `START_SLACK` seconds after
    `moment` counts as started by then.
    """
    started = start_time(pid)
    if started is None or not is_alive(pid):
        return False
    return _boot_time() + started / CLOCK_TICKS <= moment + START_SLACK


def _boot_time() -> float:
    # To /proc/uptime's 10 ms, where /proc/stat's btime has whole seconds (and is rounded down).
    with open("/proc/uptime", "rb") as handle:
        return time.time() - float(handle.read().split()[0])


def cpu_seconds(pid: int) -> float | None:
    """CPU time of all threads of `pid`, in nanosecond precision, or None if it is gone.

    Reads the kernel's per-process CPU clock (about 0.3 us a call), not the tick-rounded
    utime/stime of /proc/<pid>/stat.
    """
    try:
        # The clock id of another process: CPUCLOCK_PROCESS | CPUCLOCK_SCHED, see clock_getcpuclockid(3).
        return time.clock_gettime(((~pid) << 3) | 2)
    except OSError:
        return None


def reaped_children_cpu_seconds(pid: int) -> float:
    """CPU time of the children `pid` has waited for (cutime + cstime), or 0.0 if it is gone."""
    fields = _stat(pid)
    if not fields:
        return 0.0
    return (int(fields[_CUTIME]) + int(fields[_CSTIME])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """Resident set size of `pid` from statm (about 3 us), or 0 if it is gone or a zombie."""
    data = _read(f"/proc/{pid}/statm")
    return int(data.split()[1]) * PAGE_SIZE if data else 0


def pss_bytes(pid: int) -> int:
    """Proportional set size from smaps_rollup: shared pages split between their users.

    About 1 ms per process of a few hundred MiB, so only worth it to confirm a breach.
    Falls back to RSS where smaps_rollup is missing (kernels before 4.14) or unreadable.
    """
    data = _read(f"/proc/{pid}/smaps_rollup")
    start = data.find(b"\nPss:") if data else -1
    if data is None or start < 0:
        return rss_bytes(pid)
    end = data.index(b"kB", start)
    return int(data[start + 5 : end]) * 1024


def environ_value(pid: int, name: str) -> str | None:
    """The value of `name` in the environment `pid` was started with; None if unset, gone or not ours.

    This is the environment as of its last exec (``/proc/<pid>/environ``), readable for processes
    of the same user (all of them as root).
    """
    data = _read(f"/proc/{pid}/environ")
    if not data:
        return None
    prefix = name.encode() + b"="
    for entry in data.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode(errors="replace")
    return None


def signal_if_same(pid: int, started: int, sig: int) -> bool:
    """Send `sig` to `pid` only if it is still the process that started at `started` (clock ticks).

    Race-free where pidfds exist (Linux 5.3+): the pidfd pins the process, then its start time is
    checked, then the signal goes through the pidfd, so a pid reused meanwhile is never signalled.
    Returns whether the signal was sent.
    """
    fd = None
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except (AttributeError, OSError):  # no pidfds here: check, then signal by pid
        pass
    try:
        if start_time(pid) != started:
            return False
        if fd is not None:
            signal.pidfd_send_signal(fd, sig)
        else:
            os.kill(pid, sig)
        return True
    except OSError:
        return False
    finally:
        if fd is not None:
            os.close(fd)


def cgroup_members(procs_file: str) -> list[int]:
    """The pids listed in a ``cgroup.procs`` file; empty if the cgroup is gone."""
    data = _read(procs_file)
    return [int(pid) for pid in data.split()] if data else []


def signal_pid(pid: int, sig: int) -> None:
    """Send `sig` to `pid`, ignoring a process that is gone or not ours."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def signal_group(pgid: int, sig: int) -> None:
    """Send `sig` to process group `pgid`, ignoring a group that is gone or not ours."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def kill_tree(
    root: int | None,
    sig: int = signal.SIGKILL,
    *,
    include_root: bool = True,
    pgid: int | None = None,
    cgroup_procs: Iterable[str] = (),
    extra: Iterable[int] = (),
) -> set[int]:
    """Signal `root`'s whole tree: its descendants, process group `pgid`, cgroup members, `extra`.

    `root` may be None when only the group, cgroups or `extra` are to be signalled.
    The tree is frozen first (SIGSTOP, then look again for what the stopped processes forked,
    until nothing new appears), so a child forked or a ``setsid()`` done during the kill cannot
    slip through. Then every process gets `sig`, followed by SIGCONT so that stopped processes
    act on it (SIGKILL needs no help; SIGTERM does). The calling process and its process group
    are never signalled, so an action may call ``kill_tree(os.getpid(), include_root=False)``.
    Returns the pids signalled; they die asynchronously, see `wait_gone`.
    """
    me = os.getpid()
    procs_files = tuple(cgroup_procs)
    extra_pids = set(extra)
    group = pgid if pgid and pgid > 0 and pgid != os.getpgrp() else None

    def scan() -> set[int]:
        found = set(walk(root)) if root is not None else set()
        if not include_root and root is not None:
            found.discard(root)
        for procs_file in procs_files:
            found.update(cgroup_members(procs_file))
        found.update(pid for pid in extra_pids if is_alive(pid))
        found.discard(me)
        return found

    if group is not None:
        signal_group(group, signal.SIGSTOP)
    targets: set[int] = set()
    for _ in range(_FREEZE_ROUNDS):
        new = scan() - targets
        if not new:
            break
        for pid in new:
            signal_pid(pid, signal.SIGSTOP)
        targets |= new
    for send in (sig, signal.SIGCONT):
        if group is not None:
            signal_group(group, send)
        for pid in targets:
            signal_pid(pid, send)
    return targets


def wait_gone(pids: Iterable[int], timeout: float) -> set[int]:
    """Wait up to `timeout` seconds for `pids` to die (zombies count as dead); returns survivors."""
    remaining = set(pids)
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        remaining = {pid for pid in remaining if is_alive(pid)}
        if not remaining or time.monotonic() >= deadline:
            return remaining
        time.sleep(delay)
        delay = min(delay * 2, 0.02)  # a SIGKILLed process usually dies in about a millisecond


def kill_descendants_of_self(timeout: float = 2.0, sig: int = signal.SIGKILL) -> set[int]:
    """Kill everything below this process and wait up to `timeout` s for it to die; returns survivors.

    Meant for shutdown of a process that is a child subreaper, so that orphans (double-forked
    daemons, setsid'd grandchildren) have been re-parented to it and are found. Zombies left
    among this process's own children are the caller's to reap (``os.waitpid``).
    """
    killed = kill_tree(os.getpid(), sig, include_root=False)
    return wait_gone(killed, timeout)


@functools.cache
def _libc() -> ctypes.CDLL:
    # Loaded once: every action calls prctl twice right after fork, and dlopen costs ~0.1 ms each.
    return ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, arg: int | ctypes._CArgObject = 0) -> None:
    prctl = getattr(_libc(), "prctl", None)
    if prctl is None:
        raise OSError(errno.ENOSYS, "prctl(2) is only available on Linux")
    if prctl(option, ctypes.c_ulong(arg) if isinstance(arg, int) else arg, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def set_parent_death_signal(sig: int) -> None:
    """Have the kernel send `sig` to this process once the thread that forked it exits.

    ``prctl(PR_SET_PDEATHSIG)``: not inherited across fork, cleared by exec of a set-user-ID
    program. Raises OSError off Linux.
    """
    _prctl(_PR_SET_PDEATHSIG, int(sig))


def set_child_subreaper(enabled: bool = True) -> None:
    """Make orphaned descendants of this process re-parent to it instead of to PID 1.

    With this set, a grandchild that double-forks or calls ``setsid()`` stays in our tree, where
    `walk` and `kill_tree` find it. It is not inherited across fork, and survives exec.
    """
    _prctl(_PR_SET_CHILD_SUBREAPER, int(enabled))


def is_child_subreaper() -> bool:
    """Whether this process is a child subreaper (see `set_child_subreaper`)."""
    value = ctypes.c_int(0)
    _prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(value))
    return bool(value.value)
