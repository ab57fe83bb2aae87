"""Run-store overhead: the fan-out of bench_fanout.py with and without recording every action.

Times, in the same process and alternating so machine noise hits both alike:

- the fan-out run alone (LocalRunner, no store);
- the same run recorded by the Recorder into a fresh SQLite store (WAL): each phase change of each
  action is one transaction, with its payloads and, at the end, its samples;
- the same run again with `cache: auto` on the tiny task and every action a cache hit.

Reports medians: whole-run wall time; the time spent inside the recorder's callbacks (measured
around each call), which is what the store costs the runner's loop; and the CPU time of the
recorder's writer thread (SQLite work, off the loop but on the same cores as the actions).

    python bench/bench_store.py                  # 1000 tasks, 3 repeats
    python bench/bench_store.py -n 200 -r 5
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_fanout import TASKS, flyte_decl_config

from flyte_decl.runtime.records import Phase
from flyte_decl.runtime.runner import LocalRunner
from flyte_decl.spec import RunConfig
from flyte_decl.store.recorder import Recorder
from flyte_decl.store.store import Store

WRITER_CPU: list[float] = []


def _timed_writer(write: Callable[..., None]) -> Callable[..., None]:
    def wrapper(self: Recorder, store: Store) -> None:
        started = time.thread_time()
        try:
            write(self, store)
        finally:
            WRITER_CPU.append(time.thread_time() - started)

    return wrapper


Recorder._write = _timed_writer(Recorder._write)  # type: ignore[method-assign]


class Timed:
    """Wraps a callback and adds up the seconds spent in it."""

    def __init__(self, callback: Callable[..., Any]) -> None:
        self.callback = callback
        self.seconds = 0.0

    def __call__(self, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.callback(*args)
        finally:
            self.seconds += time.perf_counter() - started


def one_run(root: Path, config: RunConfig, n: int, home: Path | None) -> tuple[float, float, float, int]:
    """(wall seconds, seconds inside the recorder's callbacks, writer CPU seconds, cached actions)."""
    on_event = reuse = None
    recorder = None
    if home is not None:
        store = Store.open(home)
        run = store.create_run(
            task="bench.fan_out", environment="bench", snapshot={}, inputs=b"", inputs_json={}
        )
        recorder = Recorder(store, run, config)
        on_event, reuse = Timed(recorder.on_event), Timed(recorder.reuse)
    runner = LocalRunner(config, log_dir=Path(tempfile.mkdtemp(prefix="logs-", dir=root)), on_event=on_event,
                         reuse=reuse)  # fmt: skip
    started = time.perf_counter()
    result = runner.run("bench.fan_out", {"n": n})
    if recorder is not None:
        inside = Timed(recorder.finish)
        result = inside(result)
    wall = time.perf_counter() - started
    if result.status != Phase.SUCCEEDED or result.outputs != sum(i * i for i in range(n)):
        raise SystemExit(f"fan-out run failed: {result.status.value}: {result.error}")
    spent = sum(t.seconds for t in (on_event, reuse, inside) if isinstance(t, Timed)) if recorder else 0.0
    writer = WRITER_CPU.pop() if recorder else 0.0
    return wall, spent, writer, sum(record.phase is Phase.CACHED for record in result.actions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="tasks per run (default 1000)")
    parser.add_argument("-r", "--repeats", type=int, default=3, help="runs per variant (default 3)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-store-") as folder:
        root = Path(folder)
        (root / "bench_tasks.py").write_text(TASKS)
        sys.path.insert(0, str(root))
        plain = flyte_decl_config(root)
        cached = dataclasses.replace(plain, tasks={
            name: dataclasses.replace(spec, cache="auto") if spec.task == "tiny" else spec
            for name, spec in plain.tasks.items()
        })  # fmt: skip
        one_run(root, cached, args.n, root / "home-cache")  # fills the cache
        runs: dict[str, list[tuple[float, float, float, int]]] = {
            "no store": [],
            "recorded": [],
            "all cache hits": [],
        }
        for repeat in range(args.repeats):
            runs["no store"].append(one_run(root, plain, args.n, None))
            runs["recorded"].append(one_run(root, plain, args.n, root / f"home-{repeat}"))
            runs["all cache hits"].append(one_run(root, cached, args.n, root / "home-cache"))

    print(f"{args.n} tiny actions per fan-out, median of {args.repeats}")
    print(
        f"{'variant':16} {'wall s':>7} {'in loop us/action':>18} {'writer CPU us/action':>21} {'cached':>7}"
    )
    base = statistics.median(r[0] for r in runs["no store"])
    for name, results in runs.items():
        wall, spent, writer, hits = (statistics.median(r[i] for r in results) for i in range(4))
        per = 1e6 / (args.n + 1)
        print(f"{name:16} {wall:7.2f} {spent * per:18.1f} {writer * per:21.1f} {hits:7.0f}")
    recorded = statistics.median(r[0] for r in runs["recorded"])
    print(f"\nrecording costs {100 * (recorded / base - 1):+.1f}% wall time on this fan-out")


if __name__ == "__main__":
    main()
