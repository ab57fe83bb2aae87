"""Flyte 2 code, unchanged but for the import: runs as `python hello.py` or `flyte-decl run hello.py main`.

square() runs in env2 under cpu=1, memory="250Mi", each call its own process. The queue is set on
env2 in code; environments.yaml beside this file declares the queue and layers over the code.
"""

import asyncio
import os

import flyte_decl as flyte

env1 = flyte.TaskEnvironment(name="env1")
env2 = flyte.TaskEnvironment(
    name="env2",
    resources=flyte.Resources(cpu=1, memory="250Mi"),
    queue="gcp-useast1-1",
    env_vars={"GREETING": "hello"},
)


@env2.task
async def square(i: int = 3) -> int:
    return i * i


@env2.task
async def where() -> dict:
    """Reports the process and environment the task ran in."""
    return {
        "pid": os.getpid(),
        "greeting": os.environ.get("GREETING"),
        "queue_note": os.environ.get("QUEUE_NOTE"),
    }


@env1.task
async def main(n: int = 10) -> list[int]:
    return await asyncio.gather(*(square(i) for i in range(n)))


@env1.task
async def overridden() -> dict:
    """A call-site override: more memory and another queue for this call only, the cpu kept."""
    return await where.override(resources=flyte.Resources(memory="300Mi"), queue="default")()


if __name__ == "__main__":
    run = flyte.with_runcontext(queue="default").run(main, n=5)
    print(run.status, run.outputs)
