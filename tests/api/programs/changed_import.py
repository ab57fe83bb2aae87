"""A Flyte 2 program with only the import changed, run as `python changed_import.py MODE`."""

import enum
import sys
import typing
from dataclasses import dataclass

import flyte_decl as flyte

env = flyte.TaskEnvironment(name="changed")


class Color(enum.Enum):
    RED = "r"


@dataclass
class Point:
    x: int
    y: int


class Pair(typing.NamedTuple):
    a: int
    b: str


@env.task
async def add(p: Point, c: Color) -> Point:
    return Point(p.x + p.y, len(c.value))


@env.task
async def pair() -> Pair:
    return Pair(3, "x")


@env.task
async def boom() -> int:
    raise ValueError("boom")


@env.task
async def context() -> dict:
    return flyte.ctx().custom_context


if __name__ == "__main__":
    flyte.init_from_config()
    mode = sys.argv[1]
    if mode == "types":
        run = flyte.run(add, Point(1, 2), Color.RED)
        print(run.status, run.outputs, run.outputs().o0)
    elif mode == "outputs":
        out = flyte.run(pair).outputs()
        print(repr(out), out[0], out.o1, out.named_outputs)
    elif mode == "context":
        print(flyte.with_runcontext("local", custom_context={"trace_id": "t1"}).run(context).outputs())
    elif mode == "fail":
        flyte.run(boom)
        print("not reached")
