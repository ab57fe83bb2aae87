"""What `flyte-decl run` shows: a live view while actions run, then the result and failures.

On a terminal a rich live line counts actions by phase; elsewhere each printed line and each
failure is streamed to stderr with the action's label (`env2.square[3] | ...`).
"""

from __future__ import annotations

import json
from collections import Counter
from types import TracebackType
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text

from flyte_decl.render.failure import failure_lines, root_cause
from flyte_decl.runtime.records import ActionEvent, ActionRecord, Phase, RunResult

_FAILED = {Phase.FAILED, Phase.TIMED_OUT, Phase.ABORTED}


class RunView:
    """Receives the runner's events; a context manager around the run."""

    def __init__(self, stream: TextIO, *, live: bool) -> None:
        self.console = Console(file=stream, highlight=False, soft_wrap=True)
        self.phases: dict[str, Phase] = {}
        self.live: Live | None = (
            Live(console=self.console, transient=True, refresh_per_second=8) if live else None
        )

    def __enter__(self) -> RunView:
        if self.live:
            self.live.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.live:
            self.live.__exit__(kind, exc, tb)

    def on_event(self, event: ActionEvent) -> None:
        if event.line is not None:
            self.console.print(Text(f"{event.label} | ").append(event.line.rstrip("\n")), markup=False)
            return
        self.phases[f"{event.action}#{event.attempt}"] = event.phase
        if event.phase in _FAILED:
            kind = f" ({event.kind.value})" if event.kind and event.kind.value != event.phase.value else ""
            retry = f", attempt {event.attempt}" if event.attempt > 1 else ""
            self.console.print(
                f"{event.label} {event.phase.value}{kind}{retry}: {event.message}", markup=False
            )
        if self.live:
            self.live.update(Text(self.summary()))

    def summary(self) -> str:
        counts = Counter(phase.value for phase in self.phases.values())
        return " · ".join(f"{counts[p.value]} {p.value}" for p in Phase if counts[p.value])


def render_result(result: RunResult, seconds: float) -> tuple[str, str]:
    """(stdout, stderr): the outputs as JSON when they are JSON-able; a summary line, then for a failed
    run the failing action's own error and traceback (`failure.root_cause`), so the console ends with it.
    """
    counts = Counter(record.phase.value for record in _last_attempts(result.actions))
    summary = ", ".join(f"{n} {phase}" for phase, n in counts.items())
    lines = [f"run {result.run_id} {result.status.value} in {seconds:.2f}s: "
             f"{len(_last_attempts(result.actions))} actions ({summary}); logs in {result.log_dir}"]  # fmt: skip
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
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
