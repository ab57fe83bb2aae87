"""Flyte's error classes under real enforcement: a parent catches its child's OOMError and retries it bigger.

    flyte-decl run examples/flyte_code/oom_retry.py main          # `import flyte` works unchanged there too
    python examples/flyte_code/oom_retry.py

The child really is killed at its 100Mi limit (Flyte's local mode would not limit it); the parent sees
`flyte.errors.OOMError`, as on a Flyte cluster, and calls it again with more memory. Along the way:
`flyte.group` labels the calls, `flyte.trace` times a helper in the same action, `flyte.ctx()` names
the action, and a `flyte.io.File` travels by reference.
"""

import tempfile

import flyte_decl as flyte
from flyte_decl.io import File

env = flyte.TaskEnvironment(name="oom-retry", resources=flyte.Resources(memory="100Mi"))


@env.task
async def fill(mib: int) -> int:
    """Hold `mib` MiB at once."""
    return len(bytearray(mib * 1024 * 1024)) // (1024 * 1024)


@flyte.trace
async def describe(mib: int, limit: str) -> str:
    return f"held {mib}Mi under {limit}"


@env.task
async def count_bytes(f: File) -> int:
    async with f.open("rb") as fh:
        return len(bytes(await fh.read()))


@env.task
async def main(mib: int = 200) -> dict:
    with flyte.group("fill"):
        try:
            held = await fill(mib)
            limit = "100Mi"
        except flyte.errors.OOMError as oom:
            print(f"{oom.task} was OOM-killed ({oom.code}); retrying with 400Mi")
            held = await fill.override(resources=flyte.Resources(memory="400Mi"))(mib)
            limit = "400Mi"
    note = tempfile.mktemp(suffix=".txt")
    with open(note, "w") as fh:
        fh.write(await describe(held, limit))
    return {"action": flyte.ctx().action.name, "note": await count_bytes(await File.from_local(note)),
            "limit": limit}


if __name__ == "__main__":
    flyte.init_from_config()
    print(flyte.run(main).outputs())
