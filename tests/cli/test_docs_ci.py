"""docs/ci.md can be followed as written; --version and click's shell completion work."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CI_DOC = (ROOT / "docs" / "ci.md").read_text()
BIN = str(Path(sys.executable).parent)


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", CI_DOC, flags=re.S)


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_every_install_names_a_source_that_exists_without_a_release() -> None:
    installs = re.findall(r"pip install (.*)", CI_DOC)
    assert installs and all("git+https://" in line or line.startswith("./") for line in installs), installs
    pre_commit = yaml.safe_load(next(b for b in _blocks("yaml") if "flyte-decl-validate" in b))
    assert (
        pre_commit["repos"][0]["rev"] == "COMMIT_SHA"
    )  # a placeholder the text says how to fill, no made-up tag


def test_the_github_workflow_steps_run_as_written(tmp_path: Path) -> None:
    workflow = yaml.safe_load(next(b for b in _blocks("yaml") if "pull_request:" in b))
    steps = {step.get("name"): step for step in workflow["jobs"]["config"]["steps"]}
    (tmp_path / "environments.yaml").write_text(
        "version: 1\nenvironments:\n  e:\n    resources: {memory: 250Mi}\n    tasks:\n      t: {fn: 'm:t'}\n"
    )
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base", "--allow-empty")
    _git(tmp_path, "add", "environments.yaml")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "config")
    _git(tmp_path, "update-ref", "refs/remotes/origin/main", "HEAD")
    (tmp_path / "environments.yaml").write_text(
        (tmp_path / "environments.yaml").read_text().replace("250Mi", "1Gi")
    )
    summary = tmp_path / "summary.md"
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "GITHUB_BASE_REF": "main",
           "GITHUB_STEP_SUMMARY": str(summary)}  # fmt: skip
    for name in ("Validate", "Effective-config diff"):
        done = subprocess.run(["bash", "-e", "-c", steps[name]["run"]], cwd=tmp_path, env=env,
                              capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0, (name, done.stderr)
    assert "<!-- flyte-decl diff -->" in summary.read_text()
    assert "250Mi" in summary.read_text() and "1Gi" in summary.read_text()


def test_version_and_shell_completion() -> None:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    shown = subprocess.run(["flyte-decl", "--version"], env=env, capture_output=True, text=True)
    assert shown.stdout == f"flyte-decl, version {version('flyte-decl')}\n"
    complete = subprocess.run(
        ["flyte-decl"], capture_output=True, text=True,
        env={**env, "_FLYTE_DECL_COMPLETE": "bash_complete", "COMP_WORDS": "flyte-decl runs pr", "COMP_CWORD": "2"},
    )  # fmt: skip
    assert complete.stdout.split() == ["plain,prune"]
    script = subprocess.run(
        ["flyte-decl"], env={**env, "_FLYTE_DECL_COMPLETE": "bash_source"}, capture_output=True, text=True
    )
    assert "complete -o nosort -F _flyte_decl_completion flyte-decl" in script.stdout
