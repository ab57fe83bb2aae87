"""Run a Flyte program with the CLI in-process, as a fresh `flyte-decl` process would run it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest

from flyte_decl._task_environment import ENVIRONMENTS


@pytest.fixture
def run_program(flyte_decl, write) -> Callable[..., Any]:
    """run_program(text, "run", "--json", "prog.py", "main"): `text` as prog.py in the test's folder, then
    the CLI with those arguments; environments that earlier programs of this process declared are gone."""

    def _run(text: str, *args: str) -> Any:
        write(text, "prog.py")
        sys.modules.pop("prog", None)  # imported afresh
        ENVIRONMENTS.clear()
        return flyte_decl(*args)

    return _run
