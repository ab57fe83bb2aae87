"""The `flyte-decl-validate` hook, run by pre-commit itself from a committed copy of this repository.

pre-commit installs the hook's own virtualenv (`pip install .` of the copy), so this needs PyPI or a
warm pip cache; it takes a few seconds per run.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("pre_commit")

ROOT = Path(__file__).resolve().parents[2]
VALID = 'version: 1\nenvironments:\n  env1:\n    tasks: {t: {fn: "m:t"}}\n'
INVALID = "version: 1\nenvironments:\n  env1:\n    resources: {memery: 1Gi}\n"
UNMATCHED = VALID + "overrides:\n  - match: {environment: gpu}\n    set: {timeout: 1s}\n"


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def hook_repo(tmp_path: Path, isolated_git: None) -> Path:
    """A committed copy of the files pre-commit needs to install the hook: the package and its manifest."""
    repo = tmp_path / "flyte-decl"
    repo.mkdir()
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy(ROOT / name, repo / name)
    shutil.copytree(
        ROOT / "flyte_decl", repo / "flyte_decl", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "hook")
    return repo


@pytest.fixture
def project(tmp_path: Path, isolated_git: None) -> Path:
    """A user's repository with a valid config at the top and an invalid one in a sub-folder."""
    project = tmp_path / "project"
    (project / "broken").mkdir(parents=True)
    (project / "environments.yaml").write_text(VALID)
    (project / "broken" / "environments.yaml").write_text(INVALID)
    (project / "notes.yaml").write_text("not: a config\n")
    git(project, "init", "-q")
    git(project, "add", ".")
    return project


def try_repo(hook_repo: Path, project: Path, *files: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "try-repo", str(hook_repo), "flyte-decl-validate", "--verbose"]
        + ["--files", *files],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_hook_passes_a_valid_config_and_fails_an_invalid_one(hook_repo, project):
    passed = try_repo(hook_repo, project, "environments.yaml", "notes.yaml")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert re.search(r"^flyte-decl validate\.+Passed$", passed.stdout, re.M)
    assert passed.stdout.count("ok: 1 task in 1 environment") == 1  # notes.yaml is not an environments file

    failed = try_repo(hook_repo, project, "environments.yaml", "broken/environments.yaml")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert re.search(r"^flyte-decl validate\.+Failed$", failed.stdout, re.M)
    lines = failed.stdout.splitlines()
    assert "ok: 1 task in 1 environment" in lines  # each file is validated on its own
    assert (
        "broken/environments.yaml:4:17: error: environments.env1.resources.memery: unknown key "
        "(did you mean 'memory'?)" in lines
    )


def test_hook_options_apply_to_every_file(tmp_path):
    """`args: [--strict]` in a user's config reaches `validate` (checked on the entry, without pre-commit)."""
    (tmp_path / "environments.yaml").write_text(UNMATCHED)
    hook = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())[0]
    entry = shlex.split(hook["entry"])

    # The entry calls `flyte-decl` by name: this installation's, not whichever is first on PATH.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*entry, *args], cwd=tmp_path, capture_output=True, text=True, env=env)

    assert run("environments.yaml").returncode == 0
    strict = run("--strict", "environments.yaml")
    assert strict.returncode == 1
    assert strict.stdout.splitlines()[0].startswith(
        "environments.yaml:6:12: error: overrides[0].match: selector matches no task"
    )
