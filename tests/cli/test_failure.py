"""The failing line up front: a failed run ends with the failing action's own error and user frames."""

from __future__ import annotations

import json
import textwrap

DEEP_CONFIG = """
version: 1
environments:
  deep:
    resources: {cpu: 1, memory: 256Mi}
    tasks:
      top: {fn: "deep:top"}
      middle: {fn: "deep:middle"}
      leaf: {fn: "deep:leaf", retries: 1}
      slow: {fn: "deep:slow", timeout: 200ms}
"""

DEEP_MODULE = """
import asyncio
import time


def check(i):
    if i == 2:
        raise KeyError(f"no item {i}")
    return i


async def leaf(i: int) -> int:
    print(f"leaf {i} starts", flush=True)
    return check(i)


async def middle(i: int) -> int:
    return await leaf(i)


async def top(n: int = 3) -> list:
    return list(await asyncio.gather(*(middle(i) for i in range(n))))


def slow() -> None:
    time.sleep(5)
"""


def _deep(ws) -> None:
    ws.touch("environments.yaml", textwrap.dedent(DEEP_CONFIG).lstrip())
    ws.touch("deep.py", textwrap.dedent(DEEP_MODULE).lstrip())


def test_a_failed_run_ends_with_the_grandchilds_own_error_and_frames(ws) -> None:
    _deep(ws)
    result = ws.cli("run", "top")
    assert result.code == 1
    tail = result.err.rstrip("\n").split("\n")
    start = next(i for i, line in enumerate(tail) if line.startswith("error: "))
    assert tail[start - 1].startswith("run r1 failed in ")
    assert tail[start] == "error: deep.leaf[2] (a7) failed: user_error, attempt 2: KeyError: 'no item 2'"
    frames = [line for line in tail[start + 1 :] if line.startswith("  File ")]
    assert [line.split(", in ")[1] for line in frames] == ["leaf", "check"]
    assert all(str(ws.root / "deep.py") in line for line in frames)
    assert tail[-1] == "KeyError: 'no item 2'"
    assert "flyte_decl" not in "\n".join(tail[start:])


def test_runs_show_and_logs_show_the_traceback(ws) -> None:
    _deep(ws)
    ws.cli("run", "top")
    shown = ws.cli("runs", "show", "r1").out
    failures = shown[shown.index("failures:") :]
    assert (
        "  a7 deep.leaf[2] attempt 2: user_error: KeyError: 'no item 2'\n    Traceback (most recent call last):"
        in failures
    )
    assert failures.rstrip().endswith("    KeyError: 'no item 2'")
    assert "flyte_decl" not in failures  # parents that failed because a child did repeat no traceback

    logs = ws.cli("logs", "r1", "a7")
    assert logs.code == 0 and logs.err == ""
    assert logs.out.split("\n")[:3] == [
        "--- a7 deep.leaf[2] attempt 1 ---",
        "leaf 2 starts",
        "Traceback (most recent call last):",
    ]
    assert logs.out.count("KeyError: 'no item 2'") == 2

    everything = ws.cli("logs", "r1").out.splitlines()
    assert "deep.leaf[2]#2 | KeyError: 'no item 2'" in everything
    assert not any(line.startswith("deep.top[0] | Traceback") for line in everything)

    data = json.loads(ws.cli("runs", "show", "r1", "--format", "json").out)
    leaf = [a for a in data["actions"] if a["id"] == "a7"]
    assert leaf[-1]["traceback"].endswith("KeyError: 'no item 2'\n")


def test_a_failure_without_a_traceback_ends_the_console_too(ws) -> None:
    _deep(ws)
    result = ws.cli("run", "slow")
    assert result.code == 1
    last = result.err.rstrip("\n").split("\n")[-1]
    assert last.startswith("error: deep.slow[0] (a1) failed: timed_out: ")
