"""Benchmark: wall time, CPU time and peak memory of `flyte-decl validate` and `explain` on a large file.

    python bench/bench_validate.py [--environments 10000] [--tasks 10] [--repeat 3] [--baseline REV]

Generates a config with `gen_config.py` (by default 10,000 environments of 10 tasks: 100,000 tasks,
8.9 MB) and the modules its `fn`s name (`pkg/mod0.py` ... `pkg/mod49.py`, so that every binding is
really checked against its source), then runs as commands, one process each:

  * `flyte-decl validate`,
  * `flyte-decl explain env5.task3` (reads and checks every value of the file, locates and resolves
    one task),

and, with `--baseline REV`, the same commands from that git revision of this checkout (exported with
`git archive` into a temporary folder, run with the same interpreter), alternating current and
baseline in every round. Peak memory is the child's maximum resident set size (`wait4`'s
`ru_maxrss`), CPU time is its user + system time. Prints medians, the load average before and
after, and the ratios: current vs baseline, and `explain` vs `validate` (CPU; the issue's target is
at most 0.5x).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from gen_config import generate  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODULES = 50  # gen_config binds `pkg.mod{e % 50}:func{t}`


def write_project(folder: Path, environments: int, tasks: int) -> None:
    """The config and every module and function it names."""
    (folder / "environments.yaml").write_text(generate(environments, tasks))
    package = folder / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    body = "".join(f"def func{t}(x: int) -> int:\n    return x\n\n\n" for t in range(tasks))
    for m in range(MODULES):
        (package / f"mod{m}.py").write_text(body)


def export(rev: str, folder: Path) -> Path:
    """The flyte_decl package of `rev`, unpacked under `folder` (read from git, the checkout is untouched)."""
    archive = subprocess.run(
        ["git", "archive", rev, "flyte_decl", "schemas"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def measure(source: Path, args: list[str], cwd: Path) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MiB) of one `flyte-decl ARGS` run with `source` first on sys.path."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    code = "import sys; from flyte_decl.cli.main import main; sys.exit(main())"
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"flyte-decl {' '.join(args)} exited {process.returncode}:\n{err.decode()}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--environments", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=10, help="tasks per environment")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", metavar="REV", help="git revision to compare with, e.g. main")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="flyte-decl-bench-"))
    try:
        project = folder / "project"
        project.mkdir()
        write_project(project, args.environments, args.tasks)
        sources = {"current": ROOT}
        if args.baseline:
            baseline = folder / "baseline"
            baseline.mkdir()
            sources[f"baseline {args.baseline}"] = export(args.baseline, baseline)
        commands = {"validate": ["validate"], "explain": ["explain", "env5.task3"]}
        results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
        load_before = os.getloadavg()
        for _ in range(args.repeat):
            for command, command_args in commands.items():
                for name, source in sources.items():
                    results.setdefault((name, command), []).append(measure(source, command_args, project))
        load_after = os.getloadavg()

        size = (project / "environments.yaml").stat().st_size / 1e6
        print(
            f"{args.environments} environments, {args.environments * args.tasks} tasks, {size:.1f} MB; "
            f"median of {args.repeat}; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after"
        )
        print(f"{'command':42} {'wall s':>8} {'CPU s':>7} {'peak MiB':>9} {'CPU vs validate':>16}")
        medians = {
            key: tuple(statistics.median(run[i] for run in runs) for i in range(3))
            for key, runs in results.items()
        }
        for (name, command), (wall, cpu, rss) in medians.items():
            ratio = cpu / medians[(name, "validate")][1]
            print(f"{f'{command} ({name})':42} {wall:8.2f} {cpu:7.2f} {rss:9.0f} {ratio:15.2f}x")
        for name in list(sources)[1:]:
            for command in commands:
                (_, cpu, rss), (_, base_cpu, base_rss) = (
                    medians[("current", command)],
                    medians[(name, command)],
                )
                print(
                    f"{command}: current vs {name}: CPU {cpu / base_cpu:.2f}x, peak memory {rss / base_rss:.2f}x"
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
