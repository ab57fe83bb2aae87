"""Enforce an action's CPU and memory limits over its whole process tree.

Two tiers, chosen once per machine by `detect_mechanisms` (measurements: research/limits.md):

- **cgroups**, where a child cgroup can be created under our own: the kernel enforces
  ``memory.limit_in_bytes`` / ``memory.max`` and the CFS quota exactly. The kernel's OOM event
  wakes the Monitor (v1: an eventfd on ``memory.oom_control``; v2: ``POLLPRI`` on
  ``memory.events``), which reads the OOM-kill counter to attribute the kill, then kills the rest
  of the tree (cgroup v1 kills only one process).
- **portable**: a /proc watchdog sums the tree's RSS every 10 ms and confirms a breach with PSS
  before killing a multi-process tree (copy-on-write pages of forked children would otherwise
  count several times); RLIMIT_DATA is a per-process backstop. CPU is pinned to ``ceil(cpu)``
  cores and, for fractions, throttled by SIGSTOP/SIGCONT from the tree's CPU clocks, CFS-style:
  a quota per 100 ms period, over-spend carried into the next period as debt.

How the runtime uses it::

    limiter = ActionLimiter("a1", Limits(memory=250 * 2**20, cpu=0.5), detect_mechanisms(), pool)
    setup = limiter.child_setup()        # sent to the fork server; the child calls setup.apply()
    limiter.attach(pid)
    monitor.add(limiter, on_breach)      # one thread polls every limiter
    ...                                  # the action ends
    monitor.remove(limiter)
    usage = limiter.close()              # peak memory, CPU seconds, samples
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import functools
import itertools
import logging
import math
import os
import re
import resource
import select
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from flyte_decl.runtime import cgpool, cgroup2, proctree

log = logging.getLogger(__name__)

ENV_NO_CGROUPS = "FLYTE_DECL_NO_CGROUPS"
CGROUP_PREFIX = "flyte-decl-"
MEMORY_POLL_INTERVAL = 0.01  # 10 ms: a 1 GiB/s allocator is caught about 10 MiB over
THROTTLE_PERIOD = 0.1  # the CFS default period
THROTTLE_CHECK_INTERVAL = THROTTLE_PERIOD / 20  # measured: 20 checks a period lands within ~1%
SAMPLE_INTERVAL = 0.1
OOM_RECHECK_INTERVAL = 0.002  # after an OOM event whose kill is not counted yet, until it is
OOM_RECHECK_WINDOW = 0.05
MAX_SAMPLES = 1000  # then every other sample is dropped and the interval doubles
DATA_RLIMIT_SLACK = 1 << 30  # RLIMIT_DATA counts reservations too: leave room for arenas and stacks
_CFS_PERIOD_US = int(THROTTLE_PERIOD * 1_000_000)
_CGROUP_MECHANISMS = ("cgroup-v2", "cgroup-v1")
_REUSE_RESIDUAL = 1 << 20  # a v1 memory cgroup still charged with more than this is not reused
_FORCE_EMPTY_ABOVE = 256 << 10  # and one charged with more than this is emptied first
_cgroup_sequence = itertools.count(1)


@dataclass(frozen=True)
class Limits:
    """What one action may use: `memory` in bytes for the whole tree, `cpu` in cores (0.5 = "500m").

    >>> Limits(memory=250 * 2**20, cpu=0.5)
    Limits(memory=262144000, cpu=0.5)
    """

    memory: int | None = None
    cpu: float | None = None


@dataclass(frozen=True)
class ChildSetup:
    """Confinement the freshly forked action applies to itself, after ``os.setsid()``, before user code.

    Picklable, so it travels to the fork server. Applying it in the child (rather than from the
    outside after the fork) means every thread and process the task later starts inherits it.

    >>> ChildSetup(cpus=frozenset({0})).apply()    # pins this process to core 0
    """

    cgroup_procs: tuple[str, ...] = ()  # cgroup.procs files the child writes its own pid into
    cpus: frozenset[int] | None = None  # CPU affinity: ceil(cpu) cores
    data_rlimit: int | None = None  # RLIMIT_DATA backstop: memory limit + 1 GiB (never RLIMIT_AS)

    def apply(self) -> None:
        """Join the cgroups, set the affinity and the backstop rlimit; raises OSError on failure."""
        pid = b"%d" % os.getpid()
        for procs in self.cgroup_procs:
            try:  # os-level: a freshly forked child touches (and copies) fewer pages than with open()
                fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, pid)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise OSError(
                    exc.errno, f"cannot join cgroup {os.path.dirname(procs)}: {exc.strerror}"
                ) from exc
        if self.cpus:
            os.sched_setaffinity(0, self.cpus)
        if self.data_rlimit is not None:
            _, hard = resource.getrlimit(resource.RLIMIT_DATA)
            value = self.data_rlimit if hard == resource.RLIM_INFINITY else min(self.data_rlimit, hard)
            resource.setrlimit(resource.RLIMIT_DATA, (value, value))


@dataclass(frozen=True)
class Mechanisms:
    """How limits are enforced on this machine; see `detect_mechanisms`.

    `cgroup_root` is the cgroup directory under which per-action cgroups are created for memory
    (and for CPU on cgroup v2, where one hierarchy holds both): on v2, this runner's own subtree
    (`cgroup2.claim_subtree`). On cgroup v1 the cpu controller has its own hierarchy, named by
    `cpu_cgroup_root`. `situation` says how a v2 subtree was obtained (``"hierarchy root"``,
    ``"delegated subtree"``, ``"systemd user scope"``); `note` says in one line why the kernel
    does not enforce a resource that the portable mechanisms cover instead. `delegation_missing`
    is True on a cgroup v2 machine where only permission was missing, which a delegated systemd
    user scope gives (`systemd_scope_for_run`).
    """

    memory: str  # "cgroup-v2" | "cgroup-v1" | "watchdog"
    cpu: str  # "cgroup-v2" | "cgroup-v1" | "quota-throttle"
    cgroup_root: str | None = None
    cpu_cgroup_root: str | None = None
    situation: str = ""
    note: str = ""
    delegation_missing: bool = False

    def describe(self) -> dict[str, str]:
        """One human line per resource, for ``flyte-decl doctor`` and the run header.

        >>> Mechanisms("watchdog", "quota-throttle").describe()["memory"]
        '/proc watchdog: tree RSS every 10 ms, PSS check before a kill, RLIMIT_DATA backstop'
        """
        where = f" ({self.situation})" if self.situation else ""
        memory = {
            "cgroup-v2": f"cgroup v2 memory.max under {self.cgroup_root}{where} "
            "(kernel OOM kill of the whole group, attributed by memory.events)",
            "cgroup-v1": f"cgroup v1 memory.limit_in_bytes under {self.cgroup_root} "
            "(kernel OOM kill, then the rest of the tree)",
            "watchdog": "/proc watchdog: tree RSS every 10 ms, PSS check before a kill, RLIMIT_DATA backstop",
        }
        cpu_root = self.cpu_cgroup_root or self.cgroup_root
        cpu = {
            "cgroup-v2": f"cgroup v2 cpu.max under {cpu_root}{where} (CFS quota, 100 ms period)",
            "cgroup-v1": f"cgroup v1 cpu.cfs_quota_us under {cpu_root} (CFS quota, 100 ms period)",
            "quota-throttle": "pinned to ceil(cpu) cores; fractions by SIGSTOP/SIGCONT from the tree's "
            "CPU clocks (100 ms period, debt carried over)",
        }
        return {"memory": memory[self.memory], "cpu": cpu[self.cpu]}

    def summary(self) -> str:
        """The run header's words: mechanisms, and how the cgroup was obtained or why there is none.

        >>> Mechanisms("cgroup-v2", "cgroup-v2", "/sys/fs/cgroup/flyte-decl-7", situation="delegated subtree").summary()
        'cgroup-v2 (memory), cgroup-v2 (cpu) in a delegated subtree'
        """
        text = f"{self.memory} (memory), {self.cpu} (cpu)"
        if self.situation:
            text += f" in a {self.situation}"
        if self.note:
            text += f"; {self.note}"
        return text


@dataclass(frozen=True)
class Usage:
    """What an action used, from `ActionLimiter.close`.

    `peak_memory` is the peak of what the mechanism enforced: the cgroup's high-water mark (which
    includes page cache the kernel charged to it), or the watchdog's PSS-corrected tree RSS.
    `samples` are (monotonic time, tree RSS bytes, cumulative CPU seconds), about every 100 ms;
    under the watchdog the RSS is less the pages PSS found counted twice (copy-on-write).
    """

    peak_memory: int
    cpu_seconds: float
    samples: list[tuple[float, int, float]]
    breach: Breach | None = None  # also set when the breach was only noticed at close


@dataclass(frozen=True)
class Breach:
    """A limit the action broke; its tree has already been killed.

    >>> Breach("oom_killed", "memory limit 250Mi exceeded (peak 262.4Mi)", 262144000, 275146342).kind
    'oom_killed'
    """

    kind: str  # "oom_killed"
    message: str
    limit: int
    peak: int


def _format_bytes(amount: int, *, exact: bool = True) -> str:
    """262144000 -> '250Mi'; with exact=False (or when inexact) one decimal: '262.4Mi'."""
    for suffix, scale in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if amount >= scale:
            if exact and amount % scale == 0:
                return f"{amount // scale}{suffix}"
            return f"{amount / scale:.1f}{suffix}"
    return f"{amount}B"


def _oom_breach(limit: int, peak: int) -> Breach:
    message = f"memory limit {_format_bytes(limit)} exceeded (peak {_format_bytes(peak, exact=False)})"
    return Breach("oom_killed", message, limit, peak)


# --- detection ---------------------------------------------------------------------------------


def detect_mechanisms(*, allow_cgroups: bool = True) -> Mechanisms:
    """Find the best mechanisms here, once per process; on cgroup v2 this claims the runner's subtree.

    ``FLYTE_DECL_NO_CGROUPS=1`` in the environment, or ``allow_cgroups=False``, forces the
    portable mechanisms. On cgroup v2 the first call moves this process into a leaf cgroup of its
    own (see `cgroup2.claim_subtree`); the subtree is removed at exit where the kernel allows it.
    Whenever the kernel does not enforce memory or cpu, `Mechanisms.note` says why in one line.

    >>> detect_mechanisms(allow_cgroups=False).summary()
    'watchdog (memory), quota-throttle (cpu); cgroups are turned off for this runner'
    """
    if os.environ.get(ENV_NO_CGROUPS, "") not in ("", "0"):
        return Mechanisms(
            "watchdog",
            "quota-throttle",
            note=f"{ENV_NO_CGROUPS}={os.environ[ENV_NO_CGROUPS]} turns cgroups off",
        )
    if not allow_cgroups:
        return Mechanisms("watchdog", "quota-throttle", note="cgroups are turned off for this runner")
    return _detect_cgroups()


@functools.lru_cache(maxsize=1)
def _detect_cgroups() -> Mechanisms:
    return mechanisms_in(*own_cgroup_dirs())


def mechanisms_in(unified: str | None, v1: Mapping[str, str]) -> Mechanisms:
    """The mechanisms for this process's cgroups: `unified` on the v2 hierarchy, {v1 controller: dir}.

    Claims a v2 subtree where one can be had (`cgroup2.claim_subtree`), else probes v1; each
    resource the kernel does not enforce gets the portable mechanism and `Mechanisms.note` the
    reason, e.g. ``cgroup v1 is not writable here (memory: /sys/fs/cgroup/memory: Permission denied)``.
    """
    memory, memory_root = "watchdog", None
    cpu, cpu_root = "quota-throttle", None
    situation = note = ""
    delegation_missing = False
    claimed = cgroup2.claim_subtree(unified) if unified else None
    if isinstance(claimed, cgroup2.Subtree):
        atexit.register(cgroup2.release, claimed)
        situation = claimed.situation
        if "memory" in claimed.controllers and not _probe(claimed.path, ("memory.max",)):
            memory, memory_root = "cgroup-v2", claimed.path
        if "cpu" in claimed.controllers and not _probe(claimed.path, ("cpu.max",)):
            cpu, cpu_root = "cgroup-v2", claimed.path
        missing = [name for name, how in (("memory", memory), ("cpu", cpu)) if not how.startswith("cgroup")]
        if missing:  # e.g. a systemd user manager that delegates memory but not cpu
            note = f"no {' or '.join(missing)} controller was delegated to {claimed.base}"
    elif claimed and unified and set(cgroup2.WANTED) & cgroup2.controllers(cgroup2.hierarchy_root(unified)):
        note = claimed.reason  # a cgroup v2 machine whose kernel enforcement we cannot reach
        if claimed.denied:  # what a delegated systemd user scope would give
            delegation_missing = True
            _, why_not = cgroup2.systemd_scope_command([])
            note += "; a run re-executes itself in a systemd user scope" if not why_not else f"; {why_not}"
    unwritable: list[str] = []
    if memory == "watchdog" and "memory" in v1:
        failed = _probe(v1["memory"], ("memory.limit_in_bytes",))
        if failed:
            unwritable.append(f"memory: {failed}")
        else:
            memory, memory_root = "cgroup-v1", v1["memory"]
    if cpu == "quota-throttle" and "cpu" in v1:
        failed = _probe(v1["cpu"], ("cpu.cfs_quota_us", "cpu.cfs_period_us"))
        if failed:
            unwritable.append(f"cpu: {failed}")
        else:
            cpu, cpu_root = "cgroup-v1", v1["cpu"]
    for root in {root for root in (memory_root, cpu_root) if root}:
        _remove_stale_cgroups(root)
    if "cgroup-v2" not in (memory, cpu):
        situation = ""
    if not note and unwritable:
        note = f"cgroup v1 is not writable here ({'; '.join(unwritable)})"
    elif not note and isinstance(claimed, cgroup2.Unclaimed):
        note = claimed.reason  # e.g. the empty unified hierarchy of a machine without v1 controllers
    elif not note:  # none is mounted, or a cgroup namespace's (a container's) was not mounted inside it
        note = "no mounted cgroup hierarchy with a memory or cpu controller shows this process's cgroup"
    if memory != "watchdog" and cpu != "quota-throttle":
        note = ""
    if cpu_root == memory_root or cpu_root is None:
        return Mechanisms(memory, cpu, memory_root, situation=situation, note=note,
                          delegation_missing=delegation_missing)  # fmt: skip
    return Mechanisms(memory, cpu, memory_root, cpu_root, situation, note, delegation_missing)


def systemd_scope_for_run(argv: list[str]) -> list[str] | None:
    """The command to re-execute a run in a delegated systemd user scope, or None to run here.

    Only on a cgroup v2 machine where this process could not claim a subtree of its own for want
    of permission (a non-root user in a login session) and systemd's user manager is there to
    delegate one; ``FLYTE_DECL_SYSTEMD_SCOPE=0`` (or ``FLYTE_DECL_NO_CGROUPS=1``) turns it off.
    The reason it is not used is in `Mechanisms.note`. Needs no configuration: a run decides this
    before it imports any of the user's modules.
    """
    if not detect_mechanisms().delegation_missing:
        return None
    command, _ = cgroup2.systemd_scope_command(argv)
    return command


def _unescape_mount(path: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal (\040).
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def own_cgroup_dirs() -> tuple[str | None, dict[str, str]]:
    """This process's own cgroup directory: (on the v2 hierarchy, {v1 controller: directory})."""
    try:
        with open("/proc/self/cgroup") as handle:
            membership = [line.rstrip("\n").split(":", 2) for line in handle if line.count(":") >= 2]
        with open("/proc/self/mountinfo") as handle:
            mounts = handle.read().splitlines()
    except OSError:
        return None, {}
    unified: str | None = None
    v1: dict[str, str] = {}
    for line in mounts:
        head, _, tail = line.partition(" - ")
        fields, tail_fields = head.split(), tail.split()
        if len(fields) < 5 or len(tail_fields) < 3:
            continue
        mount_root, mount_point = _unescape_mount(fields[3]), _unescape_mount(fields[4])
        fstype, options = tail_fields[0], set(tail_fields[2].split(","))
        for hierarchy, controllers, path in membership:
            if fstype == "cgroup2" and hierarchy == "0" and not controllers:
                names = ["unified"]
            elif fstype == "cgroup" and controllers and set(controllers.split(",")) <= options:
                names = controllers.split(",")
            else:
                continue
            if path != mount_root and not path.startswith(mount_root.rstrip("/") + "/"):
                continue  # our cgroup is not visible through this mount
            directory = os.path.join(mount_point, path[len(mount_root) :].lstrip("/")).rstrip("/")
            if not os.path.isdir(directory):
                continue
            for name in names:
                if name == "unified":
                    unified = unified or directory
                else:
                    v1.setdefault(name, directory)
    return unified, v1


def _probe(parent: str, files: tuple[str, ...]) -> str:
    """Why no child cgroup with the controller's `files` can be made under `parent`, or "" if it can.

    >>> _probe("/nonexistent", ("memory.limit_in_bytes",))
    '/nonexistent: No such file or directory'
    """
    path = os.path.join(parent, f"{CGROUP_PREFIX}probe-{os.getpid()}-{next(_cgroup_sequence)}")
    try:
        os.mkdir(path)
    except OSError as exc:
        return f"{parent}: {exc.strerror or exc}"
    try:
        for name in (*files, "cgroup.procs"):
            if not os.access(os.path.join(path, name), os.W_OK):
                return f"{parent}: no writable {name} in a child cgroup"
        return ""
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(path)


def _remove_stale_cgroups(root: str) -> None:
    """rmdir empty per-action cgroups left by a runner that was killed before it could clean up."""
    pattern = re.compile(re.escape(CGROUP_PREFIX) + r"(?:probe-)?(\d+)-")
    with contextlib.suppress(OSError):
        for name in os.listdir(root):
            match = pattern.match(name)
            if match and int(match.group(1)) != os.getpid() and not proctree.is_alive(int(match.group(1))):
                # rmdir refuses a cgroup that still has processes: only empty leftovers go.
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(root, name))


# --- cgroups -----------------------------------------------------------------------------------


class _Cgroup:
    """One per-action cgroup directory (v1: for one controller; v2: for all).

    On cgroup v1 it may serve one action after another (`cgpool`): `reset` makes it as good as
    new, and the settings an earlier action wrote are remembered so that unchanged ones are not
    written again. Its name carries the first action's id.
    """

    def __init__(self, root: str, version: int, action_id: str) -> None:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", action_id)[:64]
        self.version = version
        self.parent = root
        self.path = os.path.join(root, f"{CGROUP_PREFIX}{os.getpid()}-{next(_cgroup_sequence)}-{safe}")
        self.oom_watch: tuple[int, int] | None = None  # see `watch_oom`
        self._settings: dict[str, str] = {}  # what was written, by file name
        os.mkdir(self.path)

    @classmethod
    def take(cls, root: str, version: int, action_id: str) -> _Cgroup:
        """A cgroup for an action: a reset one from the pool (cgroup v1), else a new one."""
        reused = cgpool.POOL.take(root) if version == 1 else None
        return reused if isinstance(reused, _Cgroup) else cls(root, version, action_id)

    def _set(self, name: str, value: str) -> None:
        """Write a setting, unless this cgroup already holds that value."""
        if self._settings.get(name) != value:
            self._settings.pop(name, None)  # unknown until the write succeeds
            self._write(name, value)
            self._settings[name] = value

    @property
    def procs(self) -> str:
        return os.path.join(self.path, "cgroup.procs")

    def _write(self, name: str, value: str) -> None:
        with open(os.path.join(self.path, name), "w") as handle:
            handle.write(value)

    def _read(self, name: str) -> str | None:
        try:
            with open(os.path.join(self.path, name)) as handle:
                return handle.read()
        except OSError:
            return None

    def _keyed(self, name: str, key: str) -> int | None:
        """The value of `key` in a flat keyed file such as memory.oom_control or memory.events."""
        return _keyed_value(self._read(name) or "", key)

    def limit_memory(self, limit: int | None) -> None:
        """Set the memory limit in bytes; None: none (only a reused v1 cgroup has one to lift)."""
        if self.version == 2:
            if limit is None:
                return  # a v2 cgroup is never reused: a new one has no limit
            self._write("memory.max", str(limit))
            # No swap, and kill the whole group on OOM, not just one process.
            for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
                with contextlib.suppress(FileNotFoundError):
                    self._write(name, value)
            return
        if limit is None and "memory.limit_in_bytes" not in self._settings:
            return
        value = "-1" if limit is None else str(limit)
        # The kernel keeps memory <= memory+swap: raise memory+swap first, lower it last.
        previous = self._settings.get("memory.limit_in_bytes")
        raising = previous not in (None, "-1") and (limit is None or int(str(previous)) < limit)
        if not raising:
            self._set("memory.limit_in_bytes", value)
        try:  # memory+swap equal to memory: the tree cannot dodge the limit by swapping
            self._set("memory.memsw.limit_in_bytes", value)
        except OSError:  # no swap accounting on this kernel
            with contextlib.suppress(OSError):
                self._set("memory.swappiness", "0")
        if raising:
            self._set("memory.limit_in_bytes", value)

    def limit_cpu(self, cores: float) -> None:
        quota = max(1000, round(cores * _CFS_PERIOD_US))  # the kernel's minimum quota is 1 ms
        if self.version == 2:
            self._write("cpu.max", f"{quota} {_CFS_PERIOD_US}")
        else:
            self._set("cpu.cfs_period_us", str(_CFS_PERIOD_US))
            self._set("cpu.cfs_quota_us", str(quota))

    def oom_kills(self) -> int:
        if self.version == 2:
            return self._keyed("memory.events", "oom_kill") or 0
        return self._keyed("memory.oom_control", "oom_kill") or 0

    def watch_oom(self) -> tuple[int, int]:
        """A descriptor that polls ready (for the mask beside it) when the OOM killer acts here.

        v1: an eventfd registered on ``memory.oom_control`` through ``cgroup.event_control``
        (the kernel signals it when the group is out of memory, and once more when the group is
        removed); v2: ``memory.events`` (`cgroup2.watch_events`), ready on ``POLLPRI``. Read it
        with `oom_events`. Raises OSError where the kernel offers neither. Opened once per cgroup
        (kept while it is reused), closed by `remove`.
        """
        if self.oom_watch is None:
            self.oom_watch = self._open_oom_watch()
        return self.oom_watch

    def _open_oom_watch(self) -> tuple[int, int]:
        if self.version == 2:
            return cgroup2.watch_events(self.path), select.POLLPRI
        event = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        try:
            control = os.open(os.path.join(self.path, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
            try:
                self._write("cgroup.event_control", f"{event} {control}")
            finally:
                os.close(control)  # the registration holds the cgroup, not this descriptor
        except OSError:
            os.close(event)
            raise
        return event, select.POLLIN

    def oom_events(self, fd: int) -> int:
        """How many OOM events (the group out of memory) `fd` from `watch_oom` has seen; re-arms it."""
        if self.version == 2:
            return cgroup2.read_events(fd).get("oom", 0)  # cumulative: the caller compares
        try:
            return os.eventfd_read(fd)
        except BlockingIOError:
            return 0

    def peak_memory(self) -> int | None:
        text = self._read("memory.peak" if self.version == 2 else "memory.max_usage_in_bytes")
        return int(text) if text and text.strip().isdigit() else None

    def reset(self) -> bool:
        """Make this (empty) cgroup as good as new for another action; False if it cannot be.

        Only on cgroup v1, where a new cgroup costs most (v2's ``memory.peak`` can be reset only
        from Linux 6.12, per open file). Refused if a process is still inside or the kernel ever
        OOM-killed in it (``oom_kill`` cannot be reset, and attribution reads it). A memory
        cgroup's leftover charge (page cache, shared memory the action left) above 256 KiB is
        reclaimed with ``memory.force_empty``, and the cgroup refused if more than 1 MiB stays;
        then its peak is reset (``memory.max_usage_in_bytes``, to that leftover) and its OOM event
        read, so the next action starts as in a new cgroup, give or take that leftover.
        """
        if self.version != 1 or proctree.cgroup_members(self.procs):
            return False
        oom_control = self._read("memory.oom_control")
        if oom_control is None:
            return os.path.isdir(self.path)  # a cpu cgroup: its quota is written again
        try:
            if (_keyed_value(oom_control, "oom_kill") or 0) > 0:
                return False
            if int(self._read("memory.usage_in_bytes") or _REUSE_RESIDUAL + 1) > _FORCE_EMPTY_ABOVE:
                self._write("memory.force_empty", "0")
                if int(self._read("memory.usage_in_bytes") or _REUSE_RESIDUAL + 1) > _REUSE_RESIDUAL:
                    return False
            self._write("memory.max_usage_in_bytes", "0")
        except (OSError, ValueError):
            return False
        if self.oom_watch is not None:
            self.oom_events(self.oom_watch[0])
        return True

    def kill(self) -> None:
        """cgroup v2's atomic kill of every member (kernel 5.14+); v1 has none, see `proctree.kill_tree`."""
        if self.version == 2:
            with contextlib.suppress(OSError):
                self._write("cgroup.kill", "1")

    def remove(self, timeout: float) -> bool:
        """Kill what is left inside, then rmdir (retried while the dying processes leave)."""
        if self.oom_watch is not None:  # first: v1 signals the eventfd when the group goes
            os.close(self.oom_watch[0])
            self.oom_watch = None
        deadline = time.monotonic() + timeout
        while True:
            members = proctree.cgroup_members(self.procs)
            self.kill()
            for pid in members:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            try:
                os.rmdir(self.path)
                return True
            except FileNotFoundError:
                return True
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                    log.warning("cannot remove cgroup %s: %s", self.path, exc.strerror)
                    return False
            time.sleep(0.005)


def _keyed_value(text: str, key: str) -> int | None:
    """The value of `key` in the text of a flat keyed file ("oom_kill 0" lines)."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key:
            return int(parts[1])
    return None


# --- the portable mechanisms -------------------------------------------------------------------


class _TreeCpu:
    """Cumulative CPU seconds of a process tree, counted once each, including exited processes.

    Live processes are read from their CPU clocks. A process that exits and is reaped by its
    parent inside the tree moves into that parent's cutime/cstime, which are read whenever the
    tree's membership changes; a process that leaves any other way keeps its last reading.
    """

    def __init__(self) -> None:
        self._own: dict[int, float] = {}
        self._reaped: dict[int, float] = {}
        self._parent: dict[int, int] = {}
        self._gone = 0.0
        self.total = 0.0

    def update(self, tree: dict[int, int]) -> float:
        left = self._own.keys() - tree.keys()
        for pid in left:
            parent = self._parent.pop(pid)
            if parent not in tree:  # nobody in the tree waited for it: its time would be lost
                self._gone += self._own[pid] + self._reaped[pid]
            del self._own[pid], self._reaped[pid]
        for pid, parent in tree.items():
            own = proctree.cpu_seconds(pid)
            self._own[pid] = own if own is not None else self._own.get(pid, 0.0)
            if left or pid not in self._reaped:
                self._reaped[pid] = proctree.reaped_children_cpu_seconds(pid)
            self._parent[pid] = parent
        current = self._gone + sum(self._own.values()) + sum(self._reaped.values())
        self.total = max(self.total, current)  # reaped time is tick-rounded: never report going back
        return current


class _Throttle:
    """CFS-like quota: `cores` x period of CPU per period, over-spend carried forward as debt.

    Unused quota is not banked beyond one period, so an idle task cannot save up for a burst.
    """

    def __init__(self, cores: float, period: float = THROTTLE_PERIOD) -> None:
        self.quota = cores * period
        self.period = period
        self.tokens = self.quota
        self.period_end = 0.0
        self.last_cpu: float | None = None

    def should_stop(self, now: float, cpu: float) -> bool:
        if self.last_cpu is None:
            self.period_end = now + self.period
        else:
            self.tokens -= cpu - self.last_cpu
        self.last_cpu = cpu
        if now >= self.period_end:
            elapsed = 1 + int((now - self.period_end) / self.period)
            self.tokens = min(self.quota, self.tokens + elapsed * self.quota)
            self.period_end += elapsed * self.period
        return self.tokens <= 0


class _Watchdog:
    """Tree memory from summed RSS, confirmed with PSS before calling a breach.

    PSS costs about 1 ms per large process, so it runs only while RSS is over the limit: once to
    confirm, then again when RSS less the double counting PSS last found is over the limit, or
    at most every 100 ms (children writing to copy-on-write pages raise PSS, not RSS). What PSS
    found is kept per process: a newcomer counts at full RSS until the next PSS check, and any
    departure forgets it all, since the remaining sharers' PSS has grown.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.peak = 0
        self.current = 0  # the tree's memory at the last check: RSS less what PSS found shared
        self._shared: dict[int, int] = {}  # pid -> RSS minus PSS at the last PSS check
        self._pss_at = -math.inf
        self._pss_cost = 0.0

    def check(self, now: float, pids: Iterable[int]) -> int | None:
        """Measure the tree; returns its confirmed memory if that is over the limit, else None."""
        rss = {pid: proctree.rss_bytes(pid) for pid in pids}
        if self._shared.keys() - rss.keys():
            self._shared.clear()
        total = sum(rss.values())
        self.current = total - sum(self._shared.get(pid, 0) for pid in rss)
        if total > self.limit and (
            self.current > self.limit or now - self._pss_at >= max(0.1, 20 * self._pss_cost)
        ):
            started = time.perf_counter()
            pss = {pid: proctree.pss_bytes(pid) for pid in rss}
            self._pss_cost, self._pss_at = time.perf_counter() - started, now
            self._shared = {pid: max(0, rss[pid] - pss[pid]) for pid in rss}
            self.current = sum(pss.values())
        self.peak = max(self.peak, self.current)
        return self.current if self.current > self.limit else None


# --- the limiter -------------------------------------------------------------------------------


class CpuPool:
    """Hands out cores for pinning: the least-loaded ones, round-robin among equals.

    >>> pool = CpuPool([0, 1])
    >>> pool.acquire(1), pool.acquire(1)
    (frozenset({0}), frozenset({1}))
    """

    def __init__(self, cpus: Iterable[int] | None = None) -> None:
        self._cpus = sorted(set(cpus) if cpus is not None else os.sched_getaffinity(0))
        if not self._cpus:
            raise ValueError("a CpuPool needs at least one CPU")
        self._load = dict.fromkeys(self._cpus, 0)
        self._next = 0
        self._lock = threading.Lock()

    @property
    def cpus(self) -> frozenset[int]:
        """Every core in the pool."""
        return frozenset(self._cpus)

    def acquire(self, count: int) -> frozenset[int]:
        """`count` cores (clamped to 1..pool size), to be given back with `release`."""
        count = max(1, min(count, len(self._cpus)))
        with self._lock:
            rotated = self._cpus[self._next :] + self._cpus[: self._next]
            chosen = sorted(rotated, key=self._load.__getitem__)[:count]  # stable: ties stay round-robin
            for cpu in chosen:
                self._load[cpu] += 1
            self._next = (self._cpus.index(chosen[-1]) + 1) % len(self._cpus)
            return frozenset(chosen)

    def release(self, cpus: frozenset[int]) -> None:
        """Give back cores from `acquire`."""
        with self._lock:
            for cpu in cpus:
                if self._load.get(cpu, 0) > 0:
                    self._load[cpu] -= 1


class ActionLimiter:
    """Enforces one action's `Limits` on its process tree and measures what it used.

    Thread-safe: the Monitor's thread polls while the runner's thread may kill or close. Never
    needs to be the parent of the action: everything goes through /proc, cgroup files and signals.
    """

    def __init__(self, action_id: str, limits: Limits, mechanisms: Mechanisms, cpu_pool: CpuPool) -> None:
        self.action_id = action_id
        self.limits = limits
        self.mechanisms = mechanisms
        self._pool = cpu_pool
        self._lock = threading.RLock()
        self._setup: ChildSetup | None = None
        self._memory_cgroup: _Cgroup | None = None
        self._cpu_cgroup: _Cgroup | None = None
        self._watchdog: _Watchdog | None = None
        self._throttle: _Throttle | None = None
        self._cpus: frozenset[int] | None = None
        self._pid: int | None = None
        self._root_start: int | None = None
        self._seen: dict[int, int] = {}  # pid -> start time, of every process seen in the tree
        self._tree: dict[int, int] = {}
        self._cpu = _TreeCpu()
        self._stopped: set[int] = set()  # pids SIGSTOPped by the throttle
        self._samples: list[tuple[float, int, float]] = []
        self._sample_interval = SAMPLE_INTERVAL
        self._next_sample = 0.0
        self._rss_peak = 0
        self._breach: Breach | None = None
        self._killed = False
        self._usage: Usage | None = None
        self._oom_watch: tuple[int, int] | None = None  # (fd, poll mask) of the kernel's OOM event
        self._oom_seen = 0  # OOM events counted so far (v2 counts cumulatively)
        self._oom_recheck_until = 0.0  # an OOM event came, its kill not counted yet: poll often

    @property
    def poll_interval(self) -> float:
        """How often `poll` wants to run, in seconds.

        5 ms while throttling CPU; 10 ms for the watchdog, or a memory cgroup whose OOM event cannot
        be watched; 2 ms for a moment after an OOM event whose kill the counter does not show yet;
        otherwise only to take samples (100 ms): the kernel's OOM event wakes the Monitor.
        """
        if self._throttle is not None:
            return THROTTLE_CHECK_INTERVAL
        if self._oom_recheck_until and time.monotonic() < self._oom_recheck_until:
            return OOM_RECHECK_INTERVAL
        unwatched = (
            self._memory_cgroup is not None and self.limits.memory is not None and self._oom_watch is None
        )
        if self._watchdog is not None or unwatched:
            return MEMORY_POLL_INTERVAL
        return SAMPLE_INTERVAL

    @property
    def oom_watch(self) -> tuple[int, int] | None:
        """(descriptor, poll mask) that the kernel makes ready on an OOM event; then call `oom_event`."""
        return self._oom_watch

    def oom_event(self) -> Breach | None:
        """The OOM event descriptor polled ready: attribute and kill as `poll` does; a breach once."""
        with self._lock:
            memory_cgroup, watch = self._memory_cgroup, self._oom_watch
            if memory_cgroup is None or watch is None or self._usage is not None:
                return None
            seen = memory_cgroup.oom_events(watch[0])
            if memory_cgroup.version == 2:
                seen, self._oom_seen = seen - self._oom_seen, seen
            if self._pid is None or self._killed:
                return None
            if self._kernel_oom_killed():
                return self._breached(self._cgroup_peak())
            if seen > 0:  # the kernel says out of memory before it kills: look again soon
                self._oom_recheck_until = time.monotonic() + OOM_RECHECK_WINDOW
            return None

    @property
    def breach(self) -> Breach | None:
        """The breach found so far, if any (`poll` returns it only once)."""
        return self._breach

    def child_setup(self) -> ChildSetup:
        """What the child must apply to itself; creates the action's cgroups (call before the fork)."""
        with self._lock:
            if self._setup is None:
                self._setup = self._prepare()
            return self._setup

    def _prepare(self) -> ChildSetup:
        limits, mechanisms = self.limits, self.mechanisms
        try:
            if mechanisms.memory in _CGROUP_MECHANISMS and mechanisms.cgroup_root:
                self._memory_cgroup = _Cgroup.take(
                    mechanisms.cgroup_root, _version(mechanisms.memory), self.action_id
                )
                self._memory_cgroup.limit_memory(limits.memory)
                if limits.memory is not None:
                    self._watch_oom()
            cpu_root = mechanisms.cpu_cgroup_root or mechanisms.cgroup_root
            if limits.cpu is not None and mechanisms.cpu in _CGROUP_MECHANISMS and cpu_root:
                if mechanisms.cpu == "cgroup-v2" and self._memory_cgroup and self._memory_cgroup.version == 2:
                    self._cpu_cgroup = self._memory_cgroup  # one v2 cgroup holds both controllers
                else:
                    self._cpu_cgroup = _Cgroup.take(cpu_root, _version(mechanisms.cpu), self.action_id)
                self._cpu_cgroup.limit_cpu(limits.cpu)
        except OSError as exc:
            # Fall back to the portable mechanisms for this action rather than run it unconfined.
            log.warning("action %s: cgroup setup failed (%s); using the /proc watchdog", self.action_id, exc)
            self._remove_cgroups(timeout=0.0)
        data_rlimit = None
        if limits.memory is not None and self._memory_cgroup is None:
            self._watchdog = _Watchdog(limits.memory)
            data_rlimit = limits.memory + DATA_RLIMIT_SLACK
        if limits.cpu is not None and self._cpu_cgroup is None:
            self._cpus = self._pool.acquire(math.ceil(limits.cpu))
            if limits.cpu < len(self._cpus) - 1e-9:
                self._throttle = _Throttle(limits.cpu)
        procs = tuple(dict.fromkeys(cg.procs for cg in (self._memory_cgroup, self._cpu_cgroup) if cg))
        return ChildSetup(cgroup_procs=procs, cpus=self._cpus, data_rlimit=data_rlimit)

    def _watch_oom(self) -> None:
        assert self._memory_cgroup is not None
        try:
            self._oom_watch = self._memory_cgroup.watch_oom()
        except OSError as exc:  # then the Monitor reads the OOM-kill counter every 10 ms
            log.debug("action %s: no OOM event to watch (%s)", self.action_id, exc)

    def attach(self, pid: int) -> None:
        """Start watching the action's main process `pid` (a session and process-group leader)."""
        with self._lock:
            if self._setup is None:
                raise RuntimeError("ActionLimiter.attach() before child_setup(): the child is not confined")
            self._pid = pid
            self._root_start = proctree.start_time(pid)
            self._next_sample = time.monotonic()

    def poll(self) -> Breach | None:
        """One round of enforcement and sampling; returns a breach once, after killing the tree."""
        with self._lock:
            if self._pid is None or self._usage is not None or self._killed:
                return None
            now = time.monotonic()
            if self._kernel_oom_killed():
                return self._breached(self._cgroup_peak())
            sampling = now >= self._next_sample
            if not (sampling or self._watchdog or self._throttle):
                return None
            tree = self._walk()
            cpu = self._cpu.update(tree) if (sampling or self._throttle) else 0.0
            if self._throttle is not None:
                self._throttle_step(now, cpu, tree)
            memory = None
            if self._watchdog is not None:
                over = self._watchdog.check(now, tree)
                if over is not None:
                    return self._breached(over)
                memory = self._watchdog.current
            if sampling:
                self._sample(now, memory if memory is not None else sum(map(proctree.rss_bytes, tree)), cpu)
            return None

    def kill(self) -> None:
        """SIGKILL the whole tree: group, descendants, escaped ones, cgroup members. Idempotent.

        Does not wait for the processes to die; `close` does.
        """
        with self._lock:
            if self._pid is not None:
                self._killed = True
                self._kill_tree()

    def close(self, max_rss: int | None = None) -> Usage:
        """Final numbers; kills stragglers, removes the cgroups, gives back the cores. Idempotent.

        `max_rss` (bytes) is the action's resident-set high-water mark from its reaper (``wait4``):
        the peak when the watchdog took no sample before the action was gone (a task of a few
        milliseconds).
        """
        with self._lock:
            if self._usage is not None:
                return self._usage
            if self._pid is not None:
                if self._breach is None and self._kernel_oom_killed():  # it struck between two polls
                    assert self.limits.memory is not None
                    self._breach = _oom_breach(self.limits.memory, self._cgroup_peak())
                proctree.wait_gone(self._kill_tree(), timeout=2.0)
            if self._memory_cgroup is not None:
                peak = self._cgroup_peak()
            else:
                peak = self._watchdog.peak if self._watchdog else self._rss_peak
                peak = peak or max_rss or 0
            if self._breach is not None:
                peak = max(peak, self._breach.peak)
            self._remove_cgroups(timeout=2.0)
            if self._cpus is not None:
                self._pool.release(self._cpus)
                self._cpus = None
            self._usage = Usage(peak, self._cpu.total, list(self._samples), self._breach)
            return self._usage

    # -- internals (called with the lock held) --

    def _root_is_ours(self) -> bool:
        """Whether the pid still names our action (or nothing), so its group may be signalled."""
        assert self._pid is not None
        current = proctree.start_time(self._pid)
        return current is None or current == self._root_start

    def _walk(self) -> dict[int, int]:
        assert self._pid is not None
        # A pid that names another process now (ours was reaped, the pid reused) is not our tree.
        ours = self._root_start is not None and proctree.start_time(self._pid) == self._root_start
        tree = proctree.walk(self._pid) if ours else {}
        for pid in tree.keys() - self._seen.keys():
            if (started := proctree.start_time(pid)) is not None:
                self._seen[pid] = started
        for pid in self._seen.keys() - tree.keys():
            # Left the tree: dead (forget it) or escaped by re-parenting (keep it, to kill it later).
            if proctree.start_time(pid) != self._seen[pid] or not proctree.is_alive(pid):
                del self._seen[pid]
        self._tree = tree
        return tree

    def _escaped(self) -> list[int]:
        return [
            pid
            for pid, started in self._seen.items()
            if pid not in self._tree and proctree.start_time(pid) == started
        ]

    def _kill_tree(self) -> set[int]:
        assert self._pid is not None
        self._cpu.update(self._walk())  # the last CPU reading, while the processes still exist
        ours = self._root_is_ours()
        cgroups = [cg for cg in (self._memory_cgroup, self._cpu_cgroup) if cg]
        for cgroup in cgroups:
            cgroup.kill()
        killed = proctree.kill_tree(
            self._pid if ours else None,
            pgid=self._pid if ours else None,
            cgroup_procs=[cg.procs for cg in cgroups],
            extra=self._escaped(),
        )
        self._stopped.clear()
        return killed

    def _breached(self, peak: int) -> Breach:
        assert self.limits.memory is not None
        self._breach = _oom_breach(self.limits.memory, peak)
        self._killed = True
        self._kill_tree()
        return self._breach

    def _kernel_oom_killed(self) -> bool:
        cgroup = self._memory_cgroup
        return cgroup is not None and self.limits.memory is not None and cgroup.oom_kills() > 0

    def _cgroup_peak(self) -> int:
        assert self._memory_cgroup is not None
        peak = self._memory_cgroup.peak_memory()
        return peak if peak is not None else self._rss_peak

    def _throttle_step(self, now: float, cpu: float, tree: dict[int, int]) -> None:
        assert self._throttle is not None and self._pid is not None
        if self._throttle.should_stop(now, cpu) and tree:  # an empty tree: the root is not ours
            # The group and every member (a setsid'd one is outside the group), on every check
            # while over quota: a SIGCONT from elsewhere (kill_tree, a shell) must not free it.
            proctree.signal_group(self._pid, signal.SIGSTOP)
            for pid in tree:
                proctree.signal_pid(pid, signal.SIGSTOP)
            self._stopped.update(tree)
        elif self._stopped:
            proctree.signal_group(self._pid, signal.SIGCONT)
            for pid in self._stopped:
                proctree.signal_pid(pid, signal.SIGCONT)
            self._stopped.clear()

    def _sample(self, now: float, rss: int, cpu: float) -> None:
        self._rss_peak = max(self._rss_peak, rss)
        self._samples.append((now, rss, cpu))
        if len(self._samples) > MAX_SAMPLES:  # keep the whole run at a coarser grain
            self._samples = self._samples[::2]
            self._sample_interval *= 2
        self._next_sample = now + self._sample_interval

    def _remove_cgroups(self, timeout: float) -> None:
        """Remove the cgroups; with a `timeout` (the action is over), v1's go back to the pool."""
        self._oom_watch = None  # the cgroup's own: closed when the cgroup is removed
        for cgroup in dict.fromkeys(cg for cg in (self._memory_cgroup, self._cpu_cgroup) if cg):
            if timeout > 0 and cgroup.version == 1:
                cgpool.POOL.give_back(cgroup.parent, cgroup)
            else:
                cgroup.remove(timeout)
        self._memory_cgroup = self._cpu_cgroup = None


def _version(mechanism: str) -> int:
    return 2 if mechanism == "cgroup-v2" else 1


# --- the monitor -------------------------------------------------------------------------------


class Monitor:
    """One background thread that polls every registered limiter, and wakes on their OOM events.

    Each limiter is polled as often as its `ActionLimiter.poll_interval` asks, all at the shortest
    interval any of them asks for (a poll costs 10-35 us, so one interval for all keeps the loop
    simple): 10 ms with the watchdog, 5 ms while one throttles CPU, and only every 100 ms to take
    samples when every memory limit is a cgroup's. A cgroup's OOM event (`ActionLimiter.oom_watch`)
    wakes the thread at once, so a kernel OOM kill is attributed within milliseconds, not a poll.

    A breach is handed to the limiter's `on_breach` exactly once, on the monitor's thread, or on
    the caller's thread by `remove` if the breach was only noticed then (e.g. the kernel OOM-killed
    the action and it exited before the monitor looked).

    >>> monitor = Monitor()
    >>> monitor.add(limiter, lambda breach: print(breach.message))
    >>> monitor.remove(limiter); monitor.stop()
    """

    def __init__(self, interval: float = SAMPLE_INTERVAL) -> None:
        self.interval = interval  # the longest wait between two polls
        self._entries: dict[ActionLimiter, Callable[[Breach], None]] = {}
        self._lock = threading.Lock()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._added: list[ActionLimiter] = []  # to poll at once, whatever the interval
        self._stopping = False
        self._thread: threading.Thread | None = None

    def add(self, limiter: ActionLimiter, on_breach: Callable[[Breach], None]) -> None:
        """Start polling `limiter`; `on_breach` is called (on the monitor's thread) after a kill."""
        with self._lock:
            if self._stopping:
                raise RuntimeError("Monitor.add() after stop()")
            self._entries[limiter] = on_breach
            self._added.append(limiter)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="flyte-decl-limits", daemon=True)
                self._thread.start()
        self._wake()

    def remove(self, limiter: ActionLimiter) -> None:
        """Stop polling `limiter`, after one last poll; delivers a breach not yet delivered."""
        with self._lock:
            entry = self._entries.pop(limiter, None)
        if entry is not None:
            breach = limiter.poll() or limiter.breach
            if breach is not None:
                self._deliver(entry, breach)

    def stop(self) -> None:
        """Stop the thread (limiters still registered are simply no longer polled)."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            thread = self._thread
        self._wake()
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # a full pipe wakes the thread just as well
            os.write(self._wake_write, b"!")

    def _run(self) -> None:
        deadline = time.monotonic()
        while True:
            with self._lock:
                if self._stopping:
                    return
                limiters = list(self._entries)
                added, self._added = [limiter for limiter in self._added if limiter in self._entries], []
            if time.monotonic() >= deadline:
                for limiter in limiters:
                    self._check(limiter, limiter.poll)
                interval = min([self.interval, *(limiter.poll_interval for limiter in limiters)])
                # Fixed-rate ticks, but never a burst of catch-up polls after a stall (or idleness).
                now = time.monotonic()
                deadline = deadline + interval if deadline + interval > now else now + interval
            elif added:  # a first look at the new ones; the others keep their ticks
                for limiter in added:
                    self._check(limiter, limiter.poll)
                deadline = min(deadline, time.monotonic() + min(limiter.poll_interval for limiter in added))
            watched = {watch: limiter for limiter in limiters if (watch := limiter.oom_watch) is not None}
            for limiter in self._wait(deadline if limiters else None, watched):
                self._check(limiter, limiter.oom_event)
                # An OOM event whose kill is not counted yet asks for a look again soon.
                deadline = min(deadline, time.monotonic() + limiter.poll_interval)

    def _wait(
        self, deadline: float | None, watched: dict[tuple[int, int], ActionLimiter]
    ) -> list[ActionLimiter]:
        """Sleep until `deadline` (None: until woken), a wake-up, or an OOM event; the limiters with one."""
        poller = select.poll()
        poller.register(self._wake_read, select.POLLIN)
        by_fd: dict[int, ActionLimiter] = {}
        for (fd, mask), limiter in watched.items():
            poller.register(fd, mask)
            by_fd[fd] = limiter
        timeout = None if deadline is None else max(0, math.ceil((deadline - time.monotonic()) * 1000))
        ready: list[ActionLimiter] = []
        for fd, _events in poller.poll(timeout):
            if fd == self._wake_read:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_read, 4096)
            elif fd in by_fd:
                ready.append(by_fd[fd])
        return ready

    def _check(self, limiter: ActionLimiter, look: Callable[[], Breach | None]) -> None:
        try:
            breach = look()
        except Exception:  # one broken limiter must not stop the others' enforcement
            log.exception("polling the limits of action %s failed", limiter.action_id)
            return
        if breach is not None:
            with self._lock:
                entry = self._entries.pop(limiter, None)
            if entry is not None:  # else remove() got there first and delivers it
                self._deliver(entry, breach)

    @staticmethod
    def _deliver(on_breach: Callable[[Breach], None], breach: Breach) -> None:
        try:
            on_breach(breach)
        except Exception:
            log.exception("the breach callback failed")
