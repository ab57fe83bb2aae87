"""`@flyte.trace`: a helper function whose calls run inside the calling action, with their timing kept.

As in Flyte 2, a traced function is not a task: it runs in the same process as the task that calls it
(no new action, no limits of its own). Plain, async, generator and async generator functions keep
their kind. Inside an action each finished call is appended to `flyte.ctx().data["traces"]` as
`{"name", "seconds", "ok"}`; outside a run it is the plain call::

    @flyte.trace
    async def fetch(url: str) -> str: ...
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

from flyte_decl import _context

F = TypeVar("F", bound=Callable[..., Any])


def _record(name: str, started: float, ok: bool) -> None:
    current = _context._action
    if current is not None:
        current.data.setdefault("traces", []).append(
            {"name": name, "seconds": time.monotonic() - started, "ok": ok}
        )


def trace(func: F) -> F:
    """Wrap `func` so its calls are timed steps of the calling action; see the module docstring."""
    name = getattr(func, "__qualname__", repr(func))
    wrapper: Any
    if inspect.isasyncgenfunction(func):

        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            started, ok = time.monotonic(), False
            try:
                async for item in func(*args, **kwargs):
                    yield item
                ok = True
            finally:
                _record(name, started, ok)

    elif inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started, ok = time.monotonic(), False
            try:
                result = await func(*args, **kwargs)
                ok = True
                return result
            finally:
                _record(name, started, ok)

    elif inspect.isgeneratorfunction(func):

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            started, ok = time.monotonic(), False
            try:
                yield from func(*args, **kwargs)
                ok = True
            finally:
                _record(name, started, ok)

    else:

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started, ok = time.monotonic(), False
            try:
                result = func(*args, **kwargs)
                ok = True
                return result
            finally:
                _record(name, started, ok)

    wrapper.aio = _aio(wrapper) if not inspect.iscoroutinefunction(func) else wrapper
    return wrapper  # type: ignore[no-any-return]


def _aio(call: Callable[..., Any]) -> Callable[..., Any]:
    async def aio(*args: Any, **kwargs: Any) -> Any:
        return call(*args, **kwargs)

    return aio
