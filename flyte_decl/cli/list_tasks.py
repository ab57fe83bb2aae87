"""`flyte-decl list`: environments, tasks and queues as a table (or JSON)."""

from __future__ import annotations

import json

import click

from flyte_decl.cli.options import config_options, format_option
from flyte_decl.config.load import load


@click.command(name="list")
@config_options
@format_option("text", "json")
def list_tasks(configs: tuple[str, ...], profiles: tuple[str, ...], fmt: str) -> None:
    """List environments, tasks and queues with their effective resources.

    Reads the config files only: no code of yours runs.
    """
    resolved = load(configs or None, profile=profiles)
    rows = []
    for task in resolved.tasks.values():
        rows.append(
            {
                "task": task.name,
                "environment": task.environment,
                "fn": task.fn,
                "queue": task.value("queue"),
                "cpu": _pair(task.value("resources.cpu.request"), task.value("resources.cpu.limit")),
                "memory": _pair(task.value("resources.memory.request"), task.value("resources.memory.limit")),
                "timeout": task.value("timeout"),
            }
        )
    queues = [
        {"queue": q.name, "concurrency": q.concurrency, "description": q.description}
        for q in resolved.queues.values()
    ]
    environments = [
        {
            "environment": name,
            "description": env.get("description"),
            "extends": env.get("extends"),
            "tasks": sum(t.environment == name for t in resolved.tasks.values()),
        }
        for name, env in resolved.environments.items()
    ]
    if fmt == "json":
        click.echo(json.dumps({"environments": environments, "tasks": rows, "queues": queues}, indent=2))
        return
    click.echo(
        _table(
            ["ENVIRONMENT", "TASKS", "EXTENDS", "DESCRIPTION"],
            [[e["environment"], e["tasks"], e["extends"], e["description"]] for e in environments],
        )
    )
    click.echo()
    click.echo(
        _table(
            ["TASK", "FN", "QUEUE", "CPU", "MEMORY", "TIMEOUT"],
            [[r["task"], r["fn"], r["queue"], r["cpu"], r["memory"], r["timeout"]] for r in rows],
        )
    )
    click.echo()
    click.echo(
        _table(
            ["QUEUE", "CONCURRENCY", "DESCRIPTION"],
            [[q["queue"], q["concurrency"], q["description"]] for q in queues],
        )
    )


def _pair(request: object, limit: object) -> str | None:
    if request is None and limit is None:
        return None
    return str(limit) if request == limit else f"{request or '-'}/{limit or '-'}"


def _table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[("-" if c is None else str(c)) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)
