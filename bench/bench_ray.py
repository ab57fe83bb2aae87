"""Fan-out throughput on Ray: N tiny gathered actions, `--backend ray` against plain Ray and the local backend.

Compares, in one process, on a Ray instance started here for the benchmark (this machine's CPUs),
each method run once per round and the rounds alternating:

- flyte-decl `--backend ray`: every tiny call an action of its own, placed on a Ray node by the
  driver and forked and confined there by the node's agent (own process, memory and CPU limits,
  timeout, inline I/O check, log), the same tasks and limits as `bench_fanout.py`;
- plain `@ray.remote` tasks with the same CPU request (no isolation, no limits);
- flyte-decl `--backend local` (`bench_fanout.py`'s flyte-decl run).

Reports the median actions per second over the rounds and the median of the per-round ratios to
flyte-decl on Ray, with the time (UTC) and the load average after each size. The flyte-decl rates are measured over the children (first queued to last ended);
plain Ray from the first submit to the last result.

    python bench/bench_ray.py                     # 1000 actions, 3 rounds
    python bench/bench_ray.py -n 100 -n 1000 -n 10000 -r 1  # the per-action cost as N grows
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench_fanout import TASKS, flyte_decl_config, run_flyte_decl

from flyte_decl.backends.ray import RayCluster
from flyte_decl.runtime.records import Phase
from flyte_decl.runtime.runner import LocalRunner


def run_on_ray(cluster: RayCluster, root: Path, n: int) -> float:
    """Children per second of one flyte-decl fan-out run on Ray."""
    runner = LocalRunner(
        flyte_decl_config(root),
        log_dir=Path(tempfile.mkdtemp(prefix="logs-", dir=root)),
        backend=cluster.backend,
    )
    result = runner.run("bench.fan_out", {"n": n})
    if result.status != Phase.SUCCEEDED or result.outputs != sum(i * i for i in range(n)):
        raise SystemExit(f"fan-out run on Ray failed: {result.status.value}: {result.error}")
    children = [record for record in result.actions if record.parent is not None]
    span = max(r.ended_at or 0.0 for r in children) - min(r.queued_at for r in children)
    return n / span


def run_plain_ray(n: int) -> float:
    """Tasks per second of N plain `@ray.remote` calls, submitted at once and gathered."""
    import ray as ray_module

    @ray_module.remote(num_cpus=0.05)
    def tiny(i: int) -> int:
        return i * i

    started = time.perf_counter()
    results = ray_module.get([tiny.remote(i) for i in range(n)])
    elapsed = time.perf_counter() - started
    assert results == [i * i for i in range(n)]
    return n / elapsed


def _now() -> str:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, load average {load}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, action="append", help="actions per run (default 1000; repeatable)")
    parser.add_argument("-r", "--rounds", type=int, default=3, help="rounds of all three (default 3)")
    parser.add_argument("--no-cgroups", action="store_true", help="force the portable /proc watchdog")
    args = parser.parse_args()
    sizes = args.n or [1000]
    root = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    (root / "bench_tasks.py").write_text(TASKS)
    os.environ.setdefault("RAY_TMPDIR", str(root))
    started = time.perf_counter()
    cluster = RayCluster(None)
    print(f"Ray started in {time.perf_counter() - started:.1f} s; {os.cpu_count()} CPUs; {_now()}")
    try:
        run_on_ray(cluster, root, 20)  # warm up: Ray's workers and their fork servers
        run_plain_ray(20)
        print(f"{'N':>6}  {'method':<32} {'actions/s':>10} {'ms/action':>10} {'vs ray backend':>15}")
        for n in sizes:
            rates: dict[str, list[float]] = {"flyte-decl --backend ray": [], "plain @ray.remote": [],
                                             "flyte-decl --backend local": []}  # fmt: skip
            for _ in range(args.rounds):
                rates["flyte-decl --backend ray"].append(run_on_ray(cluster, root, n))
                rates["plain @ray.remote"].append(run_plain_ray(n))
                rates["flyte-decl --backend local"].append(run_flyte_decl(root, n, args.no_cgroups)[0])
            base = rates["flyte-decl --backend ray"]
            for method, values in rates.items():
                rate = statistics.median(values)
                ratio = statistics.median(value / b for value, b in zip(values, base, strict=True))
                print(f"{n:>6}  {method:<32} {rate:>10.0f} {1000 / rate:>10.2f} {ratio:>14.2f}x")
            print(f"{'':>6}  {_now()}")
    finally:
        cluster.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
