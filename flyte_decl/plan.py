"""`flyte-decl run TASK --dry-run`: everything a run would check before its first process, and nothing more.

The plan resolves the configuration, imports every bound function and checks that each declared
secret is set (done by `prepare_run(check=False)`), checks that each task's requests fit `capacity:`
and that its queue exists, and says for every task which limit applies and which mechanism would enforce it. No
process is started. Like `terraform plan` or `nextflow run -preview`, it only reports.

    plan = plan_run(prepared, detect_mechanisms())
    plan.problems          # [] when the run could start
    plan.tasks[0].limits   # [Limit("memory", "256Mi", "cgroup-v1"), ...]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flyte_decl.problems import Problem
from flyte_decl.quantity import format_bytes, format_cpu, format_seconds
from flyte_decl.runtime.limits import Mechanisms
from flyte_decl.runtime.scheduler import Scheduler, demand_of, machine_capacity
from flyte_decl.session import PreparedRun
from flyte_decl.spec import TaskSpec

# What enforces the limits that do not depend on the machine.
TIMEOUT_MECHANISM = "runner wall clock (SIGTERM to the tree, SIGKILL 1s later)"
QUEUED_MECHANISM = "runner wall clock from queued to started, per attempt"
DEADLINE_MECHANISM = "runner wall clock from first queued, across retries (then as timeout)"
INLINE_IO_MECHANISM = "runner size check of serialized inputs and outputs"
ADMISSION_MECHANISM = "scheduler admission"


@dataclass(frozen=True)
class Limit:
    """One effective limit of a task: `name` (cpu, memory, ...), its value as text, what enforces it."""

    name: str
    value: str
    mechanism: str


@dataclass
class TaskPlan:
    """A task as it would run: where, on which queue, with which limits."""

    name: str
    environment: str
    fn: str
    queue: str
    limits: list[Limit]
    retries: int
    secrets: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.name,
            "environment": self.environment,
            "fn": self.fn,
            "queue": self.queue,
            "retries": self.retries,
            "secrets": list(self.secrets),
            "limits": {
                limit.name: {"value": limit.value, "mechanism": limit.mechanism} for limit in self.limits
            },
        }


@dataclass
class Plan:
    """The root task, every task of the configuration (root first), the mechanisms and the problems."""

    root: str
    tasks: list[TaskPlan]
    mechanisms: dict[str, str]
    capacity: str
    problems: list[Problem] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "capacity": self.capacity,
            "mechanisms": self.mechanisms,
            "tasks": [task.to_json() for task in self.tasks],
            "problems": [problem.as_dict() for problem in self.problems],
        }


def plan_run(prepared: PreparedRun, mechanisms: Mechanisms) -> Plan:
    """Check and describe a prepared run without starting it; problems are listed, never raised."""
    config = prepared.config
    capacity = machine_capacity(config.capacity)
    scheduler: Scheduler[str] = Scheduler(capacity, config.queues)
    names = [prepared.task, *sorted(name for name in config.tasks if name != prepared.task)]
    problems = list(prepared.problems)  # bindings and secrets, checked by prepare_run(check=False)
    tasks = []
    for name in names:
        spec = config.tasks[name]
        where = prepared.resolved.tasks[name].mark or prepared.resolved.document.mark(("environments",))
        reason = scheduler.problem(demand_of(spec, spec.queue))
        if reason is not None:
            problems.append(Problem(where, name, reason.removeprefix(f"{name}: ").removeprefix(f"{name} ")))
        tasks.append(_task_plan(spec, mechanisms))
    problems.sort(key=lambda p: (p.mark.file, p.mark.line, p.mark.col))  # in file order, as validate
    capacity_text = f"cpu {format_cpu(capacity.cpu / 1000)}, memory {format_bytes(capacity.memory)}"
    if capacity.gpu:
        capacity_text += f", gpu {capacity.gpu}"
    return Plan(prepared.task, tasks, mechanisms.describe(), capacity_text, problems)


def _task_plan(spec: TaskSpec, mechanisms: Mechanisms) -> TaskPlan:
    limits = [
        Limit("cpu", _pair(spec.cpu_request, spec.cpu_limit, format_cpu), mechanisms.cpu)
        if spec.cpu_limit is not None
        else Limit("cpu", "unlimited", "-"),
        Limit("memory", _pair(spec.memory_request, spec.memory_limit, format_bytes), mechanisms.memory)
        if spec.memory_limit is not None
        else Limit("memory", "unlimited", "-"),
        Limit("timeout", format_seconds(spec.timeout), TIMEOUT_MECHANISM)
        if spec.timeout
        else Limit("timeout", "none", "-"),
        Limit("max_inline_io_bytes", format_bytes(spec.max_inline_io_bytes), INLINE_IO_MECHANISM),
    ]
    if spec.max_queued_time:
        limits.append(Limit("max_queued_time", format_seconds(spec.max_queued_time), QUEUED_MECHANISM))
    if spec.deadline:
        limits.append(Limit("deadline", format_seconds(spec.deadline), DEADLINE_MECHANISM))
    if spec.gpu:
        limits.append(Limit("gpu", str(spec.gpu), ADMISSION_MECHANISM))
    return TaskPlan(
        spec.name, spec.environment, spec.fn, spec.queue, limits, spec.retries.count, spec.secrets
    )


def _pair(request: Any, limit: Any, fmt: Any) -> str:
    """`1` when request and limit agree, else `500m request, 1 limit`."""
    if request is None or request == limit:
        return str(fmt(limit))
    return f"{fmt(request)} request, {fmt(limit)} limit"
