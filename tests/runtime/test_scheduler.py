"""Admission against capacity and queue concurrency, and lending by blocked parents."""

from __future__ import annotations

from pathlib import Path

from flyte_decl.runtime.scheduler import Demand, Resources, Scheduler, demand_of
from flyte_decl.spec import QueueSpec, TaskSpec

GI = 2**30


def demand(task: str, cpu: float = 0.0, memory: int = 0, queue: str = "default") -> Demand:
    return Demand(task, Resources(round(cpu * 1000), memory, 0), queue)


def test_requests_fall_back_to_limits_then_zero() -> None:
    spec = TaskSpec(name="e.t", environment="e", task="t", fn="m:t", root_dir=Path("."), cpu_limit=1.5)
    assert demand_of(spec, "default") == Demand("e.t", Resources(1500, 0, 0), "default")
    spec = TaskSpec(
        name="e.t", environment="e", task="t", fn="m:t", root_dir=Path("."),
        cpu_request=0.25, cpu_limit=1.0, memory_limit=GI,
    )  # fmt: skip
    assert demand_of(spec, "q") == Demand("e.t", Resources(250, GI, 0), "q")


def test_what_can_never_fit_is_a_problem_with_a_hint() -> None:
    scheduler: Scheduler[str] = Scheduler(Resources(2000, 8 * GI, 0), {"gpu": QueueSpec("gpu", 0)})
    assert scheduler.problem(demand("e.big", memory=16 * GI)) == (
        "e.big requests memory 16Gi but the capacity is memory 8Gi; "
        "lower the task's memory request or raise capacity.memory"
    )
    assert (
        scheduler.problem(Demand("e.g", Resources(0, 0, 1), "default"))
        == "e.g requests 1 gpu but this machine has 0"
    )
    assert (
        scheduler.problem(demand("e.q", queue="nope"))
        == "e.q: queue 'nope' is not declared (known: default, gpu)"
    )
    assert scheduler.problem(demand("e.z", queue="gpu")) == "e.z: queue 'gpu' has concurrency 0"
    assert scheduler.problem(demand("e.ok", cpu=2, memory=8 * GI)) is None


def test_heads_start_in_order_while_they_fit() -> None:
    scheduler: Scheduler[str] = Scheduler(Resources(2000, GI, 0), {})
    for name, cpu in [("a", 1.0), ("b", 1.5), ("c", 0.5)]:
        scheduler.enqueue(name, demand(name, cpu))
    assert scheduler.ready() == ["a"]  # b waits at the head, and c behind it is not let past
    scheduler.done("a")
    assert scheduler.ready() == ["b", "c"]
    assert scheduler.ready() == []


def test_queue_concurrency_caps_running_actions_per_queue() -> None:
    scheduler: Scheduler[str] = Scheduler(Resources(8000, GI, 0), {"one": QueueSpec("one", 1)})
    for name in "abc":
        scheduler.enqueue(name, demand(name, queue="one"))
    scheduler.enqueue("d", demand("d"))
    assert scheduler.ready() == ["a", "d"]
    scheduler.done("a")
    assert scheduler.ready() == ["b"]
    scheduler.done("c")  # withdrawn while waiting
    scheduler.done("b")
    assert scheduler.ready() == []


def test_a_blocked_parent_lends_its_reservation_and_takes_it_back_past_capacity() -> None:
    scheduler: Scheduler[str] = Scheduler(Resources(1000, GI, 0), {"one": QueueSpec("one", 1)})
    scheduler.enqueue("parent", demand("parent", 1.0, queue="one"))
    assert scheduler.ready() == ["parent"]
    scheduler.enqueue("child", demand("child", 1.0, queue="one"))
    assert scheduler.ready() == []
    scheduler.block("parent")
    assert scheduler.ready() == ["child"]
    scheduler.enqueue("other", demand("other", 1.0))
    scheduler.unblock("parent")  # its process runs already: over capacity until someone finishes
    scheduler.done("child")
    assert scheduler.ready() == []
    scheduler.done("parent")
    assert scheduler.ready() == ["other"]
