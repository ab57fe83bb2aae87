"""`flyte-decl validate`: every problem in the config, one per line, located."""

from __future__ import annotations

import click

from flyte_decl.cli.options import config_options, format_option
from flyte_decl.config import imports
from flyte_decl.config.load import check
from flyte_decl.render.problems import count_summary, render_problems
from flyte_decl.words import counted


@click.command()
@config_options
@click.option("--strict", is_flag=True, help="Treat warnings (e.g. overrides matching nothing) as errors.")
@click.option(
    "--check-imports",
    is_flag=True,
    help="Import every task's module (this runs its top-level code) and check the functions themselves.",
)
@format_option("text", "json", "github")
def validate(
    configs: tuple[str, ...], profiles: tuple[str, ...], strict: bool, check_imports: bool, fmt: str
) -> int:
    """Check the config: shape, values, references, cycles, bindings; exit 1 if anything is wrong.

    Every `fn` is checked against its module's source file without running it (a typo, a class, a
    builtin); no code of yours runs unless --check-imports is given.
    """
    checked = check(configs or None, profile=profiles, strict=strict, keep_fields=False)
    problems = list(checked.problems)
    if checked.resolved is not None and check_imports:
        problems += imports.check_imports(checked.resolved)
    elif checked.resolved is not None:
        found, unchecked = imports.check_sources(checked.resolved)
        problems += found
        if unchecked:
            shown = ", ".join(unchecked[:3]) + (
                f" and {len(unchecked) - 3} more" if len(unchecked) > 3 else ""
            )
            click.echo(
                f"note: not checked without importing: {shown}; --check-imports imports them", err=True
            )
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        summary = count_summary(problems)
    else:
        resolved = checked.resolved
        n_tasks = len(resolved.tasks) if resolved else 0
        n_envs = len(resolved.environments) if resolved else 0
        summary = f"ok: {counted(n_tasks, 'task')} in {counted(n_envs, 'environment')}"
        if problems:
            summary += f" ({count_summary(problems)})"
    output = render_problems(problems, fmt, summary=summary)
    if output:
        click.echo(output)
    return 1 if errors else 0
