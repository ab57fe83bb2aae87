"""`flyte-decl diff OLD NEW`: what effectively changes, task by task, between two configs.

Each side is a config file or `git:REV[:PATH]` (read with git, no checkout). Exit 0 when nothing
effective changed, 1 when something did, 2 when a side cannot be read or is invalid.
"""

from __future__ import annotations

import click

from flyte_decl.cli.options import format_option
from flyte_decl.config.load import _gc_paused, check_document
from flyte_decl.config.resolve import Resolved
from flyte_decl.problems import ConfigLoadError, UsageError
from flyte_decl.render.diff import render_diff
from flyte_decl.review.changes import compare
from flyte_decl.review.sources import Side, parse_side, read_side


@click.command()
@click.argument("old")
@click.argument("new")
@click.option(
    "--profile",
    "profiles",
    multiple=True,
    metavar="NAME[,NAME]",
    help="Overlay these profiles on both sides, in order.",
)
@format_option("text", "markdown", "json")
def diff(old: str, new: str, profiles: tuple[str, ...], fmt: str) -> int:
    """Show what changes in each task's effective settings from OLD to NEW.

    OLD and NEW are config files or git:REV[:PATH], e.g. `flyte-decl diff git:origin/main
    environments.yaml`. Exit 0 if nothing effective changed, 1 if something did. Reads the config
    files only: no code of yours runs.
    """
    sides = [parse_side(old), parse_side(new)]
    with _gc_paused():  # as `check` does: reading builds many small acyclic objects
        before, after = (_resolve(side, profiles) for side in sides)
    result = compare(before, after, old, new)
    click.echo(render_diff(result, fmt))
    return 1 if result.changed else 0


def _resolve(side: Side, profiles: tuple[str, ...]) -> Resolved:
    document = read_side(side)
    try:
        checked = check_document(document, profile=profiles)
    except UsageError as exc:  # e.g. a profile that only one side declares
        raise UsageError(f"{side.spec}: {exc}") from None
    if checked.errors or checked.resolved is None:
        raise ConfigLoadError(checked.errors)
    return checked.resolved
