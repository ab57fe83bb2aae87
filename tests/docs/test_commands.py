"""Every command in README.md and docs/*.md works as written from the repository root.

The commands are read from the files themselves, so the test fails when the docs drift: each line of
a ```bash block (in order, in one copy of the repository per file), and each inline `flyte-decl ...`
or `python ...` span that is a whole command (no placeholder such as FILE or OLD). Installing
(`pip install`) is what this test environment already did, `python -m pytest` is this very run, and
the cgroup v2 VM (`python tests/vm/run.py`) is a step of .ci/run of its own.
A line whose comment says it "needs a cluster" (a Flyte control plane) is not run here.
"""

from __future__ import annotations

import importlib.util
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
EXIT = re.compile(r"#.*\(exit (\d+)\b")
NEEDS_FLYTE = "flyte-decl export flyte"
RUN_BY_CI = ("pip install", "python -m pytest", "python tests/vm/run.py")  # .ci/run runs these itself


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
            kept = [p for p in parts if p and not p.startswith(RUN_BY_CI)]
            command = " && ".join(kept)
            if kept and _without_comment(command) not in {
                _without_comment(c) for c in found
            }:  # a repeated command runs once
                found.append(command)
    for span in INLINE.findall(text):
        words = span.split()
        # `python prog.py` names an example program, not a file of this repository.
        scripts = [w for w in words if w.endswith(".py")]
        whole = (len(words) > 2 or bool(scripts)) and all((doc.parent / w).exists() for w in scripts)
        if (
            whole
            and not span.startswith(RUN_BY_CI)
            and not PLACEHOLDER.search(span)
            and not any(span in c for c in found)
        ):
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
    failures = []
    for command in commands(doc):
        if NEEDS_FLYTE in command and importlib.util.find_spec("flyte") is None:
            continue  # the export tests skip alike: pip install -e '.[flyte]'
        expected = int(EXIT.search(command).group(1)) if EXIT.search(command) else 0
        done = subprocess.run(
            ["bash", "-c", command], cwd=repo, env=env, capture_output=True, text=True, timeout=120
        )
        if done.returncode != expected:
            failures.append(
                f"`{command}` exited {done.returncode}, not {expected}:\n{done.stdout}{done.stderr}"
            )
    assert not failures, f"{doc.name}:\n" + "\n".join(failures)
