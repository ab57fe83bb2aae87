"""`flyte-decl runs list` and `flyte-decl runs show RUN`: the run history.

flyte-decl runs list --status failed --task square --since 2h
flyte-decl runs show r12 --format json
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time

import click

from flyte_decl.cli.history import open_store, run_actions, store_option
from flyte_decl.cli.options import format_option
from flyte_decl.problems import UsageError
from flyte_decl.quantity import DURATION_PATTERN, parse_duration
from flyte_decl.render.history import render_removed, render_run, render_runs
from flyte_decl.runtime.records import Phase
from flyte_decl.store.retention import Retention, remove, select
from flyte_decl.store.store import RUNNING
from flyte_decl.words import counted

STATUSES = ["running", *(phase.value for phase in Phase if phase.final and phase is not Phase.CACHED)]


@click.group(invoke_without_command=True, no_args_is_help=False)
@click.pass_context
def runs(ctx: click.Context) -> None:
    """Recorded runs: list them, or show one's actions."""
    if ctx.invoked_subcommand is None:
        raise UsageError(
            "runs needs a command: flyte-decl runs list, show RUN, prune or delete RUN (see 'flyte-decl runs --help')"
        )


@runs.command(name="list")
@store_option
@click.option(
    "--status", "statuses", multiple=True, type=click.Choice(STATUSES), help="Only runs in this status."
)
@click.option("--task", default=None, help="Only runs of this root task (ENV.TASK or short name).")
@click.option(
    "--since", default=None, metavar="WHEN", help="Started at or after: 2h, 3d, today, 2026-11-24[T10:30]."
)
@click.option("--until", default=None, metavar="WHEN", help="Started before (same forms as --since).")
@click.option(
    "-n", "--limit", default=20, show_default=True, help="At most this many runs, newest first (0: all)."
)
@format_option("text", "json")
def list_runs(
    config: str | None,
    statuses: tuple[str, ...],
    task: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    fmt: str,
) -> None:
    """List recorded runs, newest first."""
    start = parse_when(since, "--since") if since else None
    end = parse_when(until, "--until") if until else None
    store = open_store(config)
    found = store.runs(status=statuses, task=task, since=start, until=end, limit=limit or None)
    counts = store.phase_counts([run.id for run in found])
    if fmt == "json":
        click.echo(
            json.dumps([{**run.to_json(), "actions": dict(counts[run.id])} for run in found], indent=2)
        )
    else:
        click.echo(render_runs(found, counts))


@runs.command()
@click.argument("run", metavar="RUN")
@store_option
@format_option("text", "json")
def show(run: str, config: str | None, fmt: str) -> None:
    """Show RUN (an id like r12, or `last`): its actions as a tree, with peaks against limits."""
    store = open_store(config)
    found = store.run(run)
    actions = run_actions(store, found)
    if fmt == "json":
        data = {**found.to_json(), "mechanisms": found.mechanisms, "actions": [a.to_json() for a in actions]}
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(render_run(found, actions))


@runs.command()
@store_option
@click.option("--keep", type=click.IntRange(min=0), default=None, metavar="N", help="Keep the newest N runs.")
@click.option("--older-than", default=None, metavar="AGE", help="Only runs started longer ago: 30d, 12h.")
@click.option(
    "--status", "statuses", multiple=True, type=click.Choice(STATUSES[1:]), help="Only runs in this status."
)
@click.option("--dry-run", is_flag=True, help="Say which runs would go; remove nothing.")
def prune(
    config: str | None, keep: int | None, older_than: str | None, statuses: tuple[str, ...], dry_run: bool
) -> None:
    """Remove finished runs: past the newest --keep N, older than --older-than, in --status (all that are given)."""
    if older_than is not None and not re.fullmatch(DURATION_PATTERN, older_than):
        raise UsageError(f"--older-than {older_than!r}: expected an age like 30d, 12h or 90m")
    policy = Retention(keep, float(parse_duration(older_than)) if older_than else None, statuses)
    if not policy.active:
        raise UsageError(
            "runs prune needs --keep N, --older-than AGE or --status STATUS "
            "(hint: 'flyte-decl runs prune --keep 50' keeps the newest 50 runs)"
        )
    store = open_store(config)
    chosen = select(store, policy)
    if dry_run:
        click.echo(
            f"would remove {counted(len(chosen), 'run')}" + (f": {', '.join(chosen)}" if chosen else "")
        )
        return
    click.echo(render_removed(remove(store, chosen)))


@runs.command()
@click.argument("run_refs", metavar="RUN...", nargs=-1, required=True)
@store_option
def delete(run_refs: tuple[str, ...], config: str | None) -> None:
    """Remove RUN (an id like r12, or `last`) whole: its actions, samples, payloads and log files."""
    store = open_store(config)
    found = [store.run(ref) for ref in run_refs]
    for run in found:
        if run.status == RUNNING:
            raise UsageError(
                f"run {run.id} is still running (runner pid {run.pid}) (hint: stop it first, or wait for it)"
            )
    click.echo(render_removed(remove(store, [run.id for run in found])))


def parse_when(text: str, option: str) -> float:
    """Epoch seconds from a date, a date and time, a duration ago (2h, 3d), `today` or `yesterday`."""
    today = dt.datetime.combine(dt.date.today(), dt.time())
    if text in ("today", "yesterday"):
        return (today - dt.timedelta(days=1 if text == "yesterday" else 0)).timestamp()
    if re.fullmatch(DURATION_PATTERN, text):
        return time.time() - float(parse_duration(text))
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise UsageError(
            f"{option} {text!r}: expected a date (2026-11-24 or 2026-11-24T10:30), a time ago (30m, 2h, 3d), "
            "today or yesterday"
        ) from None
