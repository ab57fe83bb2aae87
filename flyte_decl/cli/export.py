"""`flyte-decl export flyte -o flyte_envs.py [--profile prod]`: the config as a module for `flyte deploy`.

Every setting Flyte cannot carry is printed as one warning line, and listed in the module's docstring.
"""

from __future__ import annotations

from pathlib import Path

import click

from flyte_decl.cli.options import config_options


@click.group()
def export() -> None:
    """Export the resolved config to another system."""


@export.command("flyte")
@config_options
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The Python module to write, e.g. flyte_envs.py (beside the bound modules).",
)
def export_flyte(configs: tuple[str, ...], profiles: tuple[str, ...], output: Path) -> None:
    """Write a module declaring one flyte.TaskEnvironment per environment, every task bound.

    Then: flyte deploy OUTPUT (or flyte run OUTPUT TASK). Needs: pip install 'flyte-decl[flyte]'.
    """
    from flyte_decl.flyte import prepare
    from flyte_decl.flyte.build import build, require_flyte
    from flyte_decl.flyte.source import render_module

    require_flyte()
    plan, bindings = prepare(list(configs) or None, list(profiles) or None)
    build(plan, bindings, rebind=False)  # Flyte checks every value now, not at deploy time
    origin = ", ".join(configs) or "the discovered config"
    if profiles:
        origin += f" with profile {', '.join(profiles)}"
    output.write_text(render_module(plan, bindings, output.parent, origin))
    for message in plan.warnings:
        click.echo(f"warning: {message}", err=True)
    envs = len(plan.environments)
    tasks = sum(len(e.tasks) for e in plan.environments)
    click.echo(
        f"wrote {output}: {envs} environments, {tasks} tasks; deploy with: flyte deploy {output}", err=True
    )
