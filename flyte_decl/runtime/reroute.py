"""Reroute every call of a Python function, whatever reference the caller holds.

The fork server replaces the code of each declared function (`function.__code__`) with a proxy's,
so a call through the module attribute, an alias (`f2 = f`), a dict of handlers built at import, a
`functools.partial`, a default argument, a closure or a decorator's registry all reach the proxy:
they hold the same function object. (Replacing module attributes, as `unittest.mock.patch` does,
reaches only the first of those.) The proxy's code takes `*args, **kwargs` and hands them to a
`call(args, kwargs)` that it holds as a constant, so it needs nothing from the function's module.
The original stays runnable as a copy: a new function object with the original code, globals,
defaults and closure.

    copy = reroute(square, lambda args, kwargs: submit("env2.square", args, kwargs))
    square(3)      # -> submit(...); copy(3) runs the original body
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import types
import warnings
from collections.abc import Callable
from typing import Any

_CALL = "__flyte_decl_call__"  # placeholder constant in the template, replaced by the call


@functools.cache
def _template(is_async: bool, n_free: int) -> types.CodeType:
    """Proxy code with `n_free` free variables: code can only replace code with as many (CPython)."""
    free = [f"_free{i}" for i in range(n_free)]
    lines = ["def _outer():", *(f"    {name} = None" for name in free)]
    lines.append(f"    {'async ' if is_async else ''}def proxy(*args, **kwargs):")
    if free:  # referenced, never run: they only make the names free variables
        lines.append(f"        if False: ({', '.join(free)},)")
    lines.append(f"        return {'await ' if is_async else ''}{_CALL!r}(args, kwargs)")
    lines.append("    return proxy")
    namespace: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)  # "'str' object is not callable": it will be
        exec(compile("\n".join(lines), "<flyte-decl proxy>", "exec"), namespace)
    code: types.CodeType = namespace["_outer"]().__code__
    assert len(code.co_freevars) == n_free
    return code


def reroute(
    function: types.FunctionType, call: Callable[[tuple[Any, ...], dict[str, Any]], Any], label: str
) -> types.FunctionType:
    """Make every call of `function` return `call(args, kwargs)` (awaited for a coroutine function).

    Returns a copy that runs the original body. `label` names the proxy in tracebacks. Calling this
    again on the same function only changes where its calls go.
    """
    original = getattr(function, "__flyte_decl_original__", None)
    if original is not None:
        function.__code__ = _proxy_code(original.__code__, call, label)
        return original  # type: ignore[no-any-return]
    copy = types.FunctionType(
        function.__code__,
        function.__globals__,
        function.__name__,
        function.__defaults__,
        function.__closure__,
    )
    copy.__kwdefaults__ = function.__kwdefaults__
    copy.__qualname__ = function.__qualname__
    copy.__module__ = function.__module__
    copy.__doc__ = function.__doc__
    copy.__annotations__ = function.__annotations__
    copy.__dict__.update(function.__dict__)
    with contextlib.suppress(TypeError, ValueError):  # inspect.signature of the proxy: the original's
        function.__signature__ = inspect.signature(copy)  # type: ignore[attr-defined]
    function.__flyte_decl_original__ = copy  # type: ignore[attr-defined]
    function.__code__ = _proxy_code(copy.__code__, call, label)
    return copy


def _proxy_code(code: types.CodeType, call: Callable[..., Any], label: str) -> types.CodeType:
    is_async = bool(code.co_flags & inspect.CO_COROUTINE)
    template = _template(is_async, len(code.co_freevars))
    consts = tuple(call if isinstance(c, str) and c == _CALL else c for c in template.co_consts)
    return template.replace(
        co_consts=consts,
        co_name=code.co_name,
        co_qualname=code.co_qualname,
        co_filename=f"<flyte-decl: calls of {label} become actions>",
    )
