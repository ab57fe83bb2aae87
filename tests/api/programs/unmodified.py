"""A Flyte 2 program as written for Flyte: `import flyte`, no edit; run with `flyte-decl run`."""

import asyncio
import os
import tempfile

import flyte
import flyte.errors
from flyte._image import Image
from flyte.io import File

image = Image.from_debian_base(python_version=(3, 12)).with_pip_packages("requests")
env = flyte.TaskEnvironment(name="unmodified", image=image, resources=flyte.Resources(memory="100Mi"))
small_io = flyte.TaskEnvironment(name="small-io")


@env.task
async def hog() -> int:
    return len(bytearray(300 * 1024 * 1024))


@env.task
async def bad() -> int:
    raise ValueError("no")


@env.task
async def errors_main() -> str:
    try:
        await hog()
    except flyte.errors.OOMError as oom:
        try:
            await bad()
        except flyte.errors.RuntimeUserError as e:
            return f"{type(oom).__name__} {oom.code}; {type(e).__name__} {e.code}: {e}"
    return "unexpected"


attempts_file = os.path.join(tempfile.gettempdir(), f"flyte-decl-nonrecoverable-{os.getpid()}")


@env.task(retries=2)
async def give_up(marker: str) -> int:
    with open(marker, "a") as fh:
        fh.write("x")
    raise flyte.errors.NonRecoverableError("stop now")


@small_io.task(max_inline_io_bytes=4096)
async def size_of(f: File) -> int:
    async with f.open("rb") as fh:
        return len(bytes(await fh.read()))


@small_io.task(max_inline_io_bytes=4096)
async def file_main() -> int:
    path = os.path.join(tempfile.mkdtemp(), "big.bin")
    with open(path, "wb") as fh:
        fh.write(b"x" * 200_000)
    return await size_of(await File.from_local(path))


@flyte.trace
async def square(x: int) -> int:
    return x * x


@env.task
async def child_context() -> dict:
    c = flyte.ctx()
    return {"action": c.action.name, "custom": flyte.get_custom_context(), "group": c.group_data.name}


@env.task
async def context_main() -> dict:
    c = flyte.ctx()
    with flyte.group("squares"), flyte.custom_context(stage="one"):
        squares = [await square(i) for i in range(4)]
        inner = flyte.ctx().custom_context
        group = flyte.ctx().group_data.name
        child = await child_context()
    traces = [t["name"] for t in flyte.ctx().data["traces"]]
    return {
        "run": c.action.run_name,
        "action": c.action.name,
        "attempt": c.attempt,
        "squares": squares,
        "inner": inner,
        "group": group,
        "child": child,
        "traces": traces,
        "raw": os.path.isabs(c.raw_data_path.path),
    }


@env.task(short_name="shown")
async def named(x: int) -> int:
    return x + 1


async def add_two(x: int) -> int:
    return x + 2


@env.task
async def apply(x: int, fn: object) -> int:
    return await fn(x)


@env.task
async def names_main() -> list:
    return [
        await named(1),
        await named.override(short_name="renamed")(1),
        await apply(1, named),
        await apply(1, add_two),
        await named.forward(5),
    ]


@env.task
async def gather_main(n: int = 3) -> list:
    return list(await asyncio.gather(*(named(i) for i in range(n))))
