"""`gpu: A100:1` on Ray: placed only on a node whose accelerator is an A100, else `unschedulable` at once.

The cluster's `gpu` node declares one GPU and the label and resource Ray gives a node with an A100.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flyte_decl.backends.ray import RayCluster
from flyte_decl.backends.ray.accelerator import accelerator_selector
from flyte_decl.runtime.records import FailureKind, Phase, RunResult
from flyte_decl.runtime.runner import LocalRunner
from flyte_decl.spec import RunConfig, TaskSpec

TASKS = """
import os

def where() -> str:
    return os.environ["FLYTE_DECL_NODE"]
"""


def run(root: Path, backend: RayCluster, **fields: Any) -> RunResult:
    (root / "tasks.py").write_text(TASKS)
    spec = TaskSpec(name="env.train", environment="env", task="train", fn="tasks.where", root_dir=root,
                    cpu_request=0.5, **fields)  # fmt: skip
    runner = LocalRunner(RunConfig({spec.name: spec}, {}), log_dir=root / "logs", backend=backend.backend)
    return runner.run(spec.name, {})


def test_a_gpu_type_runs_only_on_a_node_with_that_accelerator(
    tmp_path: Path, ray_backend: RayCluster, ray_cluster: Any
):
    for spelling in ("A100", "a100"):  # as Flyte or a user writes it; Ray's label is "A100"
        result = run(tmp_path, ray_backend, gpu=1, accelerator=spelling)
        assert result.status == Phase.SUCCEEDED, result.error
        assert result.outputs == result.actions[0].node == ray_cluster.nodes["gpu"]


def test_a_gpu_type_no_live_node_has_is_unschedulable_at_once_naming_the_types_that_exist(
    tmp_path: Path, ray_backend: RayCluster
):
    started = time.monotonic()
    result = run(tmp_path, ray_backend, gpu=1, accelerator="H100")
    assert time.monotonic() - started < 5
    assert result.status == Phase.FAILED and result.error is not None
    assert result.error.kind == FailureKind.UNSCHEDULABLE
    assert result.error.message == (
        "env.train: no live Ray node has accelerator 'H100' (accelerators: A100; "
        "Ray labels a GPU node ray.io/accelerator-type=TYPE)"
    )


def test_flyte_spellings_select_the_label_as_the_live_nodes_spell_it():
    nodes = [
        {"Labels": {"ray.io/accelerator-type": "A100-80G"}},
        {"Labels": {"ray.io/accelerator-type": "L40S"}},
        {"Labels": {}},
    ]
    assert accelerator_selector("A100 80G", nodes) == {"ray.io/accelerator-type": "A100-80G"}
    assert accelerator_selector("A100_80G", nodes) == {"ray.io/accelerator-type": "A100-80G"}
    assert accelerator_selector("L40s", nodes) == {"ray.io/accelerator-type": "L40S"}
    assert accelerator_selector(None, nodes) == {}
    both = [*nodes, {"Labels": {"ray.io/accelerator-type": "A100_80G"}}]
    assert accelerator_selector("A100 80G", both) == {"ray.io/accelerator-type": "in(A100-80G,A100_80G)"}
