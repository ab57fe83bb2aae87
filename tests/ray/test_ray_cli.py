"""`flyte-decl run --backend ray --address ...` as a user runs it: the store, `runs show`, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from ray_helpers import alive, start_time

CONFIG = """
version: 1
defaults:
  resources: {cpu: 0.5, memory: 256Mi}
queues:
  highmem: {concurrency: 2}
environments:
  wf:
    tasks:
      fan: {fn: "prog:fan"}
      piece: {fn: "prog:piece", queue: highmem}
      stuck: {fn: "prog:stuck"}
      hold: {fn: "prog:hold"}
"""

PROGRAM = """
import asyncio, os, time

async def fan(n: int) -> list[int]:
    return list(await asyncio.gather(*(piece(i) for i in range(n))))

async def piece(i: int) -> int:
    print("piece", i)
    return i * 10

async def stuck(n: int) -> None:
    await asyncio.gather(*(hold(i) for i in range(n)))

async def hold(i: int) -> None:
    with open(os.path.join(os.environ["PIDS"], str(os.getpid())), "w"):
        pass
    time.sleep(300)
"""


API_PROGRAM = """
import os
import flyte_decl as flyte

env = flyte.TaskEnvironment(name="api", resources=flyte.Resources(cpu=0.5, memory="128Mi"))

@env.task
async def where() -> str:
    return os.environ["FLYTE_DECL_NODE"]

if __name__ == "__main__":
    run = flyte.with_runcontext(backend="ray", address=os.environ["CLUSTER"]).run(where)
    print(run.status, run.outputs == run.actions[0].node)
"""


def test_with_runcontext_backend_ray_runs_a_program_on_the_cluster(tmp_path: Path, ray_cluster: Any):
    (tmp_path / "prog.py").write_text(API_PROGRAM)
    result = subprocess.run([sys.executable, "prog.py"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=180, env={**os.environ, "CLUSTER": ray_cluster.address})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "succeeded True\n"


def _project(root: Path) -> None:
    (root / "environments.yaml").write_text(CONFIG)
    (root / "prog.py").write_text(textwrap.dedent(PROGRAM))


def _cli(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, **env}
    return subprocess.run([sys.executable, "-m", "flyte_decl", *args], cwd=root, capture_output=True,
                          text=True, timeout=180, env=environ)  # fmt: skip


def test_a_ray_run_is_recorded_and_runs_show_names_each_attempts_node(tmp_path: Path, ray_cluster: Any):
    _project(tmp_path)
    result = _cli(
        tmp_path, "run", "fan", "--n", "3", "--backend", "ray", "--address", ray_cluster.address, "--json"
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["outputs"] == [0, 10, 20]
    shown = json.loads(_cli(tmp_path, "runs", "show", data["run"], "--format", "json").stdout)
    pieces = [action for action in shown["actions"] if action["task"] == "wf.piece"]
    assert len(pieces) == 3 and {action["node"] for action in pieces} == {ray_cluster.nodes["highmem"]}
    assert "; on Ray, 4 nodes\n" in _cli(tmp_path, "run", "fan", "--n", "1", "--backend", "ray",
                                        "--address", ray_cluster.address).stderr  # fmt: skip
    text = _cli(tmp_path, "runs", "show", data["run"]).stdout
    assert "NODE" in text and ray_cluster.nodes["highmem"][:8] in text
    logs = _cli(tmp_path, "logs", data["run"])
    assert "piece 1" in logs.stdout, logs.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_ctrl_c_or_a_killed_driver_leaves_no_action_alive_on_any_node(
    tmp_path: Path, ray_cluster: Any, signum: signal.Signals
):
    _project(tmp_path)
    pids = tmp_path / "pids"
    pids.mkdir()
    # Actions on a node get the node's environment, with the run's variables (-e) on top.
    command = [sys.executable, "-m", "flyte_decl", "run", "stuck", "--n", "3", "--backend", "ray",
               "--address", ray_cluster.address, "-e", f"PIDS={pids}"]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while len(list(pids.iterdir())) < 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    started = {int(path.name): start_time(int(path.name)) for path in pids.iterdir()}
    assert len(started) == 3 and None not in started.values(), process.communicate()
    process.send_signal(signum)
    _out, err = process.communicate(timeout=60)
    # Ctrl-C: the driver kills them itself; SIGKILL: Ray's owner-death handling ends the run's workers,
    # and with each its fork server and every action under it.
    assert process.returncode == (130 if signum == signal.SIGINT else -signal.SIGKILL), err
    deadline = time.monotonic() + (5 if signum == signal.SIGINT else 60)
    while [pid for pid, at in started.items() if alive(pid, at)] and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [pid for pid, at in started.items() if alive(pid, at)]
    assert left == [], {pid: Path(f"/proc/{pid}/stat").read_text() for pid in left}
