"""Generate a large environments.yaml: N environments with M tasks each, with extends, overrides and queues.

python bench/gen_config.py --environments 1000 --tasks 10 -o /tmp/big/environments.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path


def generate(environments: int, tasks_per_env: int) -> str:
    lines = [
        "version: 1",
        "defaults:",
        "  resources: {cpu: 1, memory: 512Mi}",
        "  max_inline_io_bytes: 10Mi",
        "  env_vars: {LOG_LEVEL: info}",
        "queues:",
        "  default: {concurrency: 8}",
        "  spot: {concurrency: 2, description: spot pool}",
        "environments:",
    ]
    for e in range(environments):
        lines += [f"  env{e}:", f"    description: environment {e}"]
        if e % 10:
            lines.append(f"    extends: env{e - e % 10}")
        lines += [
            "    resources:",
            f"      cpu: {{request: {100 + e % 9 * 100}m, limit: {1 + e % 4}}}",
            f"      memory: {128 + e % 16 * 64}Mi",
            f"    queue: {'spot' if e % 3 == 0 else 'default'}",
            f"    env_vars: {{ENV_INDEX: '{e}'}}",
            "    tasks:",
        ]
        for t in range(tasks_per_env):
            lines.append(f"      task{t}:")
            lines.append(f"        fn: 'pkg.mod{e % 50}:func{t}'")
            if t % 2 == 0:
                lines.append(f"        timeout: {t + 1}m")
            if t % 3 == 0:
                lines.append("        retries: {count: 2, backoff: 1s}")
    lines += [
        "overrides:",
        "  - match: {environment: 'env1*', task: 'task1'}",
        "    set: {resources: {memory: 2Gi}}",
        "  - match: {task: 'task9'}",
        "    set: {timeout: 1h}",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--environments", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=10, help="tasks per environment")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(generate(args.environments, args.tasks))


if __name__ == "__main__":
    main()
