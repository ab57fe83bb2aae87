"""The local runner on real processes: tiny task modules in tmp_path, TaskSpecs built by hand."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from flyte_decl.runtime import proctree
from flyte_decl.runtime.limits import Mechanisms, detect_mechanisms
from flyte_decl.runtime.records import ActionEvent, ActionRecord, FailureKind, Phase, RunResult
from flyte_decl.runtime.runner import LocalRunner
from flyte_decl.spec import Capacity, OnOOM, QueueSpec, RetryPolicy, RunConfig, TaskSpec

MI = 2**20

# Helpers the task modules share: where a memory limit is in force, seen from inside the action.
PROBES = """
import os, resource

def memory_limit_in_force():
    for line in open("/proc/self/cgroup"):
        hierarchy, controllers, path = line.rstrip("\\n").split(":", 2)
        if "memory" in controllers.split(","):
            limit = f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"
            if os.path.exists(limit) and path.rsplit("/", 1)[-1].startswith("flyte-decl-"):
                return ("cgroup", int(open(limit).read()))
        if hierarchy == "0" and not controllers:
            limit = f"/sys/fs/cgroup{path}/memory.max"
            if os.path.exists(limit) and path.rsplit("/", 1)[-1].startswith("flyte-decl-"):
                return ("cgroup", int(open(limit).read()))
    return ("rlimit_data", resource.getrlimit(resource.RLIMIT_DATA)[0])
"""


@dataclass
class Workspace:
    """A folder of task modules and the TaskSpecs bound to them."""

    root: Path
    tasks: dict[str, TaskSpec] = field(default_factory=dict)
    events: list[ActionEvent] = field(default_factory=list)

    def module(self, name: str, source: str) -> None:
        (self.root / f"{name}.py").write_text(PROBES + textwrap.dedent(source))

    def task(self, name: str, fn: str, **fields: Any) -> TaskSpec:
        environment, task = name.split(".")
        spec = TaskSpec(name=name, environment=environment, task=task, fn=fn, root_dir=self.root, **fields)
        self.tasks[name] = spec
        return spec

    def runner(
        self,
        *,
        queues: dict[str, QueueSpec] | None = None,
        capacity: Capacity | None = None,
        mechanisms: Mechanisms | None = None,
    ) -> LocalRunner:
        config = RunConfig(tasks=dict(self.tasks), queues=queues or {}, capacity=capacity or Capacity())
        return LocalRunner(
            config, log_dir=self.root / "logs", on_event=self.events.append, mechanisms=mechanisms
        )

    def run(self, task: str, inputs: dict[str, Any] | None = None, **options: Any) -> RunResult:
        run_options = {key: options.pop(key) for key in ("queue", "env") if key in options}
        return self.runner(**options).run(task, inputs or {}, **run_options)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


def children(result: RunResult) -> list[ActionRecord]:
    return [record for record in result.actions if record.parent is not None]


def overlapping(records: list[ActionRecord]) -> bool:
    spans = sorted((r.started_at or 0.0, r.ended_at or 0.0) for r in records)
    return any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:], strict=False))


def wait_until_gone(pids: list[int], timeout: float = 5.0) -> list[int]:
    return sorted(proctree.wait_gone(pids, timeout))


# -- calling tasks from tasks -----------------------------------------------------------------------


def test_fan_out_runs_every_call_as_an_action_of_its_own(ws: Workspace) -> None:
    ws.module(
        "tasks",
        """
        import asyncio

        async def square(i):
            return {"value": i * i, "pid": os.getpid(), "sid": os.getsid(0), "limit": memory_limit_in_force()}

        async def fan_out(n):
            results = await asyncio.gather(*(square(i) for i in range(n)))
            return {"results": results, "pid": os.getpid()}
        """,
    )
    ws.task("env1.fan_out", "tasks:fan_out")
    ws.task("env2.square", "tasks:square", cpu_limit=1.0, memory_limit=250 * MI)

    result = ws.run("env1.fan_out", {"n": 10})

    assert result.status == Phase.SUCCEEDED, result.error
    outputs = result.outputs["results"]
    assert [r["value"] for r in outputs] == [i * i for i in range(10)]
    pids = {r["pid"] for r in outputs}
    assert len(pids) == 10 and result.outputs["pid"] not in pids
    assert all(r["sid"] == r["pid"] for r in outputs)  # each its own session and process group
    mechanism, limit = outputs[0]["limit"]
    assert limit == (250 * MI if mechanism == "cgroup" else 250 * MI + 2**30)
    kids = children(result)
    assert [r.parent for r in kids] == ["a1"] * 10
    assert sorted(r.label for r in kids) == sorted(f"env2.square[{i}]" for i in range(10))
    assert all(r.phase == Phase.SUCCEEDED and r.limits["memory"] == 250 * MI for r in kids)
    assert all(r.pid in pids and r.exit_code == 0 and r.peak_memory for r in kids), [
        (r.pid in pids, r.exit_code, r.peak_memory) for r in kids
    ]


def test_a_sync_task_calls_a_sync_task(ws: Workspace) -> None:
    ws.module(
        "tasks",
        """
        def double(x):
            return 2 * x, os.getpid()

        def twice(x):
            a, first = double(x)
            b, second = double(a)
            return b, {first, second}, os.getpid()
        """,
    )
    ws.task("env1.twice", "tasks:twice")
    ws.task("env1.double", "tasks:double")

    result = ws.run("env1.twice", {"x": 3})

    assert result.status == Phase.SUCCEEDED, result.error
    value, child_pids, parent_pid = result.outputs
    assert value == 12 and len(child_pids) == 2 and parent_pid not in child_pids
    assert [r.task for r in result.actions] == ["env1.twice", "env1.double", "env1.double"]


def test_a_failed_child_raises_action_failed_in_its_parent(ws: Workspace) -> None:
    ws.module(
        "tasks",
        """
        from flyte_decl.runtime.records import ActionFailed

        def broken():
            raise KeyError("nope")

        def careful():
            try:
                broken()
            except ActionFailed as failure:
                return failure.kind.value, failure.message
        """,
    )
    ws.task("env1.careful", "tasks:careful")
    ws.task("env1.broken", "tasks:broken")

    result = ws.run("env1.careful")

    assert result.status == Phase.SUCCEEDED
    assert result.outputs == ("user_error", "KeyError: 'nope'")


# -- failures ---------------------------------------------------------------------------------------

GREEDY = """
def greedy(megabytes):
    hoard = []
    for _ in range(megabytes):
        hoard.append(b"x" * 2**20)
    return len(hoard)
"""


@pytest.mark.parametrize("cgroups", [True, False], ids=["cgroup-if-available", "watchdog"])
def test_allocating_past_the_memory_limit_fails_oom_killed(ws: Workspace, cgroups: bool) -> None:
    ws.module("tasks", GREEDY)
    ws.task("env1.greedy", "tasks:greedy", memory_limit=250 * MI)

    result = ws.run("env1.greedy", {"megabytes": 1024}, mechanisms=detect_mechanisms(allow_cgroups=cgroups))

    assert result.status == Phase.FAILED
    assert result.error is not None and result.error.kind == FailureKind.OOM_KILLED
    assert "memory limit 250Mi exceeded" in result.error.message
    record = result.actions[0]
    assert record.peak_memory is not None and 200 * MI < record.peak_memory < 400 * MI


def test_an_oom_killed_attempt_is_retried_with_more_memory(ws: Workspace) -> None:
    ws.module("tasks", GREEDY)
    on_oom = OnOOM(factor=2.0, max=512 * MI)
    ws.task("env1.greedy", "tasks:greedy", memory_limit=100 * MI, retries=RetryPolicy(count=2, on_oom=on_oom))

    result = ws.run("env1.greedy", {"megabytes": 150})

    assert result.status == Phase.SUCCEEDED and result.outputs == 150
    first, second = result.actions
    assert (first.id, first.attempt, first.kind) == ("a1", 1, FailureKind.OOM_KILLED)
    assert (second.id, second.attempt, second.phase) == ("a1", 2, Phase.SUCCEEDED)
    assert (first.limits["memory"], second.limits["memory"]) == (100 * MI, 200 * MI)


def test_a_task_past_its_timeout_fails_timed_out(ws: Workspace) -> None:
    ws.module("tasks", "import time\ndef nap():\n    time.sleep(1)\n")
    ws.task("env1.nap", "tasks:nap", timeout=0.2)

    result = ws.run("env1.nap")

    record = result.actions[0]
    assert result.status == Phase.TIMED_OUT and record.kind == FailureKind.TIMED_OUT
    assert record.message == "env1.nap ran longer than its timeout of 200ms"
    assert record.started_at and record.ended_at and record.ended_at - record.started_at < 0.8
    assert record.signal == signal.SIGTERM


def test_a_parent_past_its_timeout_takes_its_running_children_down(ws: Workspace) -> None:
    ws.module(
        "tasks",
        """
        import asyncio

        async def slow(i):
            await asyncio.sleep(30)

        async def parent(n):
            await asyncio.gather(*(slow(i) for i in range(n)))
        """,
    )
    ws.task("env1.parent", "tasks:parent", timeout=0.5)
    ws.task("env1.slow", "tasks:slow")

    result = ws.run("env1.parent", {"n": 3})

    assert result.status == Phase.TIMED_OUT
    kids = children(result)
    assert [(r.phase, r.message) for r in kids] == [(Phase.ABORTED, "its parent a1 ended")] * 3
    assert wait_until_gone([r.pid for r in result.actions if r.pid]) == []


def test_outputs_over_max_inline_io_bytes_fail(ws: Workspace) -> None:
    ws.module("tasks", "def big():\n    return 'x' * 2048\n")
    ws.task("env1.big", "tasks:big", max_inline_io_bytes=1024)

    result = ws.run("env1.big")

    assert result.error is not None and result.error.kind == FailureKind.INLINE_IO_EXCEEDED
    assert result.error.message == "env1.big outputs are 2.0Ki, over max_inline_io_bytes 1Ki"


def test_inputs_over_max_inline_io_bytes_fail_before_launch(ws: Workspace) -> None:
    ws.module("tasks", "def echo(text):\n    return text\n")
    ws.task("env1.echo", "tasks:echo", max_inline_io_bytes=1024)

    result = ws.run("env1.echo", {"text": "y" * 4096})

    assert result.error is not None and result.error.kind == FailureKind.INLINE_IO_EXCEEDED
    assert result.error.message.startswith("env1.echo inputs are 4.0Ki, over max_inline_io_bytes 1Ki")
    assert result.actions[0].pid is None


def test_a_raising_task_fails_user_error_with_its_traceback(ws: Workspace) -> None:
    ws.module(
        "tasks",
        """
        def check(value):
            if value < 0:
                raise ValueError(f"negative: {value}")

        def validate(value):
            check(value)
        """,
    )
    ws.task("env1.validate", "tasks:validate")

    result = ws.run("env1.validate", {"value": -1})

    assert result.error is not None and result.error.kind == FailureKind.USER_ERROR
    assert result.error.message == "ValueError: negative: -1"
    trace = result.error.traceback
    assert trace.startswith("Traceback (most recent call last):")
    assert "in validate\n    check(value)" in trace and 'raise ValueError(f"negative: {value}")' in trace
    assert "flyte_decl" not in trace


def test_a_task_killed_by_a_signal_fails_crashed(ws: Workspace) -> None:
    ws.module("tasks", "import signal\ndef die():\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    ws.task("env1.die", "tasks:die")

    result = ws.run("env1.die")

    assert result.error is not None and result.error.kind == FailureKind.CRASHED
    assert result.error.message.startswith("env1.die was killed by SIGKILL; see ")


def test_a_missing_module_fails_import_error(ws: Workspace) -> None:
    ws.task("env1.ghost", "nowhere:ghost")

    result = ws.run("env1.ghost")

    assert result.error is not None and result.error.kind == FailureKind.IMPORT_ERROR
    assert result.error.message.startswith("env1.ghost: cannot import module 'nowhere'")


def test_a_request_that_can_never_fit_fails_unschedulable_at_once(ws: Workspace) -> None:
    ws.module("tasks", "def work():\n    return 1\n")
    ws.task("env1.work", "tasks:work", cpu_request=4.0, cpu_limit=4.0)

    started = time.monotonic()
    result = ws.run("env1.work", capacity=Capacity(cpu=2.0))

    assert time.monotonic() - started < 1.0
    assert result.error is not None and result.error.kind == FailureKind.UNSCHEDULABLE
    assert result.error.message == (
        "env1.work requests cpu 4 but the capacity is cpu 2; lower the task's cpu request or raise capacity.cpu"
    )


# -- scheduling ---------------------------------------------------------------------------------------


def test_a_parent_waiting_on_children_lends_them_its_reservation(ws: Workspace) -> None:
    ws.module(
        "tasks",
        """
        import asyncio

        async def square(i):
            return i * i

        async def fan_out(n):
            return sum(await asyncio.gather(*(square(i) for i in range(n))))
        """,
    )
    # Capacity for one action at a time: without lending, the children could never start.
    ws.task("env1.fan_out", "tasks:fan_out", cpu_request=1.0, cpu_limit=1.0, timeout=30.0)
    ws.task("env1.square", "tasks:square", cpu_request=1.0, cpu_limit=1.0)

    result = ws.run("env1.fan_out", {"n": 10}, capacity=Capacity(cpu=1.0))

    assert result.status == Phase.SUCCEEDED and result.outputs == 285
    assert not overlapping(children(result))


def test_queue_concurrency_one_runs_actions_one_at_a_time(ws: Workspace) -> None:
    ws.module(
        "tasks",
        """
        import asyncio

        async def step(i):
            await asyncio.sleep(0.1)
            return i

        async def steps(n):
            return await asyncio.gather(*(step(i) for i in range(n)))
        """,
    )
    ws.task("env1.steps", "tasks:steps")
    ws.task("env1.step", "tasks:step", queue="serial")

    result = ws.run("env1.steps", {"n": 4}, queues={"serial": QueueSpec("serial", concurrency=1)})

    assert result.status == Phase.SUCCEEDED and result.outputs == [0, 1, 2, 3]
    kids = children(result)
    assert len(kids) == 4 and not overlapping(kids)
    assert {r.queue for r in kids} == {"serial"}


def test_the_run_level_queue_applies_to_the_root_only(ws: Workspace) -> None:
    ws.module("tasks", "def leaf():\n    return 1\ndef root():\n    return leaf() + 1\n")
    ws.task("env1.root", "tasks:root")
    ws.task("env1.leaf", "tasks:leaf")

    result = ws.run("env1.root", queue="batch", queues={"batch": QueueSpec("batch", concurrency=1)})

    assert result.outputs == 2
    assert [r.queue for r in result.actions] == ["batch", "default"]


# -- environment ----------------------------------------------------------------------------------------


def test_env_vars_and_run_env_reach_the_action(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_RUNNER", "inherited")
    ws.module(
        "tasks",
        """
        def show():
            return {name: os.environ.get(name) for name in ("FROM_RUNNER", "LOG_LEVEL", "SHARED")}, os.getcwd()
        """,
    )
    ws.task("env1.show", "tasks:show", env_vars={"LOG_LEVEL": "debug", "SHARED": "task"})

    result = ws.run("env1.show", env={"SHARED": "run"})

    environment, cwd = result.outputs
    assert environment == {"FROM_RUNNER": "inherited", "LOG_LEVEL": "debug", "SHARED": "run"}
    assert cwd == str(ws.root)


def test_secrets_reach_only_the_tasks_that_declare_them(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_TOKEN", "s3cret-t0ken")
    ws.module(
        "tasks",
        """
        def authed():
            print("token is", os.environ["API_TOKEN"])
            return os.environ["API_TOKEN"] == "s3cret-t0ken"

        def plain():
            return os.environ.get("API_TOKEN"), authed()
        """,
    )
    ws.task("env1.plain", "tasks:plain")
    ws.task("env1.authed", "tasks:authed", secrets=("API_TOKEN",))

    result = ws.run("env1.plain")

    assert result.outputs == (None, True)
    child = children(result)[0]
    assert child.log_path is not None and child.log_path.read_text() == "token is ****\n"
    lines = [event.line for event in ws.events if event.line is not None]
    assert lines == ["token is ****"]


# -- events and logs -------------------------------------------------------------------------------------


def test_events_report_every_phase_and_printed_line(ws: Workspace) -> None:
    ws.module(
        "tasks",
        "import sys\ndef chatty():\n    print('hello')\n    print('oops', file=sys.stderr)\n    return 7\n",
    )
    ws.task("env1.chatty", "tasks:chatty")

    result = ws.run("env1.chatty")

    assert [(e.label, e.phase.value, e.line) for e in ws.events] == [
        ("env1.chatty[0]", "queued", None),
        ("env1.chatty[0]", "running", None),
        ("env1.chatty[0]", "running", "hello"),
        ("env1.chatty[0]", "running", "oops"),
        ("env1.chatty[0]", "succeeded", None),
    ]
    record = result.actions[0]
    assert record.log_path == ws.root / "logs" / "a1.1.log"
    assert record.log_path.read_text() == "hello\noops\n"
    document = json.loads(json.dumps(result.to_json()))
    assert (document["run"], document["status"], document["outputs"]) == (result.run_id, "succeeded", 7)
    assert document["actions"][0]["log_path"] == str(record.log_path)


# -- nothing outlives the run ------------------------------------------------------------------------------

LINGERING = """
import subprocess, sys, time

def linger(pid_file, sleep):
    daemon = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    # A double fork: the middle process exits, the grandchild is re-parented.
    middle = subprocess.run(
        [sys.executable, "-c", "import os, subprocess, sys; "
         "p = subprocess.Popen(['sleep', '60'], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(p.pid)"],
        capture_output=True, text=True, check=True,
    )
    pids = [os.getpid(), daemon.pid, int(middle.stdout), os.getppid()]
    with open(pid_file + ".tmp", "w") as handle:
        handle.write(" ".join(map(str, pids)))
    os.rename(pid_file + ".tmp", pid_file)
    time.sleep(sleep)
    return pids
"""


def test_setsid_and_double_forked_descendants_are_gone_after_the_run(ws: Workspace) -> None:
    ws.module("tasks", LINGERING)
    ws.task("env1.linger", "tasks:linger")

    result = ws.run("env1.linger", {"pid_file": str(ws.root / "pids"), "sleep": 0})

    assert result.status == Phase.SUCCEEDED, result.error
    action, daemon, orphan, forkserver = result.outputs
    assert wait_until_gone([action, daemon, orphan, forkserver]) == []


def test_abort_kills_every_action_tree(ws: Workspace) -> None:
    ws.module("tasks", LINGERING)
    ws.task("env1.linger", "tasks:linger")
    runner = ws.runner()
    pid_file = ws.root / "pids"

    def abort_once_running() -> None:
        while not pid_file.exists():
            time.sleep(0.01)
        runner.abort()

    aborter = threading.Thread(target=abort_once_running)
    aborter.start()
    result = runner.run("env1.linger", {"pid_file": str(pid_file), "sleep": 60})
    aborter.join()

    assert result.status == Phase.ABORTED and result.error is None
    assert result.actions[0].message == "run aborted"
    assert wait_until_gone([int(pid) for pid in pid_file.read_text().split()]) == []


RUNNER_SCRIPT = """
import sys
from pathlib import Path
from flyte_decl.runtime.runner import LocalRunner
from flyte_decl.spec import RunConfig, TaskSpec

root = Path(sys.argv[1])
spec = TaskSpec(name="env1.linger", environment="env1", task="linger", fn="tasks:linger", root_dir=root)
runner = LocalRunner(RunConfig(tasks={spec.name: spec}, queues={}), log_dir=root / "logs")
runner.run(spec.name, {"pid_file": str(root / "pids"), "sleep": 60})
"""


@pytest.fixture
def runner_process(ws: Workspace) -> Iterator[subprocess.Popen[bytes]]:
    ws.module("tasks", LINGERING)
    (ws.root / "run_it.py").write_text(RUNNER_SCRIPT)
    process = subprocess.Popen([sys.executable, str(ws.root / "run_it.py"), str(ws.root)])
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()


def test_sigkill_of_the_runner_leaves_no_action_process(
    ws: Workspace, runner_process: subprocess.Popen[bytes]
) -> None:
    pid_file = ws.root / "pids"
    deadline = time.monotonic() + 30
    while not pid_file.exists():
        assert runner_process.poll() is None, "the runner exited early"
        assert time.monotonic() < deadline, "the action never started"
        time.sleep(0.02)

    os.kill(runner_process.pid, signal.SIGKILL)
    runner_process.wait()

    pids = [int(pid) for pid in pid_file.read_text().split()]  # action, daemon, orphan, fork server
    assert wait_until_gone(pids) == []


# -- code-declared tasks ---------------------------------------------------------------------------------


def test_tasks_declared_with_the_python_api_fan_out(ws: Workspace) -> None:
    ws.module(
        "tasks",
        """
        import asyncio
        import flyte_decl as flyte

        env = flyte.TaskEnvironment(name="env1")

        @env.task
        async def square(i: int) -> int:
            return i * i

        @env.task
        async def main(n: int) -> tuple:
            values = await asyncio.gather(*(square(i) for i in range(n)))
            return values, await square.override(max_inline_io_bytes=1000)(7)
        """,
    )
    ws.task("env1.main", "tasks:main")
    ws.task("env1.square", "tasks:square")

    result = ws.run("env1.main", {"n": 4})

    assert result.status == Phase.SUCCEEDED, result.error
    assert result.outputs == ([0, 1, 4, 9], 49)
    assert [r.task for r in result.actions] == ["env1.main"] + ["env1.square"] * 5
