"""What `flyte-decl run` shows: a live view while actions run, then the result and failures.

On a terminal (like `nextflow run`'s process table) a rich live area holds a header (run id,
elapsed time, a progress bar over the actions known so far), one row per task (queued, running,
succeeded, failed, cached, retried) and the running actions with their elapsed time and memory
against their limit; what actions print scrolls above it, and its last state stays on screen.
Elsewhere (CI logs) each printed line and each failure is streamed with the action's label
(`env2.square[3] | ...`). `verbosity` -1 (`--quiet`) prints no lines at all, 1 (`-v`) a line for
every phase change. The runner's loop only updates counters here; drawing happens on rich's own
refresh thread, at most 4 times a second.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from types import TracebackType
from typing import Any, TextIO

import psutil
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from flyte_decl.quantity import format_bytes
from flyte_decl.render.failure import failure_lines, root_cause
from flyte_decl.render.history import seconds as human_seconds
from flyte_decl.runtime import datetimes
from flyte_decl.runtime.records import ActionEvent, ActionRecord, Phase, RunResult
from flyte_decl.words import counted

_FAILED = {Phase.FAILED, Phase.TIMED_OUT, Phase.ABORTED}
COLUMNS = ("queued", "running", "succeeded", "failed", "cached", "retried")
MAX_RUNNING_SHOWN = 8
QUIET, NORMAL, VERBOSE = -1, 0, 1


class Board:
    """The live view's state: counts per task and phase, and the running actions. O(1) per event."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.started = time.monotonic()
        self.phase_of: dict[str, tuple[str, str]] = {}  # action -> (task, its column now)
        self.counts: dict[str, Counter[str]] = {}
        self.running: dict[str, tuple[str, float, int | None, Any]] = {}  # action -> label, since, pid, limit
        self.done = 0

    def update(self, event: ActionEvent) -> None:
        column = _column(event.phase)
        before = self.phase_of.get(event.action)
        counts = self.counts.setdefault(event.task, Counter())
        if before is not None:
            counts[before[1]] -= 1
            self.done -= before[1] in _FINAL_COLUMNS
        if event.attempt > 1 and event.phase is Phase.QUEUED:
            counts["retried"] += 1
        counts[column] += 1
        self.done += column in _FINAL_COLUMNS
        self.phase_of[event.action] = (event.task, column)
        if event.phase is Phase.RUNNING:
            record = event.record
            limit = record.limits.get("memory") if record else None
            self.running[event.action] = (
                event.display,
                time.monotonic(),
                record.pid if record else None,
                limit,
            )
        else:
            self.running.pop(event.action, None)

    def __rich__(self) -> Group:
        known, done = len(self.phase_of), self.done
        header = Table.grid(padding=(0, 2))
        header.add_row(
            Text(f"run {self.run_id}", style="bold"), human_seconds(time.monotonic() - self.started),
            ProgressBar(total=max(known, 1), completed=done, width=30), f"{done}/{known} actions done",
        )  # fmt: skip
        tasks = Table("task", *COLUMNS, box=None, pad_edge=False, header_style="bold")
        for task, counts in list(self.counts.items()):
            tasks.add_row(task, *(str(counts[c]) if counts[c] else "-" for c in COLUMNS))
        parts: list[Any] = [header, tasks]
        running = sorted(list(self.running.values()), key=lambda item: item[1])[:MAX_RUNNING_SHOWN]
        if running:
            table = Table(
                "running", "elapsed", "rss / memory limit", box=None, pad_edge=False, header_style="bold"
            )
            now = time.monotonic()
            for label, since, pid, limit in running:
                table.add_row(label, human_seconds(now - since), _memory(pid, limit))
            more = len(self.running) - len(running)
            parts += [table] + ([Text(f"... and {more} more running")] if more > 0 else [])
        return Group(*parts)


_FINAL_COLUMNS = {"succeeded", "failed", "cached"}


def _column(phase: Phase) -> str:
    if phase in _FAILED:
        return "failed"
    return phase.value


def _memory(pid: int | None, limit: Any) -> str:
    """Resident memory (RSS) of the action's main process now, against its limit.

    Its own process only: finding a tree's children means reading every process of the machine,
    too much for a view redrawn 4 times a second. The peak of the whole tree is in `runs show`.
    """
    if pid is None:
        return "-"
    try:
        rss = psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return "-"
    text = format_bytes(rss)
    return text + (f" / {format_bytes(int(limit))} ({100 * rss / limit:.0f}%)" if limit else "")


class RunView:
    """Receives the runner's events; a context manager around the run."""

    def __init__(self, stream: TextIO, *, live: bool, run_id: str = "", verbosity: int = NORMAL) -> None:
        self.console = Console(file=stream, highlight=False, soft_wrap=True)
        self.verbosity = verbosity
        self.board = Board(run_id)
        self.live: Live | None = None
        if live and verbosity > QUIET:
            self.live = Live(self.board, console=self.console, refresh_per_second=4, transient=False,
                             redirect_stdout=False, redirect_stderr=False)  # fmt: skip

    def __enter__(self) -> RunView:
        if self.live:
            self.live.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.live:
            self.live.refresh()  # the final state stays on screen
            self.live.__exit__(kind, exc, tb)

    def on_event(self, event: ActionEvent) -> None:
        if self.verbosity == QUIET:
            return
        if event.line is not None:
            self.console.print(Text(f"{event.display} | ").append(event.line.rstrip("\n")), markup=False)
            return
        self.board.update(event)
        if event.phase in _FAILED:
            kind = f" ({event.kind.value})" if event.kind and event.kind.value != event.phase.value else ""
            retry = f", attempt {event.attempt}" if event.attempt > 1 else ""
            self.console.print(
                f"{event.display} {event.phase.value}{kind}{retry}: {event.message}", markup=False
            )
        elif self.verbosity >= VERBOSE:
            self.console.print(_phase_line(event), markup=False)


def _phase_line(event: ActionEvent) -> str:
    """`-v`: `env2.square[3] (a5) running, pid 4242` and the like."""
    record = event.record
    text = f"{event.display} ({event.action}) {event.phase.value}"
    if event.attempt > 1:
        text += f", attempt {event.attempt}"
    if record is not None and event.phase is Phase.RUNNING and record.pid:
        text += f", pid {record.pid}"
    if record is not None and event.phase.final and record.started_at and record.ended_at:
        text += f" in {human_seconds(record.ended_at - record.started_at)}"
    if event.phase is Phase.CACHED and event.message:
        text += f": {event.message}"
    return text


def render_result(result: RunResult, seconds: float) -> tuple[str, str]:
    """(stdout, stderr): the outputs as JSON when they are JSON-able; a summary line, then for a failed
    run the failing action's own error and traceback (`failure.root_cause`), so the console ends with it.
    """
    counts = Counter(record.phase.value for record in _last_attempts(result.actions))
    summary = ", ".join(f"{n} {phase}" for phase, n in counts.items())
    lines = [f"run {result.run_id} {result.status.value} in {seconds:.2f}s: "
             f"{counted(len(_last_attempts(result.actions)), 'action')} ({summary}); logs in {result.log_dir}"]  # fmt: skip
    out = ""
    if result.status is Phase.SUCCEEDED:
        out = _show(result.outputs)
    elif (cause := root_cause(result.actions)) is not None:
        lines += ["error: " + line if i == 0 else line for i, line in enumerate(failure_lines(cause))]
    elif result.error is not None:
        lines.append(f"error: run {result.error.kind.value}: {result.error.message}")
    return out, "\n".join(lines)


def _last_attempts(actions: list[ActionRecord]) -> list[ActionRecord]:
    last: dict[str, ActionRecord] = {}
    for record in actions:
        last[record.id] = record
    return list(last.values())


def _show(value: Any) -> str:
    try:
        return json.dumps(value, default=datetimes.json_default)
    except (TypeError, ValueError):
        return repr(value)
