"""`run: {backend: ray, address: ...}` in the config runs on the cluster with no flag, as `--backend ray` does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from test_ray_cli import API_PROGRAM

CONFIG = """\
version: 1
run:
  backend: ray
  address: {address}
defaults:
  resources: {{cpu: 0.5, memory: 256Mi}}
environments:
  wf:
    tasks:
      train: {{fn: "gpu_tasks:where", resources: {{gpu: "A100:1"}}}}
"""

TASKS = """
import os

def where() -> str:
    return os.environ["FLYTE_DECL_NODE"]
"""


def test_the_config_s_run_section_runs_on_ray_and_places_a_gpu_type_on_its_node(
    tmp_path: Path, ray_cluster: Any
):
    (tmp_path / "environments.yaml").write_text(CONFIG.format(address=ray_cluster.address))
    (tmp_path / "gpu_tasks.py").write_text(TASKS)
    result = subprocess.run([sys.executable, "-m", "flyte_decl", "run", "train"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=180, env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ray_cluster.nodes["gpu"]
    header, config = result.stderr.splitlines()[:2]
    assert header.endswith("; on Ray, 4 nodes (run.backend at environments.yaml:3)")
    assert config.endswith(f", backend ray at {ray_cluster.address}")
    shown = subprocess.run([sys.executable, "-m", "flyte_decl", "runs", "show", "r1", "--format", "json"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)  # fmt: skip
    data = json.loads(shown.stdout)
    assert (data["config"]["backend"], data["config"]["address"]) == ("ray", ray_cluster.address)
    assert data["actions"][0]["node"] == ray_cluster.nodes["gpu"]


# The program of test_ray_cli, with no backend argument: the config gives it.
PROGRAM = API_PROGRAM.replace(
    'flyte.with_runcontext(backend="ray", address=os.environ["CLUSTER"]).run', "flyte.run"
)


def test_flyte_run_in_a_program_takes_the_backend_from_the_config(tmp_path: Path, ray_cluster: Any):
    (tmp_path / "environments.yaml").write_text(
        f"version: 1\nrun: {{backend: ray, address: '{ray_cluster.address}'}}\n"
    )
    (tmp_path / "prog.py").write_text(PROGRAM)
    result = subprocess.run([sys.executable, "prog.py"], cwd=tmp_path, capture_output=True, text=True, timeout=180,
                            env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "succeeded True\n"
