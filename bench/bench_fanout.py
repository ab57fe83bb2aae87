"""Fan-out throughput: N tiny tasks from one parent with asyncio.gather, as isolated actions.

Compares, in the same run and with the same parallelism (one worker per core):

- flyte-decl: every task an action of its own (own process, session, memory and CPU limits,
  timeout, inline I/O check, log file), forked by the warm fork server;
- flyte-decl with `reusable: {replicas: 2}` on the tiny task: the same limits and records, but the
  actions run one after another in two warm workers, with no fork per action;
- `subprocess.run([python, "-c", ...])` per task;
- a `multiprocessing` fork per task (no limits, no isolation beyond the process).

Reports the median of a few repeats: tasks per second, wall milliseconds per task, and the ratio
to flyte-decl. The flyte-decl rate is measured over the children (first queued to last ended), so
it excludes the fork server's start; the whole run's wall time is shown beside it.

    python bench/bench_fanout.py                 # 1000 tasks, 3 repeats
    python bench/bench_fanout.py -n 200 -r 5 --no-cgroups
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path

from flyte_decl.render.run import RunView
from flyte_decl.runtime.limits import detect_mechanisms
from flyte_decl.runtime.records import Phase
from flyte_decl.runtime.runner import LocalRunner
from flyte_decl.spec import ReusePolicy, RunConfig, TaskSpec

TASKS = textwrap.dedent(
    """
    import asyncio


    async def tiny(i: int) -> int:
        return i * i


    def tiny_sync(i: int) -> int:
        return i * i


    async def fan_out(n: int) -> int:
        return sum(await asyncio.gather(*(tiny(i) for i in range(n))))
    """
)


def flyte_decl_config(root: Path, replicas: int = 0) -> RunConfig:
    """Both tasks in one environment; each tiny action under cpu 1 / 256Mi limits, a 30 s timeout
    and a 1Ki inline I/O cap. Each requests 50m CPU, as tiny tasks do, so that enough are in flight
    to keep both cores busy while others wait on the kernel (forks, cgroup moves). With `replicas`,
    the tiny task is reusable: that many warm workers run all its actions."""
    tasks = [
        TaskSpec(
            name="bench.fan_out", environment="bench", task="fan_out", fn="bench_tasks:fan_out", root_dir=root
        ),
        TaskSpec(
            name="bench.tiny",
            environment="bench",
            task="tiny",
            fn="bench_tasks:tiny",
            root_dir=root,
            cpu_request=0.05,
            cpu_limit=1.0,
            memory_limit=256 * 2**20,
            timeout=30.0,
            max_inline_io_bytes=1024,
            reusable=ReusePolicy(replicas=replicas) if replicas else None,
        ),
    ]
    return RunConfig(tasks={spec.name: spec for spec in tasks}, queues={})


class _Terminal(io.StringIO):
    """Where the live view draws in the benchmark: rich takes it for a terminal."""

    def isatty(self) -> bool:
        return True


def run_flyte_decl(
    root: Path, n: int, no_cgroups: bool, replicas: int = 0, view: bool | None = None
) -> tuple[float, float]:
    """(children per second, whole-run wall seconds) of one fan-out run.

    `view`: `run`'s console, None for none; False as off a terminal (lines streamed), True the live view.
    """
    live = RunView(_Terminal(), live=view, run_id="bench") if view is not None else None
    runner = LocalRunner(
        flyte_decl_config(root, replicas),
        log_dir=Path(tempfile.mkdtemp(prefix="logs-", dir=root)),
        mechanisms=detect_mechanisms(allow_cgroups=not no_cgroups),
        on_event=live.on_event if live else None,
    )
    started = time.perf_counter()
    with live or contextlib.nullcontext():
        result = runner.run("bench.fan_out", {"n": n})
    wall = time.perf_counter() - started
    if result.status != Phase.SUCCEEDED or result.outputs != sum(i * i for i in range(n)):
        raise SystemExit(f"fan-out run failed: {result.status.value}: {result.error}")
    children = [record for record in result.actions if record.parent is not None]
    assert len(children) == n and all(record.ended_at for record in children)
    span = max(r.ended_at or 0.0 for r in children) - min(r.queued_at for r in children)
    return n / span, wall


def run_in_parallel(n: int, one: Callable[[int], int]) -> float:
    """Tasks per second running `one(i)` for every i, one worker per core."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        results = list(pool.map(one, range(n)))
    elapsed = time.perf_counter() - started
    assert results == [i * i for i in range(n)]
    return n / elapsed


def subprocess_task(root: Path) -> Callable[[int], int]:
    def one(i: int) -> int:
        code = f"import bench_tasks; print(bench_tasks.tiny_sync({i}))"
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=root, capture_output=True, check=True, text=True
        )
        return int(done.stdout)

    return one


def _fork_child(connection: Connection, function: Callable[[int], int], i: int) -> None:
    connection.send(function(i))
    connection.close()


def fork_task() -> Callable[[int], int]:
    import bench_tasks  # imported once here; each fork inherits it, as the fork server's actions do

    context = multiprocessing.get_context("fork")

    def one(i: int) -> int:
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=_fork_child, args=(sender, bench_tasks.tiny_sync, i))
        process.start()
        sender.close()
        value: int = receiver.recv()
        process.join()
        return value

    return one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="tasks per run (default 1000)")
    parser.add_argument("-r", "--repeats", type=int, default=3, help="runs per method (default 3)")
    parser.add_argument("--no-cgroups", action="store_true", help="force the portable /proc watchdog")
    parser.add_argument("--view", action="store_true", help="only: the live view of `run` on and off")
    args = parser.parse_args()
    if args.view:
        compare_view(args.n, args.repeats, args.no_cgroups)
        return

    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as folder:
        root = Path(folder)
        (root / "bench_tasks.py").write_text(TASKS)
        sys.path.insert(0, str(root))
        mechanisms = detect_mechanisms(allow_cgroups=not args.no_cgroups).describe()

        flyte = [run_flyte_decl(root, args.n, args.no_cgroups) for _ in range(args.repeats)]
        rates = {
            "flyte-decl actions": statistics.median(rate for rate, _ in flyte),
            "flyte-decl reusable, 2 workers": statistics.median(
                run_flyte_decl(root, args.n, args.no_cgroups, replicas=2)[0] for _ in range(args.repeats)
            ),
            # A fresh interpreter per task takes tens of ms: a smaller sample gives the same rate.
            "subprocess.run per task": statistics.median(
                run_in_parallel(min(args.n, 200), subprocess_task(root)) for _ in range(args.repeats)
            ),
            "multiprocessing fork per task": statistics.median(
                run_in_parallel(args.n, fork_task()) for _ in range(args.repeats)
            ),
        }
        whole_run = statistics.median(wall for _, wall in flyte)

    ours = rates["flyte-decl actions"]
    print(f"{args.n} tasks, median of {args.repeats}, {os.cpu_count()} cores")
    print(f"limits: memory by {mechanisms['memory']}")
    print(f"        cpu by {mechanisms['cpu']}")
    print()
    print(f"{'method':32} {'tasks/s':>9} {'ms/task':>8} {'vs flyte-decl':>14}")
    for method, rate in rates.items():
        print(f"{method:32} {rate:9.0f} {1000 / rate:8.2f} {rate / ours:13.2f}x")
    print()
    print(
        f"flyte-decl whole run, fork server start included: {whole_run:.2f} s ({args.n / whole_run:.0f} tasks/s)"
    )


def compare_view(n: int, repeats: int, no_cgroups: bool) -> None:
    """The live view's cost to the runner: the same fan-out with `run`'s console as off a terminal
    (each event handled, lines streamed) and as on one (the live view drawn 4 times a second), alternating."""
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as folder:
        root = Path(folder)
        (root / "bench_tasks.py").write_text(TASKS)
        sys.path.insert(0, str(root))
        runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for _ in range(repeats):
            for view in (False, True):
                runs[view].append(run_flyte_decl(root, n, no_cgroups, view=view))
    print(f"{n} tasks, median of {repeats}, {os.cpu_count()} cores, alternating")
    print(f"{'live view':10} {'tasks/s':>9} {'whole run s':>12}")
    for view, results in runs.items():
        rate = statistics.median(r for r, _ in results)
        wall = statistics.median(w for _, w in results)
        print(f"{'on' if view else 'off':10} {rate:9.0f} {wall:12.2f}")
    off, on = (statistics.median(r for r, _ in runs[v]) for v in (False, True))
    print(f"on/off rate: {on / off:.3f}")


if __name__ == "__main__":
    main()
