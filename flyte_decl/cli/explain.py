"""`flyte-decl explain TASK`: every effective setting of a task, with the layer and place that set it."""

from __future__ import annotations

import click

from flyte_decl.backends.choice import choose_backend
from flyte_decl.cli.options import config_options, format_option
from flyte_decl.render.explain import render_explain
from flyte_decl.session import resolve_target


@click.command()
@click.argument("task")
@click.argument("program_task", required=False, metavar="[TASK]")
@config_options
@click.option("--set", "sets", multiple=True, metavar="PATH=VALUE", help="Run-level setting, as for `run`.")
@click.option("--queue", default=None, help="Run-level queue, as for `run`.")
@click.option(
    "--overrides", "show_overrides", is_flag=True, help="Also list the overrides entries that match."
)
@format_option("text", "json")
def explain(
    task: str,
    program_task: str | None,
    configs: tuple[str, ...],
    profiles: tuple[str, ...],
    sets: tuple[str, ...],
    queue: str | None,
    show_overrides: bool,
    fmt: str,
) -> None:
    """Show the effective settings of TASK (ENV.TASK or a unique short name) and where each came from.

    Reads the config files only: no code of yours runs. `explain FILE.py TASK` explains a task
    declared in a Python program, as `run FILE.py TASK` runs it: that imports FILE.py (running its
    top-level code) to layer the environments it declares beneath the YAML.
    """
    params = [program_task] if program_task else []
    if params and not task.endswith(".py"):
        raise click.UsageError(
            f"unexpected extra argument {program_task!r}: only FILE.py takes a TASK after it"
        )
    name, resolved = resolve_target(
        task, params, configs=configs, profiles=profiles, sets=sets, queue=queue, only=True
    )
    resolved_task = resolved.tasks[name]
    overrides = None
    if show_overrides:
        entries = resolved.document.data.get("overrides") or []
        overrides = [
            {
                "index": i,
                "match": entries[i].get("match"),
                "at": resolved.document.mark(("overrides", i)).short,
            }
            for i in resolved_task.overrides
        ]
    backend = choose_backend(resolved.document, None, None)  # as `run` with no --backend flag
    click.echo(
        render_explain(resolved_task, fmt, overrides, backend if backend.source != "default" else None)
    )
