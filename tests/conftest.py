"""Shared test helpers: run the CLI in-process against config files written to a temp folder."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from flyte_decl import _alias
from flyte_decl.cli.main import _run, cli


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requires_root(reason): skip unless run as root, saying what needs root (.ci/unprivileged)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `requires_root("...")` skip, with that reason, when run as an ordinary user."""
    if os.geteuid() == 0:
        return
    for item in items:
        marker = item.get_closest_marker("requires_root")
        if marker is not None:
            reason = marker.args[0] if marker.args else "needs root"
            item.add_marker(pytest.mark.skip(reason=f"needs root: {reason}"))


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """write(text, name="environments.yaml") -> path of the dedented file in tmp_path."""

    def _write(text: str, name: str = "environments.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return _write


@pytest.fixture(autouse=True)
def _flyte_is_flyte_again() -> Iterator[None]:
    """A test that ran a Flyte program in this process (`run prog.py`, `flyte.run`) made `import flyte`
    mean flyte_decl; the next test gets the real package back."""
    yield
    _alias.uninstall()


@pytest.fixture
def flyte_decl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """flyte_decl("validate", "--strict") runs the CLI in tmp_path and returns its exit code and output."""

    def _invoke(*args: str) -> CliResult:
        old = Path.cwd()
        os.chdir(tmp_path)
        try:
            code = _run(cli.main, list(args))
        finally:
            os.chdir(old)
            _alias.uninstall()  # `run prog.py` made `flyte` mean flyte_decl for that command only
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return _invoke
