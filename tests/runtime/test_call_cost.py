"""What an isolated call costs beyond its own work: nothing an action does not need is loaded in it.

Each action is a fork of its environment's warm fork server; a module imported after the fork is
imported again by every action (tens of milliseconds of CPU each for the code-declaration machinery
of `flyte_decl._task_environment`, which a config declared only in YAML never uses).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from flyte_decl.runtime.limits import detect_mechanisms
from flyte_decl.runtime.records import Phase
from flyte_decl.runtime.runner import LocalRunner
from flyte_decl.spec import RunConfig, TaskSpec

TASKS = """
import sys


def declaration_modules() -> list[str]:
    return [name for name in ("flyte_decl._task_environment", "flyte_decl.report") if name in sys.modules]


def parent() -> list[list[str]]:
    return [declaration_modules(), child()]


def child() -> list[str]:
    return declaration_modules()
"""


def test_an_action_of_a_yaml_config_loads_no_code_declaration_machinery(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(textwrap.dedent(TASKS))
    specs = [
        TaskSpec(name="env.parent", environment="env", task="parent", fn="tasks:parent", root_dir=tmp_path),
        TaskSpec(name="env.child", environment="env", task="child", fn="tasks:child", root_dir=tmp_path,
                 memory_limit=256 * 2**20, cpu_limit=1.0),
    ]  # fmt: skip
    runner = LocalRunner(
        RunConfig(tasks={spec.name: spec for spec in specs}, queues={}),
        log_dir=tmp_path / "logs",
        mechanisms=detect_mechanisms(),
    )
    result = runner.run("env.parent", {})
    assert result.status == Phase.SUCCEEDED, result.error
    assert result.outputs == [[], []]  # neither the root action nor the one it called
