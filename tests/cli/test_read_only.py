"""Read-only commands never run the user's code: only `run`, `validate --check-imports` and an explicit
FILE.py target import it, and each command's --help says which it is."""

from __future__ import annotations

import sys

import pytest

MODULE = """
import pathlib

import flyte_decl as flyte

pathlib.Path("side-effect.txt").write_text("imported")
env1 = flyte.TaskEnvironment(name="env1", resources=flyte.Resources(cpu=2))


@env1.task
def square(i: int = 3) -> int:
    return i * i
"""
CONFIG = 'version: 1\nenvironments:\n  env1:\n    tasks:\n      square: {fn: "sidefx:square"}\n'


@pytest.fixture
def project(write, tmp_path):
    write(MODULE, "sidefx.py")
    write(CONFIG)
    write(CONFIG.replace("square}", "square, timeout: 5s}"), "new.yaml")
    yield tmp_path
    sys.modules.pop("sidefx", None)
    while str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


@pytest.mark.parametrize(
    "command",
    [
        ("explain", "square"),
        ("explain", "env1.square", "--format", "json"),
        ("validate",),
        ("list",),
        ("diff", "environments.yaml", "new.yaml"),
    ],
)
def test_read_only_commands_do_not_import_the_code(project, flyte_decl, command):
    result = flyte_decl(*command)
    assert result.code in (0, 1), result.err  # diff exits 1: something changed
    assert not (project / "side-effect.txt").exists()


def test_explain_shows_the_config_files_layers_only(project, flyte_decl):
    result = flyte_decl("explain", "square")
    assert result.code == 0
    assert "resources.cpu" not in result.out  # the code's cpu=2 is not layered without importing
    assert not (project / "side-effect.txt").exists()


def test_an_explicit_python_file_is_imported(project, flyte_decl):
    result = flyte_decl("explain", "sidefx.py", "square")
    assert result.code == 0, result.err
    assert (project / "side-effect.txt").exists()
    assert "resources.cpu.limit" in result.out and "2" in result.out


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("explain", "Reads the config files only: no code of yours runs."),
        ("list", "Reads the config files only: no code of yours runs."),
        ("diff", "Reads the config files only: no code of yours runs."),
        ("validate", "no code of yours runs unless --check-imports is given."),
        ("run", "every task's module is imported (running its"),
        (
            "export flyte",
            "Export imports every bound module and each PROGRAM.py (running their top-level code)",
        ),
    ],
)
def test_help_says_whether_code_runs(flyte_decl, command, says):
    result = flyte_decl(*command.split(), "--help")
    assert result.code == 0
    assert says in " ".join(result.out.split())
