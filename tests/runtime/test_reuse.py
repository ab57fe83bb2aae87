"""The runner's reuse hook (cache and recover): a hit ends the action `cached` and starts no process.

Real runs: a config and a task module in a temp folder, run by LocalRunner.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from flyte_decl.config.load import load
from flyte_decl.runtime.records import ActionEvent, Phase, ReuseHit
from flyte_decl.runtime.runner import LocalRunner
from flyte_decl.runtime.wire import dump_payload, load_payload
from flyte_decl.spec import RunConfig, TaskSpec

CONFIG = """
version: 1
environments:
  env1:
    tasks:
      main: {fn: "fanout:main"}
      square: {fn: "fanout:square"}
"""
MODULE = """
import asyncio
import os

async def square(i: int) -> int:
    print("square", i, os.getpid())
    return i * i

async def main(n: int = 4) -> list[int]:
    return await asyncio.gather(*(square(i) for i in range(n)))
"""


def _config(tmp_path: Path) -> RunConfig:
    (tmp_path / "fanout.py").write_text(textwrap.dedent(MODULE))
    path = tmp_path / "environments.yaml"
    path.write_text(textwrap.dedent(CONFIG))
    return load([path]).run_config()


def test_a_hit_is_cached_without_a_process_and_its_outputs_reach_the_caller(tmp_path: Path) -> None:
    asked: list[tuple[str, object]] = []

    def reuse(spec: TaskSpec, inputs: bytes) -> ReuseHit | None:
        asked.append((spec.name, load_payload(inputs)))
        if spec.name == "env1.square" and load_payload(inputs) == ((2,), {}):
            return ReuseHit(dump_payload(100), "r7/a3")
        return None

    events: list[ActionEvent] = []
    runner = LocalRunner(_config(tmp_path), log_dir=tmp_path / "logs", on_event=events.append, reuse=reuse)
    result = runner.run("env1.main", {"n": 4})

    assert result.status is Phase.SUCCEEDED
    assert result.outputs == [0, 1, 100, 9]
    assert sorted(name for name, _ in asked) == ["env1.main"] + ["env1.square"] * 4
    cached = [record for record in result.actions if record.phase is Phase.CACHED]
    assert [(record.label, record.pid, record.log_path) for record in cached] == [
        ("env1.square[2]", None, None)
    ]
    assert cached[0].message == "outputs reused from r7/a3"
    assert cached[0].started_at is not None and cached[0].ended_at is not None

    # Events carry what a recorder needs: inputs first, outputs on success, a record copy on phase changes.
    phases = [event for event in events if event.line is None]
    assert all(event.record is not None and event.record.phase is event.phase for event in phases)
    firsts = {event.action: event for event in reversed(phases)}
    assert all(event.inputs is not None for event in firsts.values())
    finals = {event.action: event for event in phases if event.phase.final}
    assert load_payload(finals[cached[0].id].outputs or b"") == 100
    assert load_payload(finals["a1"].outputs or b"") == [0, 1, 100, 9]
    assert all(event.outputs is None for event in phases if not event.phase.final)


def test_a_hit_on_the_root_is_the_whole_run(tmp_path: Path) -> None:
    def reuse(spec: TaskSpec, inputs: bytes) -> ReuseHit | None:
        return ReuseHit(dump_payload([7]), "r1/a1")

    result = LocalRunner(_config(tmp_path), log_dir=tmp_path / "logs", reuse=reuse).run("env1.main", {})

    assert (result.status, result.outputs) == (Phase.SUCCEEDED, [7])
    assert [(record.label, record.phase) for record in result.actions] == [("env1.main[0]", Phase.CACHED)]
    assert not list((tmp_path / "logs").glob("forkserver-*.log"))
