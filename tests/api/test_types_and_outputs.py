"""`flyte.types` (a program registering a TypeTransformer loads and runs; values still travel pickled)
and several outputs (a NamedTuple) in `run --json` as Flyte's outputs o0..oN."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import pytest

from flyte_decl import _alias
from flyte_decl.runtime.records import Phase, RunResult
from flyte_decl.types import TypeEngine, TypeTransformer, TypeTransformerFailedError

PROGRAM = """
import flyte
from flyte.types import TypeEngine, TypeTransformer

env = flyte.TaskEnvironment(name="typed")


class Coord:
    def __init__(self, x: float, y: float) -> None:
        self.x, self.y = x, y


class CoordTransformer(TypeTransformer[Coord]):
    def __init__(self):
        super().__init__("Coord", Coord)

    async def to_literal(self, python_val, python_type, expected):
        raise NotImplementedError


TypeEngine.register(CoordTransformer())


@env.task
async def shift(c: Coord) -> Coord:
    return Coord(c.x + 1, c.y + 1)


@env.task
async def main() -> str:
    c = await shift(Coord(1.0, 2.0))
    return f"{TypeEngine.get_transformer(Coord).name} ({c.x}, {c.y})"
"""


class _Base:
    pass


class _Derived(_Base):
    pass


def test_the_registry_keeps_one_transformer_per_type_and_searches_the_mro() -> None:
    registry = dict(TypeEngine._REGISTRY)
    try:
        base = TypeTransformer("Base", _Base)
        TypeEngine.register(base)
        assert TypeEngine.get_transformer(_Derived) is base
        with pytest.raises(
            ValueError, match=r"^Transformer Base for type .*_Base'> is already registered\. "
        ):
            TypeEngine.register(TypeTransformer("Other", _Base))
        with pytest.raises(ValueError, match=r"no type transformer is registered for <class 'int'>"):
            TypeEngine.get_transformer(int)
        with pytest.raises(TypeTransformerFailedError, match="Expected value of type"):
            base.assert_type(_Base, 3)
        assert (base.name, base.python_type, base.type_assertions_enabled) == ("Base", _Base, True)
    finally:
        TypeEngine._REGISTRY.clear()
        TypeEngine._REGISTRY.update(registry)


def test_an_unmodified_program_that_registers_a_transformer_runs(tmp_path: Path) -> None:
    (tmp_path / "typed.py").write_text(textwrap.dedent(PROGRAM).lstrip())
    env = {k: v for k, v in os.environ.items() if k != _alias.ENV_AS_FLYTE}
    result = subprocess.run([sys.executable, "-m", "flyte_decl", "run", "typed.py", "main"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120,
                            env={**env, "FLYTE_DECL_HOME": str(tmp_path / "home")})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == '"Coord (2.0, 3.0)"\n'


class _Point(typing.NamedTuple):
    x: int
    label: str


@dataclasses.dataclass
class _Box:
    size: int


class _Outputs(typing.NamedTuple):
    box: _Box
    note: str


@pytest.mark.parametrize(
    ("outputs", "shown"),
    [
        (_Point(1, "a"), [1, "a"]),
        (
            _Outputs(_Box(3), "n"),
            "(_Box(size=3), 'n')",
        ),  # Flyte's o0, o1: the tuple of them, not _Outputs(...)
        ((1, "a"), [1, "a"]),
        (_Box(3), "_Box(size=3)"),
    ],
)
def test_run_json_shows_several_outputs_as_the_tuple_of_them(outputs: object, shown: object) -> None:
    result = RunResult("r1", Phase.SUCCEEDED, outputs, None, [], Path("/logs"))
    assert json.loads(json.dumps(result.to_json()))["outputs"] == shown
