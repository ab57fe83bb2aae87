"""cgroup v2: claim a subtree of the unified hierarchy for this runner, and sweep what dead runners left.

cgroup v2 hands a controller to a cgroup's children only through the parent's
``cgroup.subtree_control``, and a non-root cgroup that hands out controllers may hold no process
of its own (the no-internal-process rule). So the runner builds, under a *base* cgroup::

    BASE/                       controllers enabled for its children (+memory +cpu)
      flyte-decl-PID/           this runner's subtree, controllers enabled for its children
        runner/                 the runner itself (and its fork servers): a leaf
        flyte-decl-PID-N-ACTION one cgroup per action and per warm worker (runtime.limits)

and moves itself into ``runner/`` before enabling anything, so neither BASE (if it is not the
hierarchy's root) nor the subtree holds a process. Bases are tried in order, and whether one works
is found by trying, never from the uid:

1. the parent of a live runner's subtree, when this process was started inside that runner's leaf
   (a nested run: the new subtree becomes a sibling of the other runner's);
2. this process's own cgroup: the hierarchy's root (root in a VM or in a container with its own
   cgroup namespace), or a delegated one (a systemd unit or scope with ``Delegate=yes``, a cgroup
   chowned to the user);
3. its parent, if that already hands out controllers (a delegated cgroup whose user keeps the
   shell in a leaf of its own, as the no-internal-process rule asks);
4. the hierarchy's root, which only root may write (root on a systemd host, started from a login
   session whose scope belongs to systemd).

A base that offers every wanted controller (its ``cgroup.controllers``) is tried before one that
offers fewer, in the order above among equals: root started in a login session's scope (which holds
the shell) under a slice that hands out memory only gets memory and cpu in the hierarchy's root.

A non-root user in a login session fails all four (the session scope is systemd's): the run then
re-executes itself in a delegated scope of systemd's user manager, ``systemd-run --user --scope -p
Delegate=yes`` (`systemd_scope_command`), where case 2 applies. A container's cgroup namespace
root that holds processes besides the runner cannot hand out controllers (the no-internal-process
rule); the runner moves no process it does not own, and says so (`Unclaimed`).

Nothing is left behind: per-action cgroups are removed by their limiter when the action ends; at
exit the runner leaves its leaf (where the kernel lets it) and removes its subtree; and at every
start `sweep` kills (``cgroup.kill``) and removes, in every writable base, the subtree of any runner
that is gone (`runner_alive`: its pid is dead, or names a process that is not that runner), such as
one that was SIGKILLed with its fork servers while actions ran. A runner in a transient systemd
scope also sweeps the scopes beside it (`sweep_scopes`), where runners of earlier re-executed runs
left theirs.

Example::

    claimed = claim_subtree("/sys/fs/cgroup/user.slice/app.service")
    if isinstance(claimed, Subtree):
        claimed.path, claimed.controllers    # ('/sys/fs/cgroup/.../flyte-decl-4242', {'cpu', 'memory'})
    else:
        claimed.reason                       # why not, in one line
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass

from flyte_decl.runtime import proctree

log = logging.getLogger(__name__)

WANTED = ("memory", "cpu")
SUBTREE_PREFIX = "flyte-decl-"
RUNNER_LEAF = "runner"
# "0" turns the re-execution in a systemd user scope off; FLYTE_DECL_NO_CGROUPS=1 turns all cgroups off.
ENV_SYSTEMD_SCOPE = "FLYTE_DECL_SYSTEMD_SCOPE"
# Set in the re-executed runner, so that it never tries a second time.
ENV_IN_SCOPE = "FLYTE_DECL_IN_SYSTEMD_SCOPE"
_SUBTREE_NAME = re.compile(re.escape(SUBTREE_PREFIX) + r"(\d+)")
# A transient scope (``systemd-run --scope``), as in ``…/user@1000.service/app.slice/run-u12.scope``.
_SCOPE_NAME = re.compile(r"run-.+\.scope")
_SWEEP_WAIT = 2.0  # seconds for killed members to leave a stale subtree before it is removed

ROOT = "hierarchy root"
DELEGATED = "delegated subtree"
SYSTEMD_SCOPE = "systemd user scope"


@dataclass(frozen=True)
class Subtree:
    """This runner's subtree: per-action cgroups go in `path`; `controllers` are enabled for them.

    `situation` says how it was obtained: `ROOT` (created under the hierarchy's root),
    `DELEGATED` (under a cgroup delegated to this user) or `SYSTEMD_SCOPE` (the delegated scope
    the run re-executed itself in). `leaf` is where the runner moved itself.
    """

    path: str
    controllers: frozenset[str]
    situation: str
    leaf: str
    base: str
    home: str  # the cgroup the runner was in before it moved


@dataclass(frozen=True)
class Unclaimed:
    """Why this runner has no subtree: `reason` in one line, for ``doctor`` and the run header.

    `denied` is True when a base was refused for want of permission (EACCES, EPERM), which a cgroup
    delegated to this user (a systemd user scope) would give; not when the hierarchy has no
    controllers, is read-only, or a base holds other processes.
    """

    reason: str
    denied: bool = False


def hierarchy_root(cgroup: str) -> str:
    """The mount point of the cgroup2 hierarchy that `cgroup` (a directory in it) belongs to."""
    path = os.path.normpath(cgroup)
    while True:
        parent = os.path.dirname(path)
        if parent == path or not os.path.exists(os.path.join(parent, "cgroup.controllers")):
            return path
        path = parent


def controllers(cgroup: str, name: str = "cgroup.controllers") -> set[str]:
    """The controllers a cgroup has (``cgroup.controllers``) or hands on (``cgroup.subtree_control``)."""
    try:
        with open(os.path.join(cgroup, name)) as handle:
            return set(handle.read().split())
    except OSError:
        return set()


def claim_subtree(own: str) -> Subtree | Unclaimed:
    """Create this runner's subtree and move the runner into its leaf; or why that is impossible here.

    `own` is this process's cgroup directory on the unified hierarchy. Returns a `Subtree`, or an
    `Unclaimed` whose one-line reason names each base tried. Stale subtrees in every writable base
    are swept first.
    """
    root = hierarchy_root(own)
    if not set(WANTED) & controllers(root):
        return Unclaimed(f"the cgroup v2 hierarchy at {root} has neither a memory nor a cpu controller")
    if _read_only(root):
        return Unclaimed(f"the cgroup v2 hierarchy at {root} is mounted read-only")
    bases: list[str] = []
    parent = os.path.dirname(own)
    if os.path.basename(own) == RUNNER_LEAF and _SUBTREE_NAME.fullmatch(os.path.basename(parent)):
        bases.append(os.path.dirname(parent))  # a run started inside another runner's leaf
    bases.append(own)
    if own != root and set(WANTED) & controllers(parent, "cgroup.subtree_control"):
        bases.append(parent)  # a leaf shared with others (a shell) in a cgroup that hands out controllers
    bases.append(root)
    bases = list(dict.fromkeys(bases))
    # Every wanted controller before fewer (sorted is stable: among equals, the order above).
    bases = sorted(bases, key=lambda base: -len(set(WANTED) & controllers(base)))
    for base in bases:
        if os.access(base, os.W_OK):
            sweep(base)
    sweep_scopes(own)
    reasons: list[str] = []
    denied = crowded_root = False
    for base in bases:
        try:
            return _claim_in(base, own, root)
        except OSError as exc:
            denied = denied or exc.errno in (errno.EACCES, errno.EPERM)
            if exc.errno == errno.EBUSY:  # the no-internal-process rule; never at the real root
                reasons.append(f"{_display(base, root)}: {_occupants(base)}")
                crowded_root = crowded_root or base == root
            else:
                reasons.append(f"{_display(base, root)}: {exc.strerror or exc}")
    reason = "no cgroup v2 subtree of our own (" + "; ".join(reasons) + ")"
    if crowded_root:  # a cgroup namespace's root (a container) that holds other processes
        reason += "; in a container, run flyte-decl as its entrypoint or give it a delegated cgroup subtree"
    return Unclaimed(reason, denied)


def _read_only(path: str) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _occupants(cgroup: str, shown: int = 3) -> str:
    """'holds other processes: pid 7 (sleep), pid 9 (sh)', the reason for a base's EBUSY."""
    pids = [
        pid for pid in proctree.cgroup_members(os.path.join(cgroup, "cgroup.procs")) if pid != os.getpid()
    ]
    if not pids:
        return "holds other processes"
    named = []
    for pid in pids[:shown]:
        try:
            with open(f"/proc/{pid}/comm") as handle:
                named.append(f"pid {pid} ({handle.read().strip()})")
        except OSError:
            named.append(f"pid {pid}")
    more = f" and {len(pids) - shown} more" if len(pids) > shown else ""
    return f"holds other processes: {', '.join(named)}{more}"


def _display(path: str, root: str) -> str:
    relative = os.path.relpath(path, root)
    return "/" if relative == "." else "/" + relative


def _claim_in(base: str, own: str, root: str) -> Subtree:
    offered = set(WANTED) & controllers(base)
    if not offered:
        raise OSError(errno.EOPNOTSUPP, "offers neither a memory nor a cpu controller")
    subtree = os.path.join(base, f"{SUBTREE_PREFIX}{os.getpid()}")
    leaf = os.path.join(subtree, RUNNER_LEAF)
    os.mkdir(subtree)
    moved = False
    try:
        os.mkdir(leaf)
        _write(os.path.join(leaf, "cgroup.procs"), str(os.getpid()))
        moved = True
        # Whatever base offers, enabled for its children; at least one must take.
        enable(base, offered)
        enabled = enable(subtree, offered & controllers(subtree))
        if not enabled:
            raise OSError(errno.EOPNOTSUPP, "no controller could be enabled")
    except OSError:
        if moved:
            with contextlib.suppress(OSError):
                _write(os.path.join(own, "cgroup.procs"), str(os.getpid()))
        for path in (leaf, subtree):
            with contextlib.suppress(OSError):
                os.rmdir(path)
        raise
    if os.environ.get(ENV_IN_SCOPE) == "1" and base == own:
        situation = SYSTEMD_SCOPE
    else:
        situation = ROOT if base == root else DELEGATED
    return Subtree(subtree, frozenset(enabled), situation, leaf, base, own)


def enable(cgroup: str, names: set[str]) -> set[str]:
    """Enable `names` in `cgroup`'s subtree_control, each on its own; returns what is enabled.

    Raises the first OSError if none of `names` could be enabled (EBUSY: the cgroup holds
    processes and is not the root, the no-internal-process rule; EACCES: not delegated to us).
    """
    have = controllers(cgroup, "cgroup.subtree_control")
    error: OSError | None = None
    for name in sorted(names - have):
        try:
            _write(os.path.join(cgroup, "cgroup.subtree_control"), f"+{name}")
            have.add(name)
        except OSError as exc:
            error = error or exc
    if error is not None and not names & have:
        raise error
    return names & have


def release(subtree: Subtree) -> None:
    """At exit: leave the leaf and remove the subtree, where the kernel allows it.

    Going back is possible only into a cgroup that hands out no controller, or into the root; a
    delegated base does, so there the empty subtree stays until the next start's `sweep`.
    """
    with contextlib.suppress(OSError):
        _write(os.path.join(subtree.home, "cgroup.procs"), str(os.getpid()))
        for path in (subtree.leaf, subtree.path):
            os.rmdir(path)


def sweep(base: str) -> int:
    """Kill and remove every subtree in `base` whose runner is gone; returns how many were removed.

    A runner SIGKILLed together with its fork servers leaves its actions running in their cgroups;
    ``cgroup.kill`` (Linux 5.14+, else SIGKILL of every member, repeated) ends them all at once.
    Whether the runner is gone is decided by `runner_alive`, never by its pid alone.
    """
    removed = 0
    try:
        names = os.listdir(base)
    except OSError:
        return 0
    for name in names:
        match = _SUBTREE_NAME.fullmatch(name)
        path = os.path.join(base, name)
        if not match or int(match.group(1)) == os.getpid() or runner_alive(path, int(match.group(1))):
            continue
        if destroy(path):
            removed += 1
            log.info("removed the cgroup subtree %s of a runner that is gone", path)
    return removed


def runner_alive(subtree: str, pid: int) -> bool:
    """Whether runner `pid`, which made `subtree` (``…/flyte-decl-PID``), still runs, despite pid reuse.

    A runner lives in its subtree's leaf, so a live `pid` inside the subtree is the runner. A live
    `pid` outside it is the runner claiming the subtree or leaving it at exit, or a process that got
    the pid of a runner that died: it counts as the runner only if it is older than every process
    inside and started by the subtree's creation (known from its ctime, to the second, see
    `proctree.started_by`), as `leftovers` judges a per-action cgroup of v1.
    """
    started = proctree.start_time(pid)
    if started is None or not proctree.is_alive(pid):
        return False
    members = [
        member
        for top, _dirs, _files in os.walk(subtree)
        for member in proctree.cgroup_members(os.path.join(top, "cgroup.procs"))
    ]
    if pid in members:
        return True
    if any((proctree.start_time(member) or started + 1) <= started for member in members):
        # Something its runner started, or that joined later, is older than `pid` (or of the same
        # clock tick, which no runner and its action share: a runner takes far longer to start).
        return False
    try:
        made = os.stat(subtree).st_ctime
    except OSError:
        return True  # removed meanwhile: nothing to sweep
    return proctree.started_by(pid, made)


def sweep_scopes(own: str) -> int:
    """In a transient systemd scope `own`, `sweep` the other writable scopes beside it; how many removed.

    A run re-executed in a scope of systemd's user manager (`systemd_scope_command`) makes its
    subtree inside that scope, ``…/app.slice/run-u12.scope/flyte-decl-PID``. SIGKILLed with its fork
    servers, it leaves its actions running there, which keeps the old scope alive, and the next run
    starts in a new scope. Scopes beside this one that this user may write are those of the same
    user manager (systemd delegates each to its user): one ``listdir`` of the parent and one per such
    scope. Emptied, an old scope is collected by systemd. Returns 0 when `own` is not such a scope.
    """
    if not _SCOPE_NAME.fullmatch(os.path.basename(own)):
        return 0
    parent = os.path.dirname(own)
    try:
        names = os.listdir(parent)
    except OSError:
        return 0
    scopes = [os.path.join(parent, name) for name in names if _SCOPE_NAME.fullmatch(name)]
    return sum(sweep(scope) for scope in scopes if scope != own and os.access(scope, os.W_OK))


def destroy(path: str, timeout: float = _SWEEP_WAIT) -> bool:
    """Kill every process in the cgroup subtree `path` and remove it; False if it could not be removed."""
    deadline = time.monotonic() + timeout
    while True:
        cgroups = [top for top, _dirs, _files in os.walk(path, topdown=False)]
        if not cgroups:
            return True
        try:
            _write(os.path.join(path, "cgroup.kill"), "1")
        except OSError:  # before Linux 5.14, or not ours: signal every member
            for cgroup in cgroups:
                for pid in proctree.cgroup_members(os.path.join(cgroup, "cgroup.procs")):
                    proctree.signal_pid(pid, signal.SIGKILL)
        try:
            for cgroup in cgroups:
                os.rmdir(cgroup)
            return True
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                log.warning("cannot remove the cgroup subtree %s: %s", path, exc.strerror)
                return False
        time.sleep(0.01)


def watch_events(cgroup: str) -> int:
    """A descriptor on `cgroup`'s ``memory.events`` that polls ``POLLPRI`` once a counter changes.

    The kernel raises ``POLLPRI`` (and ``POLLERR``) on a changed cgroup file; ``POLLIN`` is always
    set, so wait for ``POLLPRI`` only. Read it with `read_events`, which also re-arms it. Raises
    OSError if the file cannot be opened (no memory controller in `cgroup`).
    """
    fd = os.open(os.path.join(cgroup, "memory.events"), os.O_RDONLY | os.O_CLOEXEC)
    read_events(fd)  # a descriptor polls as changed until it has been read once
    return fd


def read_events(fd: int) -> dict[str, int]:
    """The counters of a ``memory.events`` descriptor from `watch_events`: {"oom_kill": 1, ...}."""
    counters: dict[str, int] = {}
    for line in os.pread(fd, 4096, 0).decode().splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            counters[key] = int(value)
    return counters


def kill_actions_of(own: str, runner_pid: int) -> int:
    """Kill and remove the cgroup of every action and warm worker of runner `runner_pid`, which died.

    For a fork server whose runner is gone without having shut it down (SIGKILL, the OOM killer):
    `own` is the fork server's cgroup, which is the runner's leaf ``…/flyte-decl-RUNNER_PID/runner``,
    and every other cgroup in that subtree belongs to one of the runner's actions or warm workers.
    ``cgroup.kill`` ends every process in them at once, including ones the process tree no longer
    leads to. Returns how many cgroups were removed; 0, having done nothing, when `own` is not that
    runner's leaf (cgroup v1, no cgroups, or a subtree of another runner). The leaf and the subtree
    stay (this process is in the leaf) until the next start's `sweep`.
    """
    subtree = os.path.dirname(own)
    if os.path.basename(own) != RUNNER_LEAF or os.path.basename(subtree) != f"{SUBTREE_PREFIX}{runner_pid}":
        return 0
    try:
        paths = [os.path.join(subtree, name) for name in os.listdir(subtree) if name != RUNNER_LEAF]
    except OSError:
        return 0
    paths = [path for path in paths if os.path.isdir(path)]
    for path in paths:  # every one killed before any is waited for
        with contextlib.suppress(OSError):
            _write(os.path.join(path, "cgroup.kill"), "1")
    return sum(destroy(path) for path in paths)


def _write(path: str, value: str) -> None:
    with open(path, "w") as handle:
        handle.write(value)


# --- a delegated scope from systemd's user manager --------------------------------------------------


# How long a trial scope may take to start before the systemd user manager counts as not answering.
SCOPE_TRIAL_TIMEOUT = 10.0


def systemd_scope_command(
    argv: list[str], environ: Mapping[str, str] | None = None
) -> tuple[list[str] | None, str]:
    """The command that re-runs `argv` in a delegated scope of systemd's user manager, or why not.

    Returns ``(command, "")`` when systemd-run is installed, the user manager's bus is there, a trial
    scope (running `true`) started and nothing turned it off; else ``(None, reason)`` with a one-line reason. The command is
    ``systemd-run --user --scope -p Delegate=yes --quiet --collect -- ARGV``, the way systemd's own
    documentation obtains a delegated cgroup without root: the scope keeps this process's pid,
    terminal, directory and environment, since systemd-run execs ARGV itself.

    >>> systemd_scope_command(["flyte-decl", "run", "main"], {"FLYTE_DECL_SYSTEMD_SCOPE": "0"})
    (None, 'FLYTE_DECL_SYSTEMD_SCOPE=0 turns the delegated systemd scope off')
    """
    env = os.environ if environ is None else environ
    if env.get(ENV_SYSTEMD_SCOPE, "") in ("0", "false", "no", "off"):
        return None, f"{ENV_SYSTEMD_SCOPE}={env[ENV_SYSTEMD_SCOPE]} turns the delegated systemd scope off"
    if env.get(ENV_IN_SCOPE) == "1":
        return None, "already re-executed in a systemd scope, which gave no usable subtree"
    systemd_run = shutil.which("systemd-run", path=env.get("PATH"))
    if systemd_run is None:
        return None, "systemd-run is not installed"
    runtime_dir = env.get("XDG_RUNTIME_DIR")
    if not runtime_dir:
        return None, "systemd's user manager is not running (XDG_RUNTIME_DIR is not set)"
    bus = os.path.join(runtime_dir, "bus")
    if not os.path.exists(bus):
        return None, f"systemd's user manager is not running (no user bus at {bus})"
    failed = _scope_fails(systemd_run, runtime_dir, env.get("PATH", ""))
    if failed:
        return None, failed
    return [*_scope_prefix(systemd_run), *argv], ""


def _scope_prefix(systemd_run: str) -> list[str]:
    return [systemd_run, "--user", "--scope", "-p", "Delegate=yes", "--quiet", "--collect", "--"]


@functools.lru_cache(maxsize=8)
def _scope_fails(systemd_run: str, runtime_dir: str, path: str) -> str:
    """Why a delegated scope cannot be had here (a trial `true` in one failed), or "" (once per process).

    A bus socket can be there while its manager refuses this user (e.g. after `su`): the run would
    then exec into a systemd-run that fails, with no way back to the portable mechanisms.
    """
    env = {**os.environ, "XDG_RUNTIME_DIR": runtime_dir, "PATH": path}
    try:
        trial = [*_scope_prefix(systemd_run), shutil.which("true", path=path) or "true"]
        done = subprocess.run(trial, env=env, capture_output=True, text=True, timeout=SCOPE_TRIAL_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"systemd-run --user --scope failed here: {exc}"
    if done.returncode == 0:
        return ""
    said = done.stderr.strip().splitlines()
    return f"systemd-run --user --scope failed here (exit {done.returncode})" + (
        f": {said[-1]}" if said else ""
    )


def exec_in_systemd_scope(command: list[str]) -> None:
    """Replace this process with `command` (from `systemd_scope_command`), marked as re-executed.

    Returns only if the exec itself failed (then the caller goes on with the portable mechanisms).
    """
    env = {**os.environ, ENV_IN_SCOPE: "1"}
    try:
        os.execve(command[0], command, env)
    except OSError as exc:
        log.warning("cannot run %s: %s", command[0], exc.strerror)
