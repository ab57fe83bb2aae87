"""Reusable environments on real processes: warm workers instead of a fork per action.

A task whose spec has `reusable` set runs in up to `replicas` long-lived workers of its
environment, one action at a time each. Module state persists from one action to the next in the
same worker: that is what reuse means, and the counters below show it. Limits, timeouts and the
end of the run still take whole worker trees down.
"""

from __future__ import annotations

import textwrap
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from flyte_decl.runtime import proctree
from flyte_decl.runtime.limits import Mechanisms, detect_mechanisms
from flyte_decl.runtime.records import ActionRecord, FailureKind, Phase, RunResult
from flyte_decl.runtime.runner import LocalRunner
from flyte_decl.spec import Capacity, ReusePolicy, RunConfig, TaskSpec

MI = 2**20

MODULE = """
import asyncio
import os
import time

from flyte_decl.runtime.records import ActionFailed

calls = 0  # module state: one count per worker process, kept across its actions


def bump(i):
    global calls
    calls += 1
    return {"square": i * i, "pid": os.getpid(), "calls": calls}


async def fan_out(n):
    return await asyncio.gather(*(asyncio.to_thread(bump, i) for i in range(n)))


def in_sequence(n):
    return [bump(i) for i in range(n)]


def greedy(megabytes):
    hoard = [b"x" * 2**20 for _ in range(megabytes)]
    return len(hoard)


def nap(seconds):
    time.sleep(seconds)
    return os.getpid()


def failure_then_success(kind):
    outcomes = []
    for step in ("fail", "ok"):
        try:
            if kind == "oom":
                outcomes.append(greedy(1024 if step == "fail" else 10))
            else:
                outcomes.append(nap(5 if step == "fail" else 0))
        except ActionFailed as failure:
            outcomes.append(failure.kind.value)
    return outcomes


def nested(n):
    # Runs in the only worker and calls its own task: the calls cannot wait for that worker.
    return [bump(i)["square"] for i in range(n)]


def nested_twice(n):
    return [nested(n), nested(n)]


def sleeper(pid_file, seconds):
    # A grandchild in a session of its own: the worker's tree, not just the worker, must go.
    child = os.fork()
    if child == 0:
        os.setsid()
        time.sleep(seconds)
        os._exit(0)
    with open(pid_file, "w") as handle:
        handle.write(f"{os.getpid()} {child}")
    time.sleep(seconds)


def mixed():
    return [bump(0)["pid"], nap(0), bump(1)["pid"]]


def idle_then_again(pause):
    first = nap(0)
    time.sleep(pause)
    alive = os.path.exists(f"/proc/{first}")
    return first, alive, nap(0)
"""


class Workspace:
    """The task module in a temp folder and the TaskSpecs bound to it (as in test_runner.py)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tasks: dict[str, TaskSpec] = {}
        (root / "tasks.py").write_text(textwrap.dedent(MODULE))

    def task(self, name: str, fn: str, **fields: Any) -> TaskSpec:
        environment, task = name.split(".")
        spec = TaskSpec(name=name, environment=environment, task=task, fn=fn, root_dir=self.root, **fields)
        self.tasks[name] = spec
        return spec

    def runner(self, mechanisms: Mechanisms | None = None) -> LocalRunner:
        config = RunConfig(tasks=dict(self.tasks), queues={}, capacity=Capacity())
        return LocalRunner(config, log_dir=self.root / "logs", mechanisms=mechanisms)

    def run(self, task: str, inputs: dict[str, Any], mechanisms: Mechanisms | None = None) -> RunResult:
        return self.runner(mechanisms).run(task, inputs)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


def records_of(result: RunResult, task: str) -> list[ActionRecord]:
    return [record for record in result.actions if record.task == task]


def test_fanned_out_calls_share_at_most_replicas_workers(ws: Workspace) -> None:
    ws.task("env1.fan_out", "tasks:fan_out")
    ws.task("env2.bump", "tasks:bump", reusable=ReusePolicy(replicas=2), memory_limit=250 * MI)

    result = ws.run("env1.fan_out", {"n": 10})

    assert result.status == Phase.SUCCEEDED
    assert result.outputs is not None
    assert [output["square"] for output in result.outputs] == [i * i for i in range(10)]
    pids = Counter(output["pid"] for output in result.outputs)
    assert 1 <= len(pids) <= 2
    # Each worker counted its own actions: 1..k in the order it ran them.
    for pid, count in pids.items():
        assert sorted(o["calls"] for o in result.outputs if o["pid"] == pid) == list(range(1, count + 1))
    records = records_of(result, "env2.bump")
    assert len(records) == 10 and all(record.phase == Phase.SUCCEEDED for record in records)
    assert {record.pid for record in records} == set(pids)
    assert sorted(proctree.wait_gone(list(pids), 5.0)) == []  # no worker survives the run


def test_sequential_calls_reuse_one_worker_and_its_module_state(ws: Workspace) -> None:
    ws.task("env1.in_sequence", "tasks:in_sequence")
    ws.task("env2.bump", "tasks:bump", reusable=ReusePolicy(replicas=2))

    result = ws.run("env1.in_sequence", {"n": 10})

    assert result.status == Phase.SUCCEEDED
    assert result.outputs is not None
    # One worker was always free again for the next call; its counter kept counting.
    assert len({output["pid"] for output in result.outputs}) == 1
    assert [output["calls"] for output in result.outputs] == list(range(1, 11))
    assert [output["square"] for output in result.outputs] == [i * i for i in range(10)]


@pytest.mark.parametrize(
    ("kind", "fields", "cgroups"),
    [
        ("oom", {"memory_limit": 100 * MI}, True),
        ("oom", {"memory_limit": 100 * MI}, False),
        ("timeout", {"timeout": 0.3}, True),
    ],
    ids=["oom-cgroup-if-available", "oom-watchdog", "timeout"],
)
def test_a_killed_worker_fails_its_action_and_the_next_call_gets_a_new_one(
    ws: Workspace, kind: str, fields: dict[str, Any], cgroups: bool
) -> None:
    ws.task("env1.failure_then_success", "tasks:failure_then_success")
    task = "env2.greedy" if kind == "oom" else "env2.nap"
    ws.task(task, f"tasks:{task.split('.')[1]}", reusable=ReusePolicy(replicas=1), **fields)

    result = ws.run(
        "env1.failure_then_success", {"kind": kind}, mechanisms=detect_mechanisms(allow_cgroups=cgroups)
    )

    assert result.status == Phase.SUCCEEDED
    failed, succeeded = records_of(result, task)
    expected = FailureKind.OOM_KILLED if kind == "oom" else FailureKind.TIMED_OUT
    assert result.outputs is not None and result.outputs[0] == expected.value
    assert failed.kind == expected and succeeded.phase == Phase.SUCCEEDED
    assert failed.pid is not None and succeeded.pid is not None and failed.pid != succeeded.pid
    if kind == "oom":
        assert failed.peak_memory is not None and failed.peak_memory > 90 * MI
    assert sorted(proctree.wait_gone([failed.pid, succeeded.pid], 5.0)) == []


def test_an_idle_worker_exits_after_idle_ttl_while_the_run_goes_on(ws: Workspace) -> None:
    ws.task("env1.idle_then_again", "tasks:idle_then_again")
    ws.task("env2.nap", "tasks:nap", reusable=ReusePolicy(replicas=1, idle_ttl=0.3))

    result = ws.run("env1.idle_then_again", {"pause": 1.0})

    assert result.status == Phase.SUCCEEDED
    assert result.outputs is not None
    first, alive, second = result.outputs
    assert not alive and first != second
    assert [record.pid for record in records_of(result, "env2.nap")] == [first, second]


def test_a_worker_calling_its_own_pool_does_not_wait_for_itself(ws: Workspace) -> None:
    ws.task("env1.nested_twice", "tasks:nested_twice")
    ws.task("env2.nested", "tasks:nested", reusable=ReusePolicy(replicas=1))
    ws.task("env2.bump", "tasks:bump", reusable=ReusePolicy(replicas=1))

    result = ws.run("env1.nested_twice", {"n": 3})

    assert result.status == Phase.SUCCEEDED and result.outputs == [[0, 1, 4], [0, 1, 4]]
    # Both parents ran in the one worker, each with its own channel for the replies to its calls.
    parents = records_of(result, "env2.nested")
    assert len({record.pid for record in parents}) == 1
    # Their calls ran as isolated actions rather than deadlock on the one busy worker.
    calls = records_of(result, "env2.bump")
    assert len(calls) == 6 and parents[0].pid not in {record.pid for record in calls}


def test_different_limits_get_different_workers(ws: Workspace) -> None:
    ws.task("env1.mixed", "tasks:mixed")
    ws.task("env2.bump", "tasks:bump", reusable=ReusePolicy(replicas=2), memory_limit=200 * MI)
    ws.task("env2.nap", "tasks:nap", reusable=ReusePolicy(replicas=2), memory_limit=300 * MI)

    result = ws.run("env1.mixed", {})

    assert result.status == Phase.SUCCEEDED and result.outputs is not None
    first, other, again = result.outputs
    assert first == again != other


def test_abort_kills_a_busy_worker_and_its_descendants(ws: Workspace) -> None:
    ws.task("env1.sleeper", "tasks:sleeper", reusable=ReusePolicy(replicas=1))
    runner = ws.runner()
    pid_file = ws.root / "pids"

    def abort_once_running() -> None:
        while not pid_file.exists() or not pid_file.read_text():
            time.sleep(0.01)
        runner.abort()

    aborter = threading.Thread(target=abort_once_running)
    aborter.start()
    result = runner.run("env1.sleeper", {"pid_file": str(pid_file), "seconds": 60})
    aborter.join()

    assert result.status == Phase.ABORTED
    pids = [int(pid) for pid in pid_file.read_text().split()]
    assert result.actions[0].pid == pids[0]
    assert sorted(proctree.wait_gone(pids, 5.0)) == []
