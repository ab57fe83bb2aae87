"""`import flyte_decl as flyte` in a program: its other Flyte imports (`import flyte.errors`, `from flyte.io
import File`) give flyte_decl's modules too, even with the real `flyte` package installed, so changing that
one line never runs the program under Flyte's local mode unenforced."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROGRAM = """
import flyte_decl as flyte  # the one changed line
import flyte.errors
from flyte.io import File

env = flyte.TaskEnvironment(name="asflyte", resources=flyte.Resources(memory="100Mi"))


@env.task
async def hog() -> int:
    return len(bytearray(300 * 1024 * 1024))


@env.task
async def main() -> str:
    try:
        await hog()
    except flyte.errors.OOMError as exc:
        return f"{flyte.__name__} {flyte.errors.__name__} {File.__module__} caught {exc.code}"
    return "not limited"


if __name__ == "__main__":
    print(flyte.run(main).outputs()[0])
"""


def test_flyte_submodule_imports_follow_import_flyte_decl_as_flyte(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(PROGRAM)
    done = subprocess.run(
        [sys.executable, "prog.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "flyte_decl flyte_decl.errors flyte_decl.io._file caught OOMKilled"


def test_other_imports_of_flyte_decl_leave_flyte_alone(tmp_path: Path) -> None:
    # Only that statement means Flyte by `flyte`; `import flyte_decl` alone installs nothing.
    (tmp_path / "prog.py").write_text(
        "import flyte_decl\nfrom flyte_decl import _alias\nprint(_alias.installed())\n"
    )
    done = subprocess.run(
        [sys.executable, "prog.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "False\n"
