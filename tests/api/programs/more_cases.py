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


@env.task(report=True)
async def report_main() -> str:
    import flyte.durable
    import flyte.report

    flyte.report.get_tab("Summary").log("<p>ok</p>")
    flyte.logger.info("into the action log")
    await flyte.durable.sleep.aio(0.01)
    await flyte.report.flush.aio()
    return flyte.ctx().raw_data_path.path


@env.task(retries=3)
def resumes(n: int = 6) -> str:
    checkpoint = flyte.ctx().checkpoint
    previous = checkpoint.load_sync()
    start = int(previous.read_bytes()) if previous else 0
    for i in range(start, n):
        if i and i % 2 == 0 and i != start:
            raise RuntimeError(f"fail at {i}")
        checkpoint.save_sync(str(i + 1).encode())
    return f"attempt {flyte.ctx().attempt} resumed at {start}"
