"""`--backend ray` on a real four-node Ray cluster (see conftest): placement, limits, results, store."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from ray_helpers import alive

from flyte_decl.backends.ray import RayCluster
from flyte_decl.runtime.records import FailureKind, Phase, RunResult
from flyte_decl.runtime.runner import LocalRunner
from flyte_decl.spec import QueueSpec, RetryPolicy, RunConfig, TaskSpec

MI = 2**20

TASKS = """
import asyncio, os, time

def where() -> str:
    print("running on", os.environ["FLYTE_DECL_NODE"])
    return os.environ["FLYTE_DECL_NODE"]

def hog(mib: int) -> int:
    block = bytearray(mib * 2**20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(5)
    return len(block)

def sleepy(seconds: float) -> None:
    with open(os.environ["PID_FILE"], "w") as out:
        out.write(str(os.getpid()))
    time.sleep(seconds)

def square(i: int) -> int:
    return i * i

async def fan(n: int) -> list[int]:
    return list(await asyncio.gather(*(square_where(i) for i in range(n))))

async def square_where(i: int) -> tuple[int, str]:
    return i * i, os.environ.get("FLYTE_DECL_NODE", "local")

def nest(depth: int) -> int:
    return 0 if depth == 0 else 1 + nest(depth - 1)

def slow_where(i: int) -> str:
    time.sleep(0.3)
    return os.environ["FLYTE_DECL_NODE"]

async def fan_slow(n: int) -> list[str]:
    return list(await asyncio.gather(*(slow_where_async(i) for i in range(n))))

async def slow_where_async(i: int) -> str:
    return slow_where(i)

def flaky(marker: str) -> str:
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt fails")
    return "second attempt"
"""


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "tasks.py").write_text(TASKS)
        self.tasks: dict[str, TaskSpec] = {}
        for name, fields in {
            "where": {"queue": "highmem"},
            "anywhere": {"fn": "where"},
            "hog": {"queue": "highmem", "memory_limit": 100 * MI, "memory_request": 100 * MI},
            "sleepy": {"timeout": 1.0},
            "square": {"cpu_request": 0.5, "cpu_limit": 1.0},
            "fan": {},
            "square_where": {"cpu_request": 1.0, "cpu_limit": 1.0},
            "flaky": {"retries": RetryPolicy(count=1)},
            "nest": {"cpu_request": 1.0, "cpu_limit": 1.0},
            "held": {"fn": "sleepy", "queue": "highmem"},
            "fan_slow": {"cpu_request": 0.1},
            "slow_where_async": {"fn": "slow_where", "queue": "highmem", "cpu_request": 1.0},
            "nowhere": {"fn": "where", "queue": "gpu"},
            "huge": {"fn": "square", "memory_request": 2**40, "memory_limit": 2**40},
        }.items():
            fn = fields.pop("fn", name)
            self.tasks[f"env.{name}"] = TaskSpec(
                name=f"env.{name}", environment="env", task=name, fn=f"tasks.{fn}", root_dir=root, **fields
            )

    def run(self, backend: RayCluster | None, task: str, inputs: dict[str, Any], **env: str) -> RunResult:
        queues = {"highmem": QueueSpec("highmem"), "gpu": QueueSpec("gpu")}
        config = RunConfig(tasks=self.tasks, queues=queues)
        factory = backend.backend if backend is not None else None
        runner = LocalRunner(config, log_dir=self.root / "logs", backend=factory)
        return runner.run(f"env.{task}", inputs, env=env)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def test_a_queue_runs_on_the_node_labelled_for_it(
    project: Project, ray_backend: RayCluster, ray_cluster: Any
):
    result = project.run(ray_backend, "where", {})
    assert result.status == Phase.SUCCEEDED, result.error
    (record,) = result.actions
    assert record.node == result.outputs == ray_cluster.nodes["highmem"]
    assert record.pid is not None and record.peak_memory and record.log_path is not None
    assert record.log_path.read_text() == f"running on {record.node}\n"


def test_a_queue_no_node_serves_and_a_request_no_node_fits_are_unschedulable_at_once(
    project: Project, ray_backend: RayCluster
):
    started = time.monotonic()
    nowhere = project.run(ray_backend, "nowhere", {})
    huge = project.run(ray_backend, "huge", {"i": 2})
    assert time.monotonic() - started < 5
    assert nowhere.status == huge.status == Phase.FAILED
    assert nowhere.error is not None and huge.error is not None
    assert nowhere.error.kind == huge.error.kind == FailureKind.UNSCHEDULABLE
    assert nowhere.error.message == (
        "env.nowhere: no live Ray node serves queue 'gpu' (queues served: default, highmem; "
        "label a node with flyte-decl.queue=gpu)"
    )
    assert huge.error.message.startswith(
        "env.huge requests cpu 0, memory 1Ti, gpu 0, but no live Ray node has that much (nodes: cpu 1 memory "
    )


def test_a_memory_breach_on_a_worker_node_is_oom_killed_and_the_node_lives_on(
    project: Project, ray_backend: RayCluster, ray_cluster: Any
):
    result = project.run(ray_backend, "hog", {"mib": 300})
    assert result.status == Phase.FAILED
    assert result.error is not None and result.error.kind == FailureKind.OOM_KILLED, result.error
    (record,) = result.actions
    assert record.node == ray_cluster.nodes["highmem"]
    assert record.peak_memory is not None and record.peak_memory > 90 * MI
    after = project.run(ray_backend, "where", {})
    assert after.status == Phase.SUCCEEDED and after.outputs == ray_cluster.nodes["highmem"]


def test_a_timeout_kills_the_attempt_on_its_node(project: Project, ray_backend: RayCluster):
    pid_file = project.root / "pid"
    started = time.monotonic()
    result = project.run(ray_backend, "sleepy", {"seconds": 60}, PID_FILE=str(pid_file))
    assert result.status == Phase.TIMED_OUT
    assert result.error is not None and result.error.message == "env.sleepy ran longer than its timeout of 1s"
    assert time.monotonic() - started < 20
    assert not alive(int(pid_file.read_text()))


def test_nested_fan_out_gives_the_outputs_of_the_local_backend(project: Project, ray_backend: RayCluster):
    on_ray = project.run(ray_backend, "fan", {"n": 6})
    local = project.run(None, "fan", {"n": 6})
    assert on_ray.status == local.status == Phase.SUCCEEDED, on_ray.error
    assert [square for square, _node in on_ray.outputs] == [square for square, _node in local.outputs]
    children = [record for record in on_ray.actions if record.task == "env.square_where"]
    assert len(children) == 6 and all(record.parent == on_ray.actions[0].id for record in children)
    assert [node for _square, node in on_ray.outputs] == [record.node for record in children]


def test_a_failed_attempt_is_retried_on_ray(project: Project, ray_backend: RayCluster):
    result = project.run(ray_backend, "flaky", {"marker": str(project.root / "marker")})
    assert result.status == Phase.SUCCEEDED and result.outputs == "second attempt"
    assert [(r.attempt, r.phase) for r in result.actions] == [(1, Phase.FAILED), (2, Phase.SUCCEEDED)]
    assert result.actions[0].kind == FailureKind.USER_ERROR


def test_nesting_deeper_than_the_cluster_has_cpus_runs(
    project: Project, ray_backend: RayCluster, ray_cluster: Any
):
    # Each level requests 1 CPU and waits on the next, 9 levels on a cluster of 5 CPUs: a parent
    # awaiting its calls holds no CPU on its node meanwhile.
    ray = pytest.importorskip("ray")
    cpus = sum(node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"])
    assert cpus < 9
    result = project.run(ray_backend, "nest", {"depth": 8})
    assert result.status == Phase.SUCCEEDED, result.error
    assert result.outputs == 8 and len(result.actions) == 9
    assert {record.node for record in result.actions} <= set(ray_cluster.nodes.values())


def test_attempts_wait_for_room_on_the_nodes_of_their_queue(
    project: Project, ray_backend: RayCluster, ray_cluster: Any
):
    # The cluster has 4 CPUs, the highmem node 1: three 1-CPU attempts of queue highmem run there
    # one after another.
    result = project.run(ray_backend, "fan_slow", {"n": 3})
    assert result.status == Phase.SUCCEEDED, result.error
    assert result.outputs == [ray_cluster.nodes["highmem"]] * 3
    spans = sorted(
        (record.started_at or 0.0, record.ended_at or 0.0)
        for record in result.actions
        if record.task == "env.slow_where_async"
    )
    assert len(spans) == 3
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(spans))


def test_a_node_agent_that_dies_takes_its_attempts_with_it_and_they_fail_crashed(
    project: Project, ray_backend: RayCluster, ray_cluster: Any
):
    cluster = RayCluster(ray_cluster.address)  # agents of its own: this test kills one
    pid_file = project.root / "pid"
    results = []
    try:
        run = threading.Thread(
            target=lambda: results.append(
                project.run(cluster, "held", {"seconds": 60}, PID_FILE=str(pid_file))
            )
        )
        run.start()
        deadline = time.monotonic() + 60
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline and run.is_alive()
            time.sleep(0.1)
        cluster.ray.kill(cluster.agents[ray_cluster.nodes["highmem"]])
        run.join(60)
        after = project.run(cluster, "where", {})  # on a new agent there
    finally:
        cluster.close()
    (result,) = results
    assert result.status == Phase.FAILED
    assert result.error is not None and result.error.kind == FailureKind.CRASHED
    assert result.error.message.startswith("env.held lost its Ray node agent"), result.error.message
    assert after.status == Phase.SUCCEEDED and after.outputs == ray_cluster.nodes["highmem"], after.error
    deadline = time.monotonic() + 10
    while alive(int(pid_file.read_text())) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(int(pid_file.read_text()))
