"""The speed of one isolated call: sequential latency, one level of nesting, and gathered fan-out.

Pairs run alternately in one process, each against its baseline measured right beside it; the
report gives medians and the median of the pair ratios (absolute times move with the machine's load,
ratios much less):

- one sequential isolated call: a task awaiting a tiny task, one call after another, timed inside
  the caller around each `await` (what a caller waits per call), against a bare `os.fork` whose
  child writes one byte to a pipe and exits, read and waited for by the parent;
- one level of nesting: the same, awaiting a task that itself awaits the tiny task;
- N tiny actions gathered from one parent (`bench_fanout.py`'s fan-out, whole run), against
  `multiprocessing` with a fresh fork per task on one worker thread per core; beside the times, the
  CPU time (user + system) and minor page faults per action of every process involved (`getrusage`
  of this process and its reaped children: the runner, fork servers, actions, forked tasks), which
  other sessions' load moves much less than wall time.

    python bench/bench_call.py                      # 200 sequential calls, 1000 gathered, 3 pairs
    python bench/bench_call.py -n 10000 -r 1 --no-cgroups
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from bench_fanout import TASKS, flyte_decl_config, fork_task, run_flyte_decl, run_in_parallel

from flyte_decl.runtime.limits import detect_mechanisms
from flyte_decl.runtime.records import Phase
from flyte_decl.runtime.runner import LocalRunner
from flyte_decl.spec import RunConfig, TaskSpec

SEQUENTIAL = textwrap.dedent(
    """
    import time


    async def nest(i: int) -> int:
        return await tiny(i)


    async def sequential(n: int, nested: bool) -> list[float]:
        called = nest if nested else tiny
        seconds = []
        for i in range(n):
            started = time.perf_counter()
            assert await called(i) == i * i
            seconds.append(time.perf_counter() - started)
        return seconds
    """
)


def call_config(root: Path) -> RunConfig:
    """bench_fanout's tasks plus a sequential caller and one nesting level, same limits as `tiny`
    (but the caller's timeout: its hundreds of calls may take minutes on a busy machine)."""
    config = flyte_decl_config(root)
    tiny = config.tasks["bench.tiny"]
    for name in ("sequential", "nest"):
        spec = TaskSpec(name=f"bench.{name}", environment="bench", task=name, fn=f"bench_tasks:{name}",
                        root_dir=root, cpu_request=tiny.cpu_request, cpu_limit=tiny.cpu_limit,
                        memory_limit=tiny.memory_limit, timeout=tiny.timeout if name == "nest" else 3600.0,
                        max_inline_io_bytes=1 << 20)  # fmt: skip
        config.tasks[spec.name] = spec
    return config


def flyte_decl_calls(root: Path, n: int, nested: bool, no_cgroups: bool) -> float:
    """Median seconds per awaited call, as the calling task measured them."""
    runner = LocalRunner(
        call_config(root),
        log_dir=Path(tempfile.mkdtemp(prefix="logs-", dir=root)),
        mechanisms=detect_mechanisms(allow_cgroups=not no_cgroups),
    )
    result = runner.run("bench.sequential", {"n": n, "nested": nested})
    if result.status != Phase.SUCCEEDED:
        raise SystemExit(f"sequential run failed: {result.status.value}: {result.error}")
    assert all(record.phase == Phase.SUCCEEDED for record in result.actions)
    return float(statistics.median(result.outputs))


def bare_forks(n: int) -> float:
    """Median seconds of fork + one byte through a pipe + waitpid."""
    seconds = []
    for _ in range(n):
        started = time.perf_counter()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(write, b"!")
            os._exit(0)
        os.close(write)
        assert os.read(read, 1) == b"!"
        os.close(read)
        os.waitpid(pid, 0)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def _cpu_and_faults() -> tuple[float, int]:
    """CPU seconds and minor page faults so far of this process and every child it has reaped."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    return cpu, own.ru_minflt + children.ru_minflt


def _per_action(n: int, run: Callable[[], float]) -> tuple[float, float, float]:
    """(what `run` returns, CPU ms per action, minor faults per action) of one run of n actions."""
    cpu, faults = _cpu_and_faults()
    value = run()
    cpu_after, faults_after = _cpu_and_faults()
    return value, (cpu_after - cpu) / n * 1e3, (faults_after - faults) / n


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--calls", type=int, default=200, help="sequential calls per run (default 200)")
    parser.add_argument("-n", type=int, default=1000, help="gathered actions per fan-out run (default 1000)")
    parser.add_argument("-r", "--repeats", type=int, default=3, help="alternating pairs (default 3)")
    parser.add_argument("--no-cgroups", action="store_true", help="force the portable /proc watchdog")
    parser.add_argument("--skip-fanout", action="store_true", help="only the sequential and nested calls")
    args = parser.parse_args()

    pairs: dict[str, list[tuple[float, float]]] = {"call": [], "nested": [], "fanout": []}
    costs: dict[str, list[tuple[float, float]]] = {
        "flyte-decl": [],
        "mp fork": [],
    }  # (CPU ms, faults) per action
    print(f"load before: {_load()}  ({os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory(prefix="bench-call-") as folder:
        root = Path(folder)
        (root / "bench_tasks.py").write_text(TASKS + SEQUENTIAL)
        sys.path.insert(0, str(root))
        mechanisms = detect_mechanisms(allow_cgroups=not args.no_cgroups).describe()
        fork = fork_task()
        for _ in range(args.repeats):
            pairs["call"].append(
                (flyte_decl_calls(root, args.calls, False, args.no_cgroups), bare_forks(args.calls))
            )
            pairs["nested"].append(
                (flyte_decl_calls(root, args.calls, True, args.no_cgroups), bare_forks(args.calls))
            )
            if not args.skip_fanout:
                wall, *ours = _per_action(args.n, lambda: run_flyte_decl(root, args.n, args.no_cgroups)[1])
                baseline, *theirs = _per_action(args.n, lambda: args.n / run_in_parallel(args.n, fork))
                pairs["fanout"].append((wall, baseline))
                costs["flyte-decl"].append((ours[0], ours[1]))
                costs["mp fork"].append((theirs[0], theirs[1]))

    print(f"load after:  {_load()}")
    print(f"limits: memory by {mechanisms['memory']}; cpu by {mechanisms['cpu']}")
    print(f"median of {args.repeats} alternating pairs; ratio = median of the pair ratios")
    print()
    print(f"{'what':44} {'flyte-decl':>11} {'baseline':>11} {'ratio':>7}")
    rows = {
        "call": (f"one sequential isolated call ({args.calls})", "bare fork", 1e3, "ms"),
        "nested": ("one level of nesting", "bare fork", 1e3, "ms"),
        "fanout": (f"{args.n} gathered actions, whole run", "mp fork", 1.0, "s"),
    }
    for name, (label, _base, scale, unit) in rows.items():
        if not pairs[name]:
            continue
        ours = statistics.median(p[0] for p in pairs[name]) * scale
        theirs = statistics.median(p[1] for p in pairs[name]) * scale
        ratio = statistics.median(p[0] / p[1] for p in pairs[name])
        print(f"{label:44} {ours:8.2f} {unit:2} {theirs:8.2f} {unit:2} {ratio:6.2f}x")
    if pairs["fanout"]:
        print()
        print("gathered: ratio is flyte-decl's time over multiprocessing's (below 1.0: faster)")
        print("per gathered action, all processes (medians):", end="")
        for name, values in costs.items():
            cpu = statistics.median(value[0] for value in values)
            faults = statistics.median(value[1] for value in values)
            print(f"  {name} {cpu:.2f} ms CPU, {faults:.0f} minor faults;", end="")
        print()


if __name__ == "__main__":
    main()
