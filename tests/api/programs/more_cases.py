"""Flyte programs that meet flyte-decl's stricter runtime: code-only queues, sync map in async, enum names."""

import enum

import flyte

env = flyte.TaskEnvironment(name="more")


@env.task(queue="serial-1")
async def step(i: int) -> int:
    return i


@env.task
async def queue_main(n: int = 3) -> list[int]:
    return [r async for r in flyte.map.aio(step, range(n), return_exceptions=False)]


@env.task
async def sync_map_main(n: int = 3) -> list[int]:
    return list(flyte.map(step, range(n)))


class Color(enum.Enum):
    RED = "r"
    GREEN = "g"


@env.task
async def color(c: Color) -> str:
    return c.name
