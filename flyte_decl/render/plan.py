"""The `run --dry-run` plan as text: one block per task, its limits and what enforces each.

print(render_plan(plan))
"""

from __future__ import annotations

from flyte_decl.plan import Plan
from flyte_decl.render.history import table


def render_plan(plan: Plan) -> str:
    """The plan for people, the root task first; problems are printed by the caller as error lines."""
    rows = [["", limit.name, limit.value, limit.mechanism] for task in plan.tasks for limit in task.limits]
    header, *body = table(["", "LIMIT", "VALUE", "ENFORCED BY"], rows).split("\n")
    lines = [f"plan for {plan.root} (dry run: nothing started); capacity {plan.capacity}", header]
    for task in plan.tasks:
        extra = [f"queue {task.queue}", f"retries {task.retries}", *(f"secret {s}" for s in task.secrets)]
        lines.append(f"{task.name} = {task.fn} ({', '.join(extra)})")
        lines += body[: len(task.limits)]
        body = body[len(task.limits) :]
    lines += ["mechanisms on this machine:", *(f"  {name}: {text}" for name, text in plan.mechanisms.items())]
    return "\n".join(lines)
