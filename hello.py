"""The hello example: plain Python functions, bound to environments in environments.yaml."""

import asyncio


async def square(i: int = 3) -> int:
    return i * i


async def say_hello(data: str = "hello") -> str:
    return f"{data} world"


async def hello_wf(data: str = "hello", n: int = 10) -> list[int]:
    """Greets, then squares 0..n-1, each square in its own process in env2."""
    print(await say_hello(data))
    return await asyncio.gather(*(square(i) for i in range(n)))
