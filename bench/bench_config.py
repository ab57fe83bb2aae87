"""Benchmark: validate and resolve a large config, against check-jsonschema on the same file and schema.

    python bench/bench_config.py [--environments 1000] [--tasks 10] [--repeat 5]

Compares, in one run on the same generated file:
  * flyte-decl in-process: read + check + resolve + typed specs (what every command does),
  * `flyte-decl validate` as a command (interpreter start-up included),
  * `check-jsonschema --schemafile schemas/environments.schema.json` as a command (shape only: no
    references, cycles or resolution),
  * jsonschema's Draft202012Validator in-process on already-parsed data (shape only).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import jsonschema
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from gen_config import generate  # noqa: E402

from flyte_decl.config.load import check  # noqa: E402
from flyte_decl.config.schema import json_schema  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def run_command(args: list[str], cwd: Path) -> None:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stdout}{result.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--environments", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="flyte-decl-bench-"))
    config = folder / "environments.yaml"
    config.write_text(generate(args.environments, args.tasks))
    schema_file = ROOT / "schemas" / "environments.schema.json"
    bin_dir = Path(sys.executable).parent

    def in_process() -> None:
        checked = check([config])
        assert checked.resolved is not None and not checked.errors
        checked.resolved.run_config()

    data = yaml.load(config.read_text(), Loader=yaml.CSafeLoader)
    validator = jsonschema.Draft202012Validator(json_schema())

    rows = [
        ("flyte-decl in-process: read+check+resolve+specs", timed(in_process, args.repeat)),
        (
            "flyte-decl validate (command)",
            timed(lambda: run_command([str(bin_dir / "flyte-decl"), "validate"], folder), args.repeat),
        ),
        (
            "check-jsonschema (command, shape only)",
            timed(
                lambda: run_command(
                    [str(bin_dir / "check-jsonschema"), "--schemafile", str(schema_file), str(config)], folder
                ),
                args.repeat,
            ),
        ),
        (
            "jsonschema in-process (parsed data, shape only)",
            timed(lambda: validator.validate(data), args.repeat),
        ),
    ]
    baseline = statistics.median(rows[2][1])
    tasks = args.environments * args.tasks
    print(
        f"{args.environments} environments, {tasks} tasks, {config.stat().st_size / 1e6:.1f} MB, "
        f"median of {args.repeat}"
    )
    print(f"{'what':52} {'median s':>9} {'min s':>7} {'vs check-jsonschema':>20}")
    for name, times in rows:
        median = statistics.median(times)
        print(f"{name:52} {median:9.3f} {min(times):7.3f} {median / baseline:19.2f}x")


if __name__ == "__main__":
    main()
