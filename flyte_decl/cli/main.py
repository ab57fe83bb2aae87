"""`flyte-decl` command line: parses arguments and dispatches to one module per command.

Every user mistake ends here as one line on stderr and an exit code (SPEC §4), never a traceback.
"""

from __future__ import annotations

import signal
import sys
import traceback
from collections.abc import Callable
from types import FrameType
from typing import Any

import click

from flyte_decl import __version__, masking
from flyte_decl.problems import FlyteDeclError


class _LazyGroup(click.Group):
    """Imports a command's module only when that command runs, so `--help` and `schema` start fast."""

    commands_by_name = {
        "validate": "flyte_decl.cli.validate:validate",
        "explain": "flyte_decl.cli.explain:explain",
        "list": "flyte_decl.cli.list_tasks:list_tasks",
        "schema": "flyte_decl.cli.schema:schema",
        "run": "flyte_decl.cli.run:run",
        "doctor": "flyte_decl.cli.doctor:doctor",
        "diff": "flyte_decl.cli.diff:diff",
        "runs": "flyte_decl.cli.runs:runs",
        "logs": "flyte_decl.cli.logs:logs",
        "rerun": "flyte_decl.cli.rerun:rerun",
        "recover": "flyte_decl.cli.recover:recover",
        "report": "flyte_decl.cli.report:report",
        "export": "flyte_decl.cli.export:export",
        "init": "flyte_decl.cli.init:init",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands_by_name)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = self.commands_by_name.get(name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        try:
            module = __import__(module_name, fromlist=[attr])
        except ModuleNotFoundError:
            return None
        command: click.Command = getattr(module, attr)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flyte-decl")
def cli() -> None:
    """Declarative task environments, enforced locally."""


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and turn every known failure into one line and an exit code."""
    # SIGTERM interrupts like Ctrl-C from the start (exit 130), not only once a run is under way;
    # `run` turns either into an orderly abort while it runs.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    code = _run(cli.main, argv)
    sys.exit(code)


class _Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM. A subclass, because CPython ends with SIGINT (not the code asked for)
    once a plain KeyboardInterrupt has left any code it ran through `PyRun_*`, even if caught later."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise _Interrupted


def _run(entry: Callable[..., Any], argv: list[str] | None) -> int:
    """Run a command with its output masked (SPEC §5): every declared secret, even in a traceback."""
    with masking.console():
        try:
            return _dispatch(entry, argv)
        except Exception:  # a bug: its traceback, through the masked stderr, and exit 1 as Python's
            traceback.print_exc()
            return 1


def _dispatch(entry: Callable[..., Any], argv: list[str] | None) -> int:
    try:
        result = entry(args=argv, prog_name="flyte-decl", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except FlyteDeclError as exc:
        for line in exc.lines():
            click.echo(line, err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "flyte-decl"
        click.echo(f"error: {exc.format_message()} (see '{command} --help')", err=True)
        return 2
    except click.Abort:
        click.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except BrokenPipeError:
        return 1
