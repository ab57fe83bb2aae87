"""`run TASK --dry-run` checks and prints the plan without starting a process; `run` alone lists tasks."""

from __future__ import annotations

import json

import psutil
import pytest

CONFIG = """
version: 1
capacity: {cpu: 1, memory: 1Gi}
queues:
  spot: {concurrency: 1}
environments:
  wf:
    resources: {cpu: 500m, memory: 256Mi}
    tasks:
      main: {fn: "flow:main", timeout: 30s}
      big: {fn: "flow:big", resources: {memory: 2Gi}}
      wide: {fn: "flow:vault", resources: {cpu: 2}, queue: spot}
"""

GOOD = """
version: 1
environments:
  wf:
    resources: {cpu: {request: 250m, limit: 1}, memory: 256Mi}
    tasks:
      main: {fn: "flow:main", timeout: 30s, retries: 2}
      vault: {fn: "flow:vault", secrets: [DRY_TOKEN]}
"""


@pytest.fixture
def project(write, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DRY_TOKEN", "dry-token-value")
    write(
        "def main(n: int = 1):\n    raise SystemExit('never run')\n\ndef big(): pass\n\ndef vault(): pass\n",
        "flow.py",
    )
    return write


def test_dry_run_prints_every_task_with_its_limits_and_mechanisms(
    project, flyte_decl, tmp_path, monkeypatch
) -> None:
    project(GOOD)
    monkeypatch.setenv("FLYTE_DECL_NO_CGROUPS", "1")
    result = flyte_decl("run", "main", "--n", "3", "--dry-run")
    assert (result.code, result.err) == (0, "")
    lines = result.out.splitlines()
    assert lines[0].startswith("plan for wf.main (dry run: nothing started); capacity cpu ")
    assert lines[2] == "wf.main = flow:main (queue default, retries 2)"
    assert lines[3].split() == ["cpu", "250m", "request,", "1", "limit", "quota-throttle"]
    assert lines[4].split() == ["memory", "256Mi", "watchdog"]
    assert lines[5].split()[:3] == ["timeout", "30s", "runner"]
    assert lines[7] == "wf.vault = flow:vault (queue default, retries 0, secret DRY_TOKEN)"
    assert "mechanisms on this machine:" in lines
    assert not (tmp_path / ".flyte-decl").exists()  # nothing recorded, no log folder
    assert psutil.Process().children() == []


def test_dry_run_lists_each_problem_and_exits_1(project, flyte_decl) -> None:
    project(CONFIG)
    result = flyte_decl("run", "main", "--dry-run")
    assert result.code == 1
    assert result.err.splitlines() == [
        "environments.yaml:10:7: error: wf.big: requests memory 2Gi but the capacity is memory 1Gi; "
        "lower the task's memory request or raise capacity.memory",
        "environments.yaml:11:7: error: wf.wide: requests cpu 2 but the capacity is cpu 1; "
        "lower the task's cpu request or raise capacity.cpu",
    ]
    assert result.out.startswith("plan for wf.main")

    data = json.loads(flyte_decl("run", "main", "--dry-run", "--json").out)
    assert [t["task"] for t in data["tasks"]] == ["wf.main", "wf.big", "wf.wide"]
    assert data["tasks"][1]["limits"]["memory"]["value"] == "2Gi" and data["tasks"][2]["queue"] == "spot"
    assert {p["path"] for p in data["problems"]} == {"wf.big", "wf.wide"}


def test_dry_run_makes_the_checks_of_a_real_run_first(project, flyte_decl, monkeypatch) -> None:
    project(GOOD)
    monkeypatch.delenv("DRY_TOKEN")
    missing = flyte_decl("run", "main", "--dry-run")
    assert (missing.code, missing.out) == (2, "")
    assert "error: environments.wf.tasks.vault.secrets[0]: secret 'DRY_TOKEN' is not set" in missing.err
    project(GOOD.replace("flow:vault", "nomodule:vault"))
    monkeypatch.setenv("DRY_TOKEN", "dry-token-value")
    unbound = flyte_decl("run", "main", "--dry-run")
    assert (unbound.code, unbound.out) == (1, "")
    assert "cannot import module 'nomodule'" in unbound.err


def test_dry_run_checks_the_task_parameters_too(project, flyte_decl) -> None:
    project(GOOD)
    result = flyte_decl("run", "main", "--n", "ten", "--dry-run")
    assert result.code == 2
    assert result.err.startswith("error: --n: input should be a valid integer")


def test_run_without_a_task_lists_the_runnable_tasks(project, flyte_decl) -> None:
    project(GOOD)
    result = flyte_decl("run")
    assert result.code == 2
    assert result.err == "run needs a task: flyte-decl run TASK [--PARAM VALUE]...; the tasks here:\n"
    assert result.out.splitlines() == [
        "TASK      FN          ENVIRONMENT",
        "wf.main   flow:main   wf",
        "wf.vault  flow:vault  wf",
    ]


def test_run_without_a_task_or_a_config_says_how_to_name_one(flyte_decl) -> None:
    result = flyte_decl("run")
    assert (result.code, result.err) == (
        2,
        "error: run needs a task: flyte-decl run TASK [--PARAM VALUE]... (see 'flyte-decl run --help')\n",
    )
