"""A caller gets a child's result as soon as it arrives; the child is recorded once its process is gone.

The rule under test (`_Run._answer`): a success that arrives before the runner knows of a breach, the
timeout or an abort is final. What happens to the process after it (here: a stdout whose flush, run
after the result is sent, sleeps and then allocates past the limit or outlives the timeout) is
recorded, but cannot take the result back. A breach or timeout before the result fails the call, as
always.
"""

from __future__ import annotations

import signal
import textwrap
from pathlib import Path
from typing import Any

import pytest

from flyte_decl.runtime import proctree
from flyte_decl.runtime.limits import detect_mechanisms
from flyte_decl.runtime.records import FailureKind, Phase, RunResult
from flyte_decl.runtime.runner import LocalRunner
from flyte_decl.spec import RetryPolicy, RunConfig, TaskSpec

MI = 2**20

TASKS = """
import os
import sys
import time

from flyte_decl.runtime.records import ActionFailed


class SlowExit:
    # Stands in for stdout: the action flushes it after sending its result, before it exits.
    def __init__(self, pause, megabytes):
        self.pause, self.megabytes = pause, megabytes

    def write(self, text):
        return len(text)

    def flush(self):
        time.sleep(self.pause)
        hoard = [b"x" * 2**20 for _ in range(self.megabytes)]
        time.sleep(60 + len(hoard))


def child(pause, megabytes, greedy):
    if greedy:  # past the limit before the result
        hoard = [b"x" * 2**20 for _ in range(megabytes)]
        time.sleep(60 + len(hoard))
    sys.stdout = SlowExit(pause, megabytes)
    return os.getpid()


def state(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def parent(pause, megabytes, greedy=False):
    try:
        pid = child(pause, megabytes, greedy)
    except ActionFailed as failure:
        return failure.kind.value
    return pid, state(pid)
"""


def run(tmp_path: Path, inputs: dict[str, Any], cgroups: bool = True, **limits: Any) -> RunResult:
    (tmp_path / "tasks.py").write_text(textwrap.dedent(TASKS))
    specs = [
        TaskSpec(name="env.parent", environment="env", task="parent", fn="tasks:parent", root_dir=tmp_path),
        TaskSpec(name="env.child", environment="env", task="child", fn="tasks:child", root_dir=tmp_path,
                 retries=RetryPolicy(count=2), **limits),
    ]  # fmt: skip
    config = RunConfig(tasks={spec.name: spec for spec in specs}, queues={})
    mechanisms = detect_mechanisms(allow_cgroups=cgroups)
    return LocalRunner(config, log_dir=tmp_path / "logs", mechanisms=mechanisms).run("env.parent", inputs)


@pytest.mark.parametrize("cgroups", [True, False], ids=["cgroup-if-available", "watchdog"])
def test_a_breach_after_the_result_is_recorded_but_the_call_succeeded(tmp_path: Path, cgroups: bool) -> None:
    result = run(tmp_path, {"pause": 1.0, "megabytes": 400}, cgroups, memory_limit=150 * MI)

    assert result.status == Phase.SUCCEEDED, result.error
    pid, state_when_answered = result.outputs
    assert state_when_answered not in ("gone", "Z")  # answered while the child still ran
    parent, child = result.actions  # one attempt: a success is not retried
    assert (child.phase, child.kind, child.message, child.pid) == (Phase.SUCCEEDED, None, "", pid)
    assert child.signal == signal.SIGKILL  # killed for the breach after its result
    assert child.peak_memory is not None and child.peak_memory > 100 * MI
    assert parent.ended_at is not None and child.ended_at is not None  # the run waited for it
    assert not proctree.wait_gone([pid], timeout=5.0)


def test_a_timeout_after_the_result_is_recorded_but_the_call_succeeded(tmp_path: Path) -> None:
    result = run(tmp_path, {"pause": 0.0, "megabytes": 0}, timeout=1.5)

    assert result.status == Phase.SUCCEEDED, result.error
    pid, state_when_answered = result.outputs
    assert state_when_answered not in ("gone", "Z")
    _, child = result.actions
    assert (child.phase, child.kind, child.signal) == (Phase.SUCCEEDED, None, signal.SIGTERM)
    assert child.started_at is not None and child.ended_at is not None
    assert child.ended_at - child.started_at < 30


def test_a_breach_before_the_result_fails_the_call_and_is_retried(tmp_path: Path) -> None:
    result = run(tmp_path, {"pause": 0.0, "megabytes": 400, "greedy": True}, memory_limit=150 * MI)

    assert result.status == Phase.SUCCEEDED and result.outputs == "oom_killed"
    attempts = [record for record in result.actions if record.parent is not None]
    assert [(r.attempt, r.phase, r.kind) for r in attempts] == [
        (attempt, Phase.FAILED, FailureKind.OOM_KILLED) for attempt in (1, 2, 3)
    ]
