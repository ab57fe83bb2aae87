"""What a task may be bound to: import the function a dotted path names and refuse what cannot work.

Inside every action, each bound function is rerouted so that calling it starts an action in its own
environment, whatever reference the caller holds (see `flyte_decl.runtime.reroute`). Rerouting
changes the function for every caller in that process, so only what the user's own code defines
may be bound:

- Python functions and coroutine functions (`def`, `async def`, a lambda), also behind decorators
  that keep `__wrapped__` (`functools.wraps`, `functools.lru_cache`): the innermost one is bound;
- static methods and class methods, named `module:Class.method` (a class method runs bound to the
  class that declares it);
- tasks declared with `@env.task`.

Refused, each with a hint: built-in functions (and module aliases of them, `count = len`),
functions of the standard library or of flyte-decl itself (the runtime calls them too), classes,
`functools.partial` objects and other callable instances, instance methods and methods bound to an
instance, generator functions (an action's outputs are a value), and what is not callable.

    binding = bind("hello:square", root_dir)      # raises Unbindable with a message and a hint
    binding.function, binding.entry
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
import sysconfig
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flyte_decl._task import TaskTemplate
from flyte_decl.problems import did_you_mean
from flyte_decl.spec import split_fn

_STDLIB_DIRS = tuple(
    str(Path(p).resolve()) + "/"
    for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}
)
_PACKAGE_DIR = str(Path(__file__).resolve().parent) + "/"


class Unbindable(Exception):
    """A dotted path that names nothing a task can be bound to: `message` and `hint` for the user."""

    def __init__(self, message: str, hint: str = "", traceback: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.traceback = traceback  # the user's module raised while importing


@dataclass(frozen=True)
class Binding:
    """A bindable function: `function` is what calls are rerouted from, `entry` what an action calls."""

    fn: str
    function: types.FunctionType  # the innermost Python function (a task's `.func` for @env.task)
    template: TaskTemplate | None = None  # set for tasks declared with @env.task: no rerouting needed
    owner_class: type | None = None  # set for a class method: the class it runs bound to

    @property
    def entry(self) -> Callable[..., Any]:
        if self.owner_class is not None:
            return types.MethodType(self.function, self.owner_class)
        return self.function


def import_module(module_name: str, root_dir: Path) -> types.ModuleType:
    """Import a module with `root_dir` first on sys.path; Unbindable says why it cannot be imported."""
    root = str(root_dir)
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if missing != module_name and not module_name.startswith(missing + "."):
            # The module exists but imports something that does not.
            raise Unbindable(
                f"importing {module_name!r} raised ModuleNotFoundError: {exc}",
                f"run `python -c 'import {module_name}'` to see the traceback",
            ) from exc
        raise Unbindable(
            f"cannot import module {missing!r}",
            f"is {missing.replace('.', '/')}.py in {root_dir} or installed?",
        ) from exc
    except BaseException as exc:  # the user's module raised (or exited) while importing
        if isinstance(exc, KeyboardInterrupt):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise Unbindable(
            f"importing {module_name!r} raised {type(exc).__name__}: {first}".rstrip(": "),
            f"run `python -c 'import {module_name}'` to see the traceback",
            traceback.format_exc(),
        ) from exc


def bind(fn: str, root_dir: Path) -> Binding:
    """Import what `fn` ("module:attr.path") names and check that a task can be bound to it."""
    module_name, attr_path = split_fn(fn)
    module = import_module(module_name, root_dir)
    owner: Any = module
    parts = attr_path.split(".")
    for i, part in enumerate(parts):
        try:
            target = getattr(owner, part)
        except AttributeError:
            where = f"module {module_name!r}" if i == 0 else repr(f"{module_name}:{'.'.join(parts[:i])}")
            hint = did_you_mean(part, _public_callables(owner))
            raise Unbindable(f"{where} has no attribute {part!r}", hint) from None
        if i < len(parts) - 1:
            owner = target
    return check_bindable(fn, target, owner, parts[-1])


def _public_callables(namespace: Any) -> list[str]:
    names = []
    for name in dir(namespace):
        if name.startswith("_"):
            continue
        try:
            value = getattr(namespace, name)
        except Exception:  # a property that raises: not a candidate
            continue
        if callable(value) and not isinstance(value, types.ModuleType):
            names.append(name)
    return names


_WRAP_HINT = "wrap it in a module-level function"


def check_bindable(fn: str, target: Any, owner: Any, attribute: str) -> Binding:
    """The Binding for `target` (found as `attribute` of `owner`), or Unbindable saying why not."""
    if isinstance(target, TaskTemplate):
        return Binding(fn, _innermost(fn, target.func), template=target)
    if not callable(target):
        raise not_callable(fn, type(target).__name__)
    if isinstance(target, type):
        raise Unbindable(f"{fn!r} is a class, not a function", "bind a module-level function that uses it")
    if isinstance(target, functools.partial):
        raise a_partial(fn)
    owner_class = None
    if isinstance(owner, type):
        static = inspect.getattr_static(owner, attribute, None)
        if isinstance(static, classmethod):
            owner_class = owner
            target = target.__func__
        elif isinstance(static, types.FunctionType):
            raise Unbindable(
                f"{fn!r} is an instance method: an action has no instance to call it on",
                "make it a @staticmethod or a module-level function",
            )
    if isinstance(target, types.MethodType):
        raise bound_method(fn, type(target.__self__).__name__)
    return Binding(fn, _innermost(fn, target), owner_class=owner_class)


# What `fn` is instead of a function: one message each, whether the object or its source told.
def not_callable(fn: str, type_name: str) -> Unbindable:
    return Unbindable(f"{fn!r} is not callable (it is {type_name!r})", "bind the task to a function")


def a_partial(fn: str) -> Unbindable:
    return Unbindable(
        f"{fn!r} is a functools.partial, not a function", "bind a module-level function that calls it"
    )


def bound_method(fn: str, class_name: str) -> Unbindable:
    return Unbindable(
        f"{fn!r} is a method bound to a {class_name} instance", "bind a module-level function that calls it"
    )


def callable_object(fn: str, type_name: str) -> Unbindable:
    return Unbindable(f"{fn!r} is a {type_name} object, not a function", _WRAP_HINT)


def _innermost(fn: str, target: Any) -> types.FunctionType:
    """The Python function under any decorators, checked to be the user's own and to return a value."""
    function = inspect.unwrap(target)
    if isinstance(function, (types.BuiltinFunctionType, types.WrapperDescriptorType, types.MethodWrapperType,
                             types.MethodDescriptorType, types.ClassMethodDescriptorType)):  # fmt: skip
        raise Unbindable(f"{fn!r} is the built-in function {_qualified(function)}", _WRAP_HINT)
    if not isinstance(function, types.FunctionType):
        raise callable_object(fn, type(function).__name__)
    filename = Path(function.__code__.co_filename)
    if is_flyte_decl(filename):
        raise Unbindable(f"{fn!r} is {_qualified(function)} from flyte-decl itself", _WRAP_HINT)
    if is_standard_library(filename):
        raise Unbindable(f"{fn!r} is {_qualified(function)} from the standard library", _WRAP_HINT)
    if inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function):
        raise Unbindable(
            f"{fn!r} is a generator function: an action's outputs are one value",
            "return a list instead of yielding",
        )
    return function


def is_flyte_decl(path: Path) -> bool:
    """Whether a source file is part of flyte-decl itself."""
    return str(path.resolve()).startswith(_PACKAGE_DIR)


def is_standard_library(path: Path) -> bool:
    """Whether a source file is part of Python's standard library (not a package installed beside it)."""
    if str(path).startswith("<frozen "):  # os, posixpath, ... are frozen into Python 3.11+
        return True
    resolved = str(path.resolve())
    return resolved.startswith(_STDLIB_DIRS) and "-packages/" not in resolved


def _qualified(function: Any) -> str:
    module = getattr(function, "__module__", None) or ""
    name = str(
        getattr(function, "__qualname__", None) or getattr(function, "__name__", None) or repr(function)
    )
    return f"{module}.{name}" if module and module != "builtins" else name
