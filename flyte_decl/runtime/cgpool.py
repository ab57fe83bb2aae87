"""A pool of empty per-action cgroups, reused instead of a ``mkdir`` and an ``rmdir`` per action.

Creating and removing a cgroup is the largest part of what cgroups add to a tiny action (on cgroup
v1, a memory cgroup's removal also leaves the kernel work to do after the ``rmdir``). An action's
cgroup goes back to the pool when the action has ended only if it can be handed to the next action
as good as new (`Reusable.reset`): no process left in it, no OOM kill ever counted in it (the
counter cannot be reset), its leftover charge reclaimed, its peak reset. Otherwise it is removed as
before. The limits are written again by the next action (writes of unchanged values are skipped).

The pool is per process and bounded (`MAX_FREE` per parent cgroup). `drain` removes every cgroup
it holds: the runner calls it when a run ends, and it runs at interpreter exit; what a killed
runner leaves is swept by the next one (`limits.detect_mechanisms`).

Example::

    cgroup = POOL.take(root) or make_cgroup(root)
    ...                                   # the action runs in it and ends
    POOL.give_back(root, cgroup)          # reset and kept, or removed
    POOL.drain()                          # end of the run: nothing left behind
"""

from __future__ import annotations

import atexit
import threading
from typing import Protocol

MAX_FREE = 64  # cgroups kept per parent: more than the actions a 2-64 core machine runs at once
REMOVE_TIMEOUT = 2.0  # seconds to wait for dying processes to leave a cgroup being removed


class Reusable(Protocol):
    """What the pool needs of a cgroup (`limits._Cgroup`)."""

    def reset(self) -> bool:
        """Make it as good as new for the next action; False if it cannot be (then it is removed)."""
        ...

    def remove(self, timeout: float) -> bool:
        """Kill what is left inside and remove it."""
        ...


class CgroupPool:
    """Empty cgroups by parent directory. Thread-safe."""

    def __init__(self, max_free: int = MAX_FREE) -> None:
        self.max_free = max_free
        self._free: dict[str, list[Reusable]] = {}
        self._lock = threading.Lock()

    def take(self, parent: str) -> Reusable | None:
        """A reset cgroup under `parent`, or None if there is none (create one then)."""
        with self._lock:
            free = self._free.get(parent)
            return free.pop() if free else None

    def give_back(self, parent: str, cgroup: Reusable) -> bool:
        """Keep `cgroup` for the next action if it resets and there is room; else remove it.

        Returns whether it was kept.
        """
        with self._lock:
            room = len(self._free.get(parent, ())) < self.max_free
        if room and cgroup.reset():
            with self._lock:
                self._free.setdefault(parent, []).append(cgroup)
            return True
        cgroup.remove(REMOVE_TIMEOUT)
        return False

    def drain(self) -> int:
        """Remove every cgroup the pool holds; returns how many."""
        with self._lock:
            held = [cgroup for free in self._free.values() for cgroup in free]
            self._free.clear()
        for cgroup in held:
            cgroup.remove(REMOVE_TIMEOUT)
        return len(held)


POOL = CgroupPool()
atexit.register(POOL.drain)
