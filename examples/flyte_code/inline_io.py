"""A call-site override of max_inline_io_bytes: foo declares 100 MiB, the call allows 1 byte."""

import flyte_decl as flyte

env = flyte.TaskEnvironment(name="io")


@env.task(max_inline_io_bytes=100 * 1024 * 1024)
async def foo() -> str:
    return "more than one byte"


@env.task
async def main() -> str:
    return await foo.with_overrides(max_inline_io_bytes=1)()


if __name__ == "__main__":
    try:
        flyte.run(main)
    except flyte.errors.InlineIOMaxBytesBreached as failed:  # raised as Flyte raises it; the Run rides along
        run = failed.run
        foo_call = next(a for a in run.actions if a.task == "io.foo")
        print(run.status, foo_call.phase.value, foo_call.kind.value if foo_call.kind else "", foo_call.message)
