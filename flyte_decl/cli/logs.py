"""`flyte-decl logs RUN [ACTION] [--follow]`: what a run's actions printed.

flyte-decl logs r12                    # every action, each line prefixed with its label
flyte-decl logs r12 a3                 # one action (or env2.square[3], or a task with one action)
flyte-decl logs last --follow          # keep printing until the run ends
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from flyte_decl.cli.history import open_store, run_actions, store_option
from flyte_decl.render.failure import caused_by_child
from flyte_decl.render.history import last_attempts
from flyte_decl.runtime.records import display_label
from flyte_decl.store.ids import pick_action
from flyte_decl.store.store import RUNNING, StoredAction

FOLLOW_INTERVAL = 0.2


@click.command()
@click.argument("run", metavar="RUN")
@click.argument("action", metavar="[ACTION]", required=False)
@store_option
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the run ends.")
def logs(run: str, action: str | None, config: str | None, follow: bool) -> None:
    """Print what RUN's actions printed (RUN: an id like r12, or `last`); ACTION for one of them."""
    store = open_store(config)
    found = store.run(run)
    actions = run_actions(store, found)
    only = pick_action(action, last_attempts(actions), found.id) if action else None
    tail = _Tail(labelled=only is None)
    while True:
        status = found.status
        chosen = [attempt for attempt in actions if only in (None, attempt.id)]
        for attempt in chosen:
            tail.read(attempt, several=len(chosen) > 1)
            tail.traceback(attempt)
        if not follow or status != RUNNING:
            break
        time.sleep(FOLLOW_INTERVAL)
        store.settle_dead_runs()
        found = store.run(found.id)
        actions = store.actions(found.id)
    tail.close()
    if only is not None:
        _explain_silence([attempt for attempt in actions if attempt.id == only])


class _Tail:
    """Prints each attempt's log file from where it last stopped, whole lines only until the end."""

    def __init__(self, *, labelled: bool) -> None:
        self.labelled = labelled
        self.offsets: dict[Path, int] = {}
        self.partial: dict[Path, tuple[str, bytes]] = {}
        self.shown: set[tuple[str, int]] = set()
        self.tracebacks: set[tuple[str, int]] = set()

    def read(self, attempt: StoredAction, *, several: bool) -> None:
        path = attempt.log_path
        if path is None or not path.exists():
            return
        with path.open("rb") as handle:
            handle.seek(self.offsets.get(path, 0))
            data = handle.read()
        if not data:
            return
        self.offsets[path] = self.offsets.get(path, 0) + len(data)
        prefix = self._prefix(attempt)
        if not self.labelled and several and (attempt.id, attempt.attempt) not in self.shown:
            click.echo(f"--- {attempt.id} {attempt.display} attempt {attempt.attempt} ---")
        self.shown.add((attempt.id, attempt.attempt))
        data = self.partial.pop(path, ("", b""))[1] + data
        *lines, rest = data.split(b"\n")
        if rest:
            self.partial[path] = (prefix, rest)
        for line in lines:
            click.echo(prefix + line.decode(errors="replace"))

    def traceback(self, attempt: StoredAction) -> None:
        """After an attempt's log, the traceback it failed with (the runner, not the log, holds it)."""
        key = (attempt.id, attempt.attempt)
        if not attempt.traceback or caused_by_child(attempt) or key in self.tracebacks:
            return
        self.tracebacks.add(key)
        prefix = self._prefix(attempt)
        rest = self.partial.pop(attempt.log_path, None) if attempt.log_path else None
        if rest is not None:
            click.echo(rest[0] + rest[1].decode(errors="replace"))
        for line in attempt.traceback.rstrip("\n").splitlines():
            click.echo(prefix + line)

    def _prefix(self, attempt: StoredAction) -> str:
        if not self.labelled:
            return ""
        label = attempt.label + (f"#{attempt.attempt}" if attempt.attempt > 1 else "")
        return display_label(label, attempt.group, attempt.short_name) + " | "

    def close(self) -> None:
        """The end: a last line without a newline is printed too."""
        for prefix, rest in self.partial.values():
            click.echo(prefix + rest.decode(errors="replace"))
        self.partial.clear()


def _explain_silence(attempts: list[StoredAction]) -> None:
    """Say on stderr why one action has no log to show, rather than printing nothing."""
    last = attempts[-1]
    if any(a.traceback for a in attempts) or any(
        a.log_path is not None and a.log_path.exists() and a.log_path.stat().st_size for a in attempts
    ):
        return
    if last.phase == "cached":
        reason = f"was cached ({last.message}): no process ran"
    elif all(a.log_path is None for a in attempts):
        reason = f"never started ({last.phase}{': ' + last.message if last.message else ''})"
    elif not any(a.log_path is not None and a.log_path.exists() for a in attempts):
        reason = f"has no log file left at {last.log_path}"
    else:
        reason = "printed nothing"
    click.echo(f"note: {last.id} {last.display} {reason}", err=True)
