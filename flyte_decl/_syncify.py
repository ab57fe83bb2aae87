"""`SyncAio`: a sync function with an awaitable `.aio` twin, the shape of Flyte's `@syncify` functions.

init = SyncAio(_init)
init(endpoint=...)              # sync
await init.aio(endpoint=...)    # from async code
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class SyncAio:
    """Call `func` directly, or `await .aio(...)` (which calls it on the caller's loop thread)."""

    def __init__(self, func: Callable[..., Any], doc: str | None = None) -> None:
        self._func = func
        self.__name__ = getattr(func, "__name__", "function")
        self.__doc__ = doc or func.__doc__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._func(*args, **kwargs)

    async def aio(self, *args: Any, **kwargs: Any) -> Any:
        return self._func(*args, **kwargs)
