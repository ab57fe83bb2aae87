"""`flyte-decl export flyte -o flyte_envs.py [--profile prod]`: the config as a module for `flyte deploy`.

Every setting Flyte cannot carry is printed as one warning line, and listed in the module's docstring.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from flyte_decl.cli.options import config_options, output_option
from flyte_decl.problems import UsageError
from flyte_decl.words import counted


@click.group()
def export() -> None:
    """Export the resolved config to another system."""


@export.command("flyte")
@click.argument("programs", nargs=-1, type=click.Path(dir_okay=False), metavar="[PROGRAM.py]...")
@config_options
@output_option("The Python module to write, e.g. flyte_envs.py, beside the config.")
def export_flyte(
    programs: tuple[str, ...], configs: tuple[str, ...], profiles: tuple[str, ...], output: Path
) -> None:
    """Write a module declaring one flyte.TaskEnvironment per environment, every task bound.

    PROGRAM.py files declare environments and tasks in code, beneath the config (as for `run FILE.py`).
    Export imports every bound module and each PROGRAM.py (running their top-level code), as Flyte's
    own deploy does, to bind each task to its function.

    Then: flyte deploy --all OUTPUT (or flyte run OUTPUT TASK). Needs: pip install 'flyte-decl[flyte]'.
    """
    from flyte_decl.flyte import prepare
    from flyte_decl.flyte.build import build, require_flyte
    from flyte_decl.flyte.source import render_module

    require_flyte()
    plan, bindings = prepare(list(configs) or None, list(profiles) or None, programs)
    if output.resolve().parent != plan.root_dir.resolve():
        beside = Path(os.path.relpath(plan.root_dir / output.name))
        raise UsageError(
            f"{output}: write the module beside the config (it imports the bound modules by name, "
            f"relative to the config's folder): -o {beside}"
        )
    build(plan, bindings, rebind=False)  # Flyte checks every value now, not at deploy time
    origin = ", ".join([*programs, *configs]) or "the discovered config"
    if profiles:
        origin += f" with profile {', '.join(profiles)}"
    output.write_text(render_module(plan, bindings, output, origin))
    for message in plan.warnings:
        click.echo(f"warning: {message}", err=True)
    envs = len(plan.environments)
    tasks = sum(len(e.tasks) for e in plan.environments)
    click.echo(
        f"wrote {output}: {counted(envs, 'environment')}, {counted(tasks, 'task')}; deploy with: flyte deploy --all {output}",
        err=True,
    )
