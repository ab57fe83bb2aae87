"""GPU types on Ray: `gpu: A100:1` places an attempt only on a node whose accelerator is an A100.

Ray labels each GPU node with its accelerator type, found from the device (`ray.io/accelerator-type`,
e.g. "A100", "A100-80G", "L40S"; Ray 2.49 and later), and schedules by node labels through a task's
``label_selector``. Flyte spells some types differently ("A100 80G", "A100_80G", "L40s"): they are
matched without regard to case, spaces, '_' or '-'.

    accelerator_selector("A100", ray.nodes())   # {"ray.io/accelerator-type": "A100"}
"""

from __future__ import annotations

from typing import Any

from flyte_decl.spec import TaskSpec

# The node label Ray sets on a GPU node to its accelerator type ("A100").
ACCELERATOR_LABEL = "ray.io/accelerator-type"


def _node_accelerator(node: dict[str, Any]) -> str | None:
    """The accelerator type Ray found on a node (its `ray.io/accelerator-type` label), if any."""
    return node.get("Labels", {}).get(ACCELERATOR_LABEL)


def _same_accelerator(declared: str, found: str) -> bool:
    """Flyte's and Ray's spellings of one type are equal: "A100 80G", "A100_80G", "A100-80G"; "L40s", "L40S"."""

    def canonical(name: str) -> str:
        return name.upper().replace(" ", "-").replace("_", "-")

    return canonical(declared) == canonical(found)


def accelerator_selector(accelerator: str | None, nodes: list[dict[str, Any]]) -> dict[str, str]:
    """Ray's label selector for a task's GPU type: `{"ray.io/accelerator-type": "A100"}` as the live
    nodes spell it (`in(...)` of every spelling found), `{}` when the task names no type."""
    if not accelerator:
        return {}
    found = sorted({a for n in nodes if (a := _node_accelerator(n)) and _same_accelerator(accelerator, a)})
    if len(found) > 1:
        return {ACCELERATOR_LABEL: f"in({','.join(found)})"}
    return {ACCELERATOR_LABEL: found[0] if found else accelerator}


def with_accelerator(
    spec: TaskSpec, nodes: list[dict[str, Any]], where: str
) -> tuple[list[dict[str, Any]], str | None]:
    """Of `nodes`, those whose accelerator is the spec's; with none, why (naming the types that exist)."""
    accelerator = spec.accelerator or ""
    matching = [n for n in nodes if (a := _node_accelerator(n)) and _same_accelerator(accelerator, a)]
    if matching:
        return matching, None
    types = sorted({a for n in nodes if (a := _node_accelerator(n))})
    return [], (
        f"{spec.name}: {where} has accelerator {accelerator!r} (accelerators: "
        f"{', '.join(types) or 'none'}; Ray labels a GPU node {ACCELERATOR_LABEL}=TYPE)"
    )
