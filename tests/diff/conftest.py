"""A temporary git repository whose commits are the config changes a reviewer sees in pull requests."""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

# Tag -> environments.yaml at that commit; each commit is one kind of change.
BASE = """
version: 1
defaults:
  resources: {cpu: 1, memory: 512Mi}
queues:
  spot: {concurrency: 2}
environments:
  env1:
    tasks:
      say_hello: {fn: "hello:say_hello"}
      hello_wf: {fn: "hello:hello_wf"}
  env2:
    extends: env1
    queue: spot
    retries: 3
    timeout: 30s
    tasks:
      square: {fn: "hello:square"}
      cube: {fn: "hello:cube"}
overrides:
  - match: {environment: env2, task: "sq*"}
    set: {resources: {memory: 250Mi}}
"""
MEMORY = BASE.replace("{memory: 250Mi}", "{memory: 1Gi}")
# The same meaning as MEMORY, written differently: order, block style, units, aliases.
REORDER = """
version: 1
environments:
  env2:
    tasks:
      cube:
        fn: hello:cube
      square:
        fn: hello:square
    timeout: 30
    retries: {count: 3}
    task_queue: spot
    extends: env1
  env1:
    tasks:
      hello_wf: {fn: "hello:hello_wf"}
      say_hello: {fn: "hello:say_hello"}
overrides:
  - set:
      resources:
        memory: 1024Mi
    match: {task: "sq*", environment: env2}
queues:
  spot:
    concurrency: 2
defaults:
  resources:
    memory: {request: 512Mi, limit: 0.5Gi}
    cpu: 1000m
"""
RENAME = REORDER.replace("env1", "base")
SECRET = RENAME.replace("    task_queue: spot\n", "    task_queue: spot\n    secrets: [API_TOKEN]\n")
BROKEN = "version: 1\nenvironments:\n  env1:\n    resources: {memery: 1Gi}\n"
COMMITS = {"memory": MEMORY, "reorder": REORDER, "rename": RENAME, "secret": SECRET, "broken": BROKEN}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """git that ignores the user's configuration and never finds a repository above tmp_path."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Reviewer")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "reviewer@example.com")


@pytest.fixture
def repo(tmp_path: Path, isolated_git: None) -> Callable[[str], None]:
    """tmp_path as a git repo with tags empty, base, memory, reorder, rename, secret, broken (in that order).

    Returns `edit(text)`, which writes environments.yaml to the working tree without committing.
    """
    config = tmp_path / "environments.yaml"
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "README.md").write_text("configs\n")
    git(tmp_path, "add", "README.md")
    git(tmp_path, "commit", "-q", "-m", "empty")
    git(tmp_path, "tag", "empty")
    for tag, text in {"base": BASE, **COMMITS}.items():
        config.write_text(textwrap.dedent(text).lstrip("\n"))
        git(tmp_path, "add", "environments.yaml")
        git(tmp_path, "commit", "-q", "-m", tag)
        git(tmp_path, "tag", tag)
    git(tmp_path, "checkout", "-q", "secret", "--", "environments.yaml")  # the working tree: a valid config

    def edit(text: str) -> None:
        config.write_text(textwrap.dedent(text).lstrip("\n"))

    return edit
