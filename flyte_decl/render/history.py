"""Run history as text: the `runs list` table and the `runs show` action tree.

JSON needs no renderer of its own: the commands print the records' `to_json()`.

    print(render_runs(runs, counts))
    print(render_run(run, actions))
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from flyte_decl.quantity import format_bytes, format_cpu
from flyte_decl.render.failure import caused_by_child
from flyte_decl.store.retention import Removed
from flyte_decl.store.store import StoredAction, StoredRun
from flyte_decl.words import counted


def render_runs(runs: Sequence[StoredRun], counts: dict[str, Counter[str]]) -> str:
    """One line per run, newest first."""
    if not runs:
        return "no runs match"
    rows = [
        [
            run.id,
            run.status,
            run.task,
            when(run.created_at),
            seconds(run.duration) if run.duration is not None else "-",
            _counts(counts.get(run.id, Counter())),
            f"{run.origin} of {run.source_run}" if run.source_run else "-",
        ]
        for run in runs
    ]
    return table(["RUN", "STATUS", "TASK", "STARTED", "DURATION", "ACTIONS", "FROM"], rows)


def render_run(run: StoredRun, actions: Sequence[StoredAction]) -> str:
    """The run, then its actions as a tree (parents above children) with peaks against limits."""
    status = run.status + (f" ({run.kind})" if run.kind and run.kind != run.status else "")
    lines = [f"run {run.id}  {run.task}  {status}" + (f": {run.message}" if run.message else "")]
    origin = f"; {run.origin} of {run.source_run}" if run.source_run else ""
    took = f", {seconds(run.duration)}" if run.duration is not None else ", still running"
    lines.append(f"  started {when(run.created_at)}{took}{origin}; runner pid {run.pid} on {run.host}")
    lines.append(f"  config  {run.sources.describe()}")
    lines.append(f"  inputs  {short(run.inputs_json)}")
    if run.status == "succeeded":
        lines.append(f"  outputs {short(run.outputs_json)}")
    lines.append(f"  logs    {run.log_dir}")
    lines.append("")
    # Flyte's display labels get columns of their own when a run has any (`flyte.group`, `short_name`).
    labels = [("NAME", "short_name"), ("GROUP", "group")]
    labels = [(title, name) for title, name in labels if any(getattr(a, name) for a in actions)]
    rows = []
    # On a backend with several machines, the node of each attempt (Ray's id, shortened as Ray does).
    nodes = any(action.node for action in actions)
    for prefix, action in _tree(actions):
        rows.append(
            [
                action.id + (f" #{action.attempt}" if action.attempt > 1 else ""),
                prefix + action.label,
                *(getattr(action, name) or "-" for _, name in labels),
                action.phase + (f" ({action.kind})" if action.kind and action.kind != action.phase else ""),
                seconds(action.duration) if action.duration is not None else "-",
                memory_use(action),
                cpu_use(action),
                *([action.node[:8] if action.node else "-"] if nodes else []),
            ]
        )
    headers = ["ACTION", "TASK", *(title for title, _ in labels), "PHASE", "DURATION", "MEMORY PEAK/LIMIT"]
    lines.append(table([*headers, "CPU AVG/LIMIT", *(["NODE"] if nodes else [])], rows))
    failures = [a for a in actions if a.kind is not None or a.phase == "aborted"]
    if failures:
        lines.append("")
        lines.append("failures:")
        for action in failures:
            attempt = f" attempt {action.attempt}" if action.attempt > 1 else ""
            kind = action.kind or action.phase
            lines.append(f"  {action.id} {action.display}{attempt}: {kind}: {action.message}")
            if action.traceback and not caused_by_child(action):
                lines += ["    " + line for line in action.traceback.rstrip("\n").splitlines()]
    return "\n".join(lines)


def render_removed(removed: Removed) -> str:
    """`removed 2 runs (r1, r2): 58 actions, 310 samples, 40 payloads, 1.2Mi of files; store 2Mi -> 1.1Mi`."""
    if not removed.runs:
        return f"no runs removed; store {format_bytes(removed.store_after)}B"
    rows = removed.rows
    return (
        f"removed {counted(len(removed.runs), 'run')} ({', '.join(removed.runs)}): "
        f"{counted(rows.get('actions', 0), 'action')}, {counted(rows.get('samples', 0), 'sample')}, "
        f"{counted(rows.get('payloads', 0), 'payload')}, "
        f"{format_bytes(removed.file_bytes)}B of log files; "
        f"store {format_bytes(removed.store_before)}B -> {format_bytes(removed.store_after)}B"
    )


def last_attempts(actions: Sequence[StoredAction]) -> list[StoredAction]:
    """The latest attempt of each action, in queue order."""
    last: dict[str, StoredAction] = {}
    for action in actions:
        last[action.id] = action
    return list(last.values())


def memory_use(action: StoredAction) -> str:
    """Peak memory against the limit: "19.0Mi / 250Mi (8%)"."""
    peak, limit = action.peak_memory, action.limits.get("memory")
    if peak is None:
        return "-"
    text = format_bytes(peak)
    if limit:
        text += f" / {format_bytes(int(limit))} ({100 * peak / limit:.0f}%)"
    return text


def cpu_use(action: StoredAction) -> str:
    """Average cores used over the attempt against the limit: "0.95 / 1"."""
    duration, limit = action.duration, action.limits.get("cpu")
    if action.cpu_seconds is None or not duration:
        return "-"
    text = f"{action.cpu_seconds / duration:.2f}"
    return text + (f" / {format_cpu(limit)}" if limit else "")


def seconds(value: float | None) -> str:
    """A duration for people: 0.25s, 12.3s, 2m05s, 1h02m."""
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.2f}s"
    if value < 60:
        return f"{value:.1f}s"
    minutes, secs = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def when(epoch: float) -> str:
    """Local date and time to the second."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _tree(actions: Sequence[StoredAction]) -> Iterator[tuple[str, StoredAction]]:
    """Attempts depth-first from the root, each with its tree-drawing prefix."""
    attempts: dict[str, list[StoredAction]] = {}
    for action in actions:
        attempts.setdefault(action.id, []).append(action)
    children: dict[str | None, list[str]] = {}
    for action_id, tries in attempts.items():
        children.setdefault(tries[0].parent, []).append(action_id)

    def walk(action_id: str, lead: str, branch: str) -> Iterator[tuple[str, StoredAction]]:
        for attempt in attempts[action_id]:
            yield lead + branch, attempt
        kids = children.get(action_id, [])
        below = lead + ("│  " if branch == "├─ " else "   " if branch else "")
        for i, kid in enumerate(kids):
            yield from walk(kid, below, "└─ " if i == len(kids) - 1 else "├─ ")

    roots = [a for a in attempts if attempts[a][0].parent is None or attempts[a][0].parent not in attempts]
    for root in roots:
        yield from walk(root, "", "")


def _counts(counts: Counter[str]) -> str:
    total = sum(counts.values())
    if not total:
        return "0"
    return f"{total}: " + ", ".join(f"{n} {phase}" for phase, n in counts.most_common())


def short(value: Any, width: int = 100) -> str:
    """A JSON value on one line, cut to `width` characters."""
    text = json.dumps(value)
    return text if len(text) <= width else text[: width - 3] + "..."
