"""`flyte-decl explain TASK`: every effective setting of a task, with the layer and place that set it."""

from __future__ import annotations

import click

from flyte_decl.cli.options import config_options, format_option
from flyte_decl.config.load import find_task, load
from flyte_decl.problems import FlyteDeclError
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

    `explain FILE.py TASK` explains a task declared in a Python program, as `run FILE.py TASK` runs it.
    """
    params = [program_task] if program_task else []
    if params and not task.endswith(".py"):
        raise click.UsageError(
            f"unexpected extra argument {program_task!r}: only FILE.py takes a TASK after it"
        )
    try:
        # Importing the task's module brings environments declared in code, beneath the YAML layers.
        name, _, resolved = resolve_target(
            task, params, configs=configs, profiles=profiles, sets=sets, queue=queue
        )
    except FlyteDeclError:
        raise
    except Exception as exc:  # the user's code does not import here: explain the file alone
        if task.endswith(".py"):
            raise
        resolved = load(configs or None, profile=profiles, sets=sets, queue=queue, root_task=task)
        name = find_task(resolved, task)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        click.echo(f"note: could not import {resolved.tasks[name].fn} ({reason}); showing the config file's "
                   "layers only", err=True)  # fmt: skip
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
    click.echo(render_explain(resolved_task, fmt, overrides))
