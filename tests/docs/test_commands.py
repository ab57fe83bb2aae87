"""Every command in README.md and docs/*.md works as written from the repository root.

The commands are read from the files themselves, so the test fails when the docs drift: each line of
a ```bash block (in order, in one copy of the repository per file), and each inline `flyte-decl ...`
or `python ...` span that is a whole command (no placeholder such as FILE or OLD). Installing
(`pip install`) is what this test environment already did, and `python -m pytest` is this very run.
A line whose comment says it "needs a cluster" (a Flyte control plane) is not run here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"`((?:flyte-decl|python) [^`]+)`")
PLACEHOLDER = re.compile(r"\b[A-Z]{2,}\b")


def _without_comment(command: str) -> str:
    return command.partition("#")[0].strip()


def commands(doc: Path) -> list[str]:
    """The doc's commands, in order; `pip install ... &&` prefixes and the test command dropped."""
    text = doc.read_text()
    found: list[str] = []
    for block in BLOCK.findall(text):
        for line in block.splitlines():
            parts = [p.strip() for p in line.split("&&")]
            if "needs a cluster" in line:
                continue
            kept = [p for p in parts if p and not p.startswith(("pip install", "python -m pytest"))]
            command = " && ".join(kept)
            if kept and _without_comment(command) not in {
                _without_comment(c) for c in found
            }:  # a repeated command runs once
                found.append(command)
    for span in INLINE.findall(text):
        words = span.split()
        whole = len(words) > 2 or words[-1].endswith(".py")
        if whole and not PLACEHOLDER.search(span) and not any(span in c for c in found):
            found.append(span)
    return found


def test_the_docs_have_commands():
    assert len(commands(ROOT / "README.md")) >= 10
    assert "flyte-decl run examples/flyte_code/hello.py main --n 5" in commands(ROOT / "README.md")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_command_works_as_written(doc, tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns(
        ".git", ".venv", "__pycache__", "*.egg-info", ".flyte-decl", ".mypy_cache", ".ruff_cache", ".pytest_cache"
    ))  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYTE_DECL")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # this install's commands
    for command in commands(doc):
        done = subprocess.run(
            ["bash", "-c", command], cwd=repo, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, (
            f"{doc.name}: `{command}` exited {done.returncode}:\n{done.stdout}{done.stderr}"
        )
