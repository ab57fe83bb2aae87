"""Export and adoption tests use the real `flyte` package, offline: its own task serializer (the one
`flyte deploy` calls) with a local serialization context, never a control plane."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import flyte_decl._task_environment as te

pytest.importorskip("flyte", reason="the export tests need: pip install -e '.[flyte]'")


@pytest.fixture(autouse=True)
def isolated_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test imports its own copies of the task modules and declares environments afresh."""
    monkeypatch.setattr(te, "ENVIRONMENTS", {})
    monkeypatch.setattr(sys, "path", list(sys.path))
    names = ("hello", "flyte_envs", "prog", "tasks", "trainwf", "inline_io")
    for name in names:
        sys.modules.pop(name, None)
    yield
    for name in names:
        sys.modules.pop(name, None)


@pytest.fixture
def project(tmp_path: Path) -> Callable[..., Path]:
    """project({"environments.yaml": text, "tasks.py": text}) writes the files and returns the folder."""

    def _project(files: dict[str, str]) -> Path:
        for name, text in files.items():
            (tmp_path / name).write_text(text)
        return tmp_path

    return _project
