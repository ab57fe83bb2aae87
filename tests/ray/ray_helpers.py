"""Helpers the Ray tests share."""

from __future__ import annotations

import os
from pathlib import Path


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks after boot), or None if it is gone."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[19])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def alive(pid: int, started: int | None = None) -> bool:
    """Whether `pid` is a running process (not gone, not a zombie); with `started` (its `start_time`),
    the same process, not a later one given the same pid (pids wrap quickly on a busy machine)."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state != "Z" and (started is None or start_time(pid) == started)
