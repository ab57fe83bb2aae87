"""How soon a memory breach is attributed: the last progress of an allocator to the recorded kill.

An action (forked, in its own session, confined by its `ActionLimiter`'s ChildSetup, as the fork
server starts one) writes 8 MiB chunks as fast as it can and stamps the monotonic clock into a
shared page after each chunk. The limits `Monitor` hands the breach to its callback, which stamps
the clock too; the latency is the difference: what a run waits, after the allocator stopped making
progress, before it knows the action was OOM-killed. Trials alternate the machine's cgroups (the
kernel kills; the runner attributes the kill) with the portable /proc watchdog (the runner kills),
and the report gives medians and the overshoot past the limit each one allowed.

With ``--runs``, the same allocator also runs as a task through `LocalRunner` (fork server, run
record): the latency is then from its last stamp (epoch clock) to the ``ended_at`` of its record,
i.e. until the run has settled and recorded the attempt as ``oom_killed``.

Run: ``python bench/bench_oom.py [-n TRIALS] [--limit-mib M]``. Not part of the test run.
"""

from __future__ import annotations

import argparse
import mmap
import os
import statistics
import struct
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

from flyte_decl.runtime import proctree
from flyte_decl.runtime.limits import (
    ActionLimiter,
    Breach,
    CpuPool,
    Limits,
    Mechanisms,
    Monitor,
    detect_mechanisms,
)
from flyte_decl.runtime.records import Phase
from flyte_decl.runtime.runner import LocalRunner
from flyte_decl.spec import RunConfig, TaskSpec

CHUNK = 8 << 20


def allocate(stamp: mmap.mmap) -> None:
    """In the child: allocate written chunks forever, stamping (time, bytes) after each."""
    chunks = []
    while True:
        chunks.append(b"x" * CHUNK)
        stamp[:16] = struct.pack("dq", time.monotonic(), CHUNK * len(chunks))


def trial(mechanisms: Mechanisms, monitor: Monitor, limit: int) -> tuple[float, int]:
    """One breach: (seconds from the last progress to the breach's delivery, bytes allocated then)."""
    limiter = ActionLimiter("bench-oom", Limits(memory=limit), mechanisms, CpuPool())
    setup = limiter.child_setup()
    stamp = mmap.mmap(-1, 16)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setsid()
            setup.apply()
            allocate(stamp)
        finally:
            os._exit(127)
    limiter.attach(pid)
    delivered = threading.Event()
    noticed: list[float] = []

    def on_breach(_breach: Breach) -> None:
        noticed.append(time.monotonic())
        delivered.set()

    monitor.add(limiter, on_breach)
    if not delivered.wait(30):
        raise SystemExit(f"no breach within 30 s under {mechanisms.memory}")
    monitor.remove(limiter)
    limiter.close()
    os.waitpid(pid, 0)
    proctree.wait_gone({pid}, timeout=2.0)
    last, allocated = struct.unpack("dq", stamp[:16])
    return noticed[0] - last, allocated


HOG = textwrap.dedent(
    """
    import mmap, os, struct, time


    def hog(path: str) -> None:
        with open(path, "r+b") as handle:
            stamp = mmap.mmap(handle.fileno(), 16)
        chunks = []
        while True:
            chunks.append(b"x" * (8 << 20))
            stamp[:16] = struct.pack("dq", time.time(), len(chunks) * (8 << 20))
    """
)


def run_trial(root: Path, mechanisms: Mechanisms, limit: int) -> tuple[float, int]:
    """One breach through the runner: (seconds from the last progress to the record's end, bytes)."""
    spec = TaskSpec(name="bench.hog", environment="bench", task="hog", fn="bench_oom_tasks:hog",
                    root_dir=root, memory_limit=limit, timeout=30.0)  # fmt: skip
    stamp = root / "stamp"
    stamp.write_bytes(bytes(16))
    runner = LocalRunner(RunConfig(tasks={spec.name: spec}, queues={}),
                         log_dir=Path(tempfile.mkdtemp(prefix="logs-", dir=root)), mechanisms=mechanisms)  # fmt: skip
    result = runner.run(spec.name, {"path": str(stamp)})
    record = result.actions[0]
    if record.phase != Phase.FAILED or record.kind is None or record.kind.value != "oom_killed":
        raise SystemExit(f"the hog was not oom_killed: {record.phase.value} {record.message}")
    last, allocated = struct.unpack("dq", stamp.read_bytes())
    assert record.ended_at is not None
    return record.ended_at - last, allocated


def report(results: dict[str, list[tuple[float, int]]], limit: int) -> None:
    print(f"{'memory limit by':16} {'median ms':>10} {'max ms':>8} {'median overshoot MiB':>21}")
    for name, rows in results.items():
        latencies = [seconds * 1e3 for seconds, _ in rows]
        overshoot = statistics.median(max(0, allocated - limit) / (1 << 20) for _, allocated in rows)
        print(f"{name:16} {statistics.median(latencies):10.1f} {max(latencies):8.1f} {overshoot:21.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--trials", type=int, default=15, help="breaches per mechanism (default 15)")
    parser.add_argument("--limit-mib", type=int, default=250, help="the memory limit (default 250)")
    parser.add_argument("--runs", action="store_true", help="also through the runner, to the run record")
    args = parser.parse_args()
    limit = args.limit_mib << 20
    machine = detect_mechanisms()
    variants = {"watchdog": Mechanisms("watchdog", "quota-throttle")}
    if machine.memory != "watchdog":
        variants = {machine.memory: machine, **variants}
    print(f"load before: {' '.join(f'{v:.1f}' for v in os.getloadavg())}  ({os.cpu_count()} cores)")
    results: dict[str, list[tuple[float, int]]] = {name: [] for name in variants}
    monitor = Monitor()
    try:
        for _ in range(args.trials):
            for name, mechanisms in variants.items():
                results[name].append(trial(mechanisms, monitor, limit))
    finally:
        monitor.stop()
    runs: dict[str, list[tuple[float, int]]] = {name: [] for name in variants}
    if args.runs:
        with tempfile.TemporaryDirectory(prefix="bench-oom-") as folder:
            root = Path(folder)
            (root / "bench_oom_tasks.py").write_text(HOG)
            sys.path.insert(0, folder)
            for _ in range(args.trials):
                for name, mechanisms in variants.items():
                    runs[name].append(run_trial(root, mechanisms, limit))
    print(f"load after:  {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"{args.trials} alternating trials each, limit {args.limit_mib} MiB, {CHUNK >> 20} MiB chunks")
    print("\nlast progress -> the Monitor's breach callback")
    report(results, limit)
    if args.runs:
        print("\nlast progress -> the run record's end (oom_killed)")
        report(runs, limit)


if __name__ == "__main__":
    main()
