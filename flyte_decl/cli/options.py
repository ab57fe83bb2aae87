"""Options shared by the commands that read a config."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from flyte_decl.problems import UsageError
from flyte_decl.render.run import NORMAL, QUIET, VERBOSE

F = TypeVar("F", bound=Callable[..., Any])


def config_options(func: F) -> F:
    """-c/--config (repeatable, later files overlay earlier ones) and --profile (repeatable, or a,b)."""
    func = click.option(
        "--profile",
        "profiles",
        multiple=True,
        metavar="NAME[,NAME]",
        help="Overlay these profiles, in order.",
    )(func)
    func = click.option(
        "-c",
        "--config",
        "configs",
        multiple=True,
        type=click.Path(dir_okay=False),
        metavar="PATH",
        help="Config file; repeat to overlay. Default: ./environments.yaml, .yml, .toml, then pyproject.toml.",
    )(func)
    return func


def format_option(*choices: str) -> Callable[[F], F]:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default=choices[0],
        show_default=True,
        help="Output format.",
    )


def output_option(help: str, default: Path | None = None) -> Callable[[F], F]:
    """-o/--output FILE: the file a command writes (required when there is no default)."""
    return click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, path_type=Path),
        default=default,
        required=default is None,
        show_default=default is not None,
        help=help,
    )


def verbosity_options(func: F) -> F:
    """-q/--quiet and -v/--verbose of a command that runs tasks (run, rerun, recover), passed to it as
    one `verbosity` argument (QUIET, NORMAL or VERBOSE); both together are a usage error."""

    @functools.wraps(func)
    def command(*args: Any, quiet: bool, verbose: bool, **kwargs: Any) -> Any:
        if quiet and verbose:
            raise UsageError("-q/--quiet and -v/--verbose cannot be used together")
        return func(*args, verbosity=QUIET if quiet else VERBOSE if verbose else NORMAL, **kwargs)

    command = click.option("-v", "--verbose", is_flag=True, help="Print every phase change of every action.")(
        command
    )
    return click.option("-q", "--quiet", is_flag=True, help="Print only the result and errors.")(command)  # type: ignore[return-value]
