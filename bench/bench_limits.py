"""Per-poll cost of the limit enforcement: the /proc watchdog against psutil's tree walk.

The Monitor polls every action every 10 ms, so a poll's cost is paid 100 times a second per
running action. psutil's ``children(recursive=True)`` scans all of /proc to build a parent map;
the watchdog reads only the action's own tree (``/proc/<pid>/task/*/children`` and ``statm``).

With cgroups, a row for the machine's mechanism (cgroup v1 here, cgroup v2 in the VM that
``python tests/vm/run.py --bench`` boots) and the per-action cost of creating, limiting and removing
the action's cgroup, against the watchdog's setup: new cgroups each time, and cgroups reused from
the pool (`runtime/cgpool.py`, cgroup v1 only; on v2 both rows create and remove).

Run: ``python bench/bench_limits.py [--polls N] [--children K]``. Not part of the test run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import psutil

from flyte_decl.runtime import cgpool, proctree
from flyte_decl.runtime.limits import (
    MEMORY_POLL_INTERVAL,
    THROTTLE_CHECK_INTERVAL,
    ActionLimiter,
    CpuPool,
    Limits,
    Mechanisms,
    detect_mechanisms,
)

# A parent holding 50 MiB that forks K children (sharing it copy-on-write), then everyone sleeps.
TREE = """
import os, sys, time
data = b"x" * (50 << 20)
for _ in range(int(sys.argv[1])):
    if os.fork() == 0:
        time.sleep(600)
        os._exit(0)
print("ready", flush=True)
time.sleep(600)
"""


def median_us(operation: Callable[[], object], polls: int) -> float:
    """Median wall time of one call, in microseconds, after a short warm-up."""
    for _ in range(min(polls, 20)):
        operation()
    timings = []
    for _ in range(polls):
        started = time.perf_counter()
        operation()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1e6


def psutil_poll(root: psutil.Process) -> int:
    """What a psutil-based watchdog does each poll: find the tree, sum its RSS."""
    total = root.memory_info().rss
    for child in root.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += child.memory_info().rss
    return total


def proc_walk_poll(pid: int) -> int:
    """The watchdog's measurement alone: walk the tree, sum statm RSS."""
    return sum(proctree.rss_bytes(member) for member in proctree.walk(pid))


def limiter_for(pid: int, limits: Limits, mechanisms: Mechanisms) -> ActionLimiter:
    limiter = ActionLimiter("bench", limits, mechanisms, CpuPool())
    limiter.child_setup()  # the tree is not inside these cgroups: only the poll's own work is timed
    limiter.attach(pid)
    return limiter


def setup_and_close(mechanisms: Mechanisms) -> None:
    """What every action costs before and after it runs: its cgroups (or pinning) made and removed."""
    limiter = ActionLimiter("bench", Limits(memory=256 << 20, cpu=0.5), mechanisms, CpuPool())
    limiter.child_setup()
    limiter.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=500, help="polls per measurement (default 500)")
    parser.add_argument("--children", type=int, default=3, help="forked children in the tree (default 3)")
    args = parser.parse_args()

    tree = subprocess.Popen(
        [sys.executable, "-c", TREE, str(args.children)], stdout=subprocess.PIPE, start_new_session=True
    )
    assert tree.stdout is not None and tree.stdout.readline().strip() == b"ready"
    try:
        pid = tree.pid
        root = psutil.Process(pid)
        portable = Mechanisms("watchdog", "quota-throttle")
        huge = 1 << 40  # never breached: every poll is a plain measurement
        watchdog = limiter_for(pid, Limits(memory=huge), portable)
        throttled = limiter_for(pid, Limits(memory=huge, cpu=0.5), portable)
        members = list(proctree.walk(pid))

        # (what, median microseconds, how often the Monitor runs it, None if once per breach)
        rows: list[tuple[str, float, float | None]] = [
            (
                "psutil children(recursive) + memory_info",
                median_us(lambda: psutil_poll(root), args.polls),
                MEMORY_POLL_INTERVAL,
            ),
            (
                "/proc walk + statm RSS",
                median_us(lambda: proc_walk_poll(pid), args.polls),
                MEMORY_POLL_INTERVAL,
            ),
            ("ActionLimiter.poll, watchdog", median_us(watchdog.poll, args.polls), MEMORY_POLL_INTERVAL),
            (
                "ActionLimiter.poll, watchdog + CPU throttle",
                median_us(throttled.poll, args.polls),
                THROTTLE_CHECK_INTERVAL,
            ),
        ]
        mechanisms = detect_mechanisms()
        cgroup = None
        if mechanisms.memory != "watchdog":
            cgroup = limiter_for(pid, Limits(memory=huge), mechanisms)
            rows.append(
                (
                    f"ActionLimiter.poll, {mechanisms.memory}",
                    median_us(cgroup.poll, args.polls),
                    MEMORY_POLL_INTERVAL,
                )
            )
        pss_polls = max(5, args.polls // 20)  # the confirmation is rare and slow: fewer rounds
        pss = median_us(lambda: sum(proctree.pss_bytes(member) for member in members), pss_polls)
        rows.append(("PSS confirmation (smaps_rollup), on a breach", pss, None))
        for limiter in (watchdog, throttled, cgroup):
            if limiter is not None:
                limiter.close()  # kills the tree too: it was only there to be measured

        setups = [
            ("portable (affinity, rlimit; no cgroup)", median_us(lambda: setup_and_close(portable), 50))
        ]
        if mechanisms.memory != "watchdog":
            setups.append(
                (
                    f"{mechanisms.memory}: mkdir, write limits, rmdir",
                    median_us(lambda: (setup_and_close(mechanisms), cgpool.POOL.drain()), 50),
                )
            )
            setups.append(
                (
                    f"{mechanisms.memory}: from the pool, limits, reset",
                    median_us(lambda: setup_and_close(mechanisms), 50),
                )
            )
            cgpool.POOL.drain()

        baseline = rows[0][1]
        processes = sum(1 for name in os.listdir("/proc") if name.isdigit())
        print(f"tree: 1 parent + {args.children} forked children; {processes} processes on this machine")
        print(f"median of {args.polls} polls each (PSS: {pss_polls})\n")
        print(f"{'per poll':46} {'median us':>10} {'vs psutil':>10} {'every':>7} {'% of a core':>12}")
        print("-" * 89)
        for name, micros, interval in rows:
            every = f"{interval * 1000:.0f} ms" if interval else "breach"
            share = f"{micros / (interval * 1e6) * 100:.2f}%" if interval else "-"
            print(f"{name:46} {micros:10.1f} {micros / baseline:9.2f}x {every:>7} {share:>12}")
        print(f"\n{'per action: setup + close':46} {'median us':>10} {'vs portable':>11}")
        print("-" * 69)
        for name, micros in setups:
            print(f"{name:46} {micros:10.1f} {micros / setups[0][1]:10.2f}x")
    finally:
        proctree.kill_tree(tree.pid, pgid=tree.pid)
        tree.wait()


if __name__ == "__main__":
    main()
