"""Is every task's `fn` bound? Checked two ways, both reported at the `fn:` value's file:line:col.

- `check_sources` reads the modules' source files and never runs them: a missing module attribute
  (a typo in `fn`), a class, a builtin or a standard-library function, an instance method or a
  generator is found without importing anything the user wrote (what `validate` does). What the
  source alone cannot tell (a module not found from here, a compiled one, names made at run time)
  is listed as not checked.
- `check_imports` imports every module, running its top-level code, and checks the objects
  themselves (`flyte_decl.binding`): what `validate --check-imports` and `run` do.

    problems, unchecked = check_sources(resolved)
    problems = check_imports(resolved)
"""

from __future__ import annotations

import ast
import builtins
import importlib
import importlib.machinery
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flyte_decl.binding import (
    Binding,
    Unbindable,
    a_partial,
    bind,
    bound_method,
    callable_object,
    check_bindable,
    is_flyte_decl,
    is_standard_library,
    not_callable,
)
from flyte_decl.config.read import dotted
from flyte_decl.config.resolve import Resolved, ResolvedTask
from flyte_decl.problems import Mark, Problem, did_you_mean
from flyte_decl.spec import split_fn


def import_function(fn: str, root_dir: Path) -> Any:
    """The object a dotted path names, importing its module with `root_dir` first on sys.path."""
    module_name, attr_path = split_fn(fn)
    root = str(root_dir)
    if root not in sys.path:
        sys.path.insert(0, root)
    target: Any = importlib.import_module(module_name)
    for part in attr_path.split("."):
        target = getattr(target, part)
    return target


def fn_location(resolved: Resolved, task: ResolvedTask) -> tuple[Mark, str]:
    """Where a task's `fn` is written (the decorator's line for a task declared in code), and its path."""
    path = ("environments", task.environment, "tasks", task.task, "fn")
    mark = resolved.document.marks.get(path) or task.mark or resolved.document.mark(path)
    return mark, dotted(path)


def bind_all(resolved: Resolved, *, include_code: bool = True) -> tuple[dict[str, Binding], list[Problem]]:
    """Import every task's function (running its module) and check it can be bound; by full task name.

    `include_code=False` leaves out tasks declared in code (`@env.task`), whose functions exist.
    """
    bindings: dict[str, Binding] = {}
    problems = []
    for task in resolved.tasks.values():
        if not include_code and _declared_in_code(resolved, task):
            continue
        try:
            bindings[task.name] = bind(task.fn, resolved.document.root_dir)
        except Unbindable as exc:
            mark, path = fn_location(resolved, task)
            problems.append(Problem(mark, path, exc.message, exc.hint))
    return bindings, problems


def _declared_in_code(resolved: Resolved, task: ResolvedTask) -> bool:
    return ("environments", task.environment, "tasks", task.task, "fn") not in resolved.document.marks


def check_imports(resolved: Resolved) -> list[Problem]:
    """`validate --check-imports`: the problems `bind_all` finds."""
    return bind_all(resolved)[1]


# -- without importing --------------------------------------------------------------------------------


class _Unchecked(Exception):
    """The source cannot tell: the reason, for the one-line note."""


def check_sources(resolved: Resolved) -> tuple[list[Problem], list[str]]:
    """Check every `fn` against its module's source without running any of it.

    Returns the problems and, for what could not be checked this way, one "fn (reason)" each.
    """
    problems: list[Problem] = []
    unchecked: list[str] = []
    modules: dict[str, _Module | Exception] = {}
    for task in resolved.tasks.values():
        if _declared_in_code(resolved, task):
            continue  # @env.task: bound by construction
        mark, path = fn_location(resolved, task)
        try:
            _check_source(task.fn, resolved.document.root_dir, modules)
        except Unbindable as exc:
            problems.append(Problem(mark, path, exc.message, exc.hint))
        except _Unchecked as exc:
            unchecked.append(f"{task.fn} ({exc})")
    return problems, unchecked


@dataclass
class _Module:
    """What the source of one module says: the names its top level binds, and how."""

    names: dict[str, ast.AST]
    dynamic: bool  # it may make other names at import time (`__getattr__`, `import *`, `global`, ...)


def _check_source(fn: str, root_dir: Path, modules: dict[str, _Module | Exception]) -> None:
    module_name, attr_path = split_fn(fn)
    parts = attr_path.split(".")
    if module_name in sys.builtin_module_names:  # compiled into Python: importing it runs no user code
        bind(fn, root_dir)
        return
    if module_name not in modules:  # once per module, failures included: configs may have many tasks
        try:
            tree = _parse(module_name, root_dir)
            names, dynamic = _top_level(tree.body)
            dynamic = dynamic or any(isinstance(n, ast.Global) for n in ast.walk(tree))
            modules[module_name] = _Module(names, dynamic)
        except (Unbindable, _Unchecked) as exc:
            modules[module_name] = exc
    module = modules[module_name]
    if isinstance(module, Exception):
        raise module
    names = module.names
    node = names.get(parts[0])
    seen: set[int] = set()
    while isinstance(node, ast.Name) and len(parts) == 1 and node.id in names and id(node) not in seen:
        seen.add(id(node))
        node = names[node.id]  # `alias = other`: judge what `other` is
    if node is None:
        if module.dynamic:
            raise _Unchecked(f"{module_name} makes names at import time")
        hint = did_you_mean(parts[0], [n for n in names if not n.startswith("_")])
        raise Unbindable(f"module {module_name!r} has no attribute {parts[0]!r}", hint)
    if isinstance(node, ast.ClassDef) and not node.decorator_list:
        if len(parts) == 1:
            raise Unbindable(
                f"{fn!r} is a class, not a function", "bind a module-level function that uses it"
            )
        if len(parts) == 2:
            _check_method(fn, node, parts[1])
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and len(parts) == 1:
        unknown = [d for d in node.decorator_list if _origin(_callee(d), names) not in _KEEPS_A_FUNCTION]
        if unknown:  # a decorator is a call at import time: what it returns is known only by running it
            raise _Unchecked(
                f"{parts[0]} is what @{ast.unparse(_callee(unknown[0]))} makes of it at import time"
            )
        if not node.decorator_list and _yields(node):
            raise Unbindable(
                f"{fn!r} is a generator function: an action's outputs are one value",
                "return a list instead of yielding",
            )
    elif isinstance(node, ast.Name) and len(parts) == 1 and node.id not in names:
        builtin = getattr(builtins, node.id, None)
        if builtin is not None:  # `count = len`: a module alias of a builtin
            check_bindable(fn, builtin, None, parts[0])
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        origin = _find(node.module, root_dir)
        if node.module in sys.builtin_module_names or (
            isinstance(origin, Path) and is_standard_library(origin)
        ):
            imported = next(a.name for a in node.names if (a.asname or a.name) == parts[0])
            raise Unbindable(
                f"{fn!r} is {node.module}.{imported} from the standard library",
                "wrap it in a module-level function",
            )
    elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Name, ast.Import,
                               ast.ImportFrom, ast.Lambda)):  # fmt: skip
        _check_value(fn, node, names, parts)


# Decorators that give back a function (`run` binds what is under them).
_KEEPS_A_FUNCTION = {"functools.wraps", "functools.lru_cache", "functools.cache", "functools.singledispatch"}


def _callee(decorator: ast.expr) -> ast.expr:
    """`@name` and `@name(...)` alike: the name."""
    return decorator.func if isinstance(decorator, ast.Call) else decorator


# The type of what a literal evaluates to, for "is not callable (it is 'dict')".
_LITERALS = {ast.List: "list", ast.ListComp: "list", ast.Dict: "dict", ast.DictComp: "dict", ast.Set: "set",
             ast.SetComp: "set", ast.Tuple: "tuple", ast.JoinedStr: "str", ast.GeneratorExp: "generator"}  # fmt: skip


def _check_value(fn: str, node: ast.AST, names: dict[str, ast.AST], parts: list[str]) -> None:
    """A name the module assigns from an expression: refused when the source shows what run refuses
    (a literal, a `functools.partial(...)`, an instance or bound method of a plain class of the
    module), else _Unchecked: what a call returns is known only by running it."""
    if len(parts) == 1:
        literal = type(node.value).__name__ if isinstance(node, ast.Constant) else _LITERALS.get(type(node))
        if literal:
            raise not_callable(fn, literal)
        if isinstance(node, ast.Call) and _origin(node.func, names) == "functools.partial":
            raise a_partial(fn)
        instance_of = _plain_class(node, names)
        if instance_of is not None:
            if _binds(instance_of, "__call__"):
                raise callable_object(fn, instance_of.name)
            raise not_callable(fn, instance_of.name)
        if isinstance(node, ast.Attribute):
            owner = _plain_class(node.value, names)
            if owner is not None and _method(owner, node.attr):
                raise bound_method(fn, owner.name)
    if isinstance(node, ast.Call):
        raise _Unchecked(f"{parts[0]} is what {ast.unparse(node.func)}(...) returns at import time")
    raise _Unchecked(f"{parts[0]} is computed at import time")


def _origin(node: ast.expr, names: dict[str, ast.AST]) -> str:
    """The dotted name an expression refers to, through the module's imports ("functools.partial")."""
    text = ast.unparse(node)
    first, _, rest = text.partition(".")
    binding = names.get(first)
    if isinstance(binding, ast.Import):
        alias = next(a for a in binding.names if (a.asname or a.name.split(".")[0]) == first)
        first = alias.name if alias.asname else first
    elif isinstance(binding, ast.ImportFrom) and binding.level == 0:
        alias = next(a for a in binding.names if (a.asname or a.name) == first)
        first = f"{binding.module}.{alias.name}"
    return f"{first}.{rest}" if rest else first


def _plain_class(node: ast.AST, names: dict[str, ast.AST]) -> ast.ClassDef | None:
    """The module's class that the call `node` instantiates, when nothing can make it return other
    than an instance (no bases, decorators, metaclass, `__new__`, or `__wrapped__` for run to follow)."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        return None
    cls = names.get(node.func.id)
    if not isinstance(cls, ast.ClassDef) or cls.bases or cls.keywords or cls.decorator_list:
        return None
    return None if _binds(cls, "__new__") or _binds(cls, "__wrapped__") else cls


def _binds(cls: ast.ClassDef, name: str) -> bool:
    """Whether the class body binds `name` in any way (def, assignment, import, ...)."""
    body_names, dynamic = _top_level(cls.body)
    return dynamic or name in body_names


def _method(cls: ast.ClassDef, name: str) -> bool:
    """Whether the class body defines `name` as a plain (undecorated) method."""
    return any(
        isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
        and stmt.name == name
        and not stmt.decorator_list
        for stmt in cls.body
    )


def _check_method(fn: str, cls: ast.ClassDef, name: str) -> None:
    for stmt in cls.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == name:
            if not stmt.decorator_list:
                raise Unbindable(
                    f"{fn!r} is an instance method: an action has no instance to call it on",
                    "make it a @staticmethod or a module-level function",
                )
            return


def _parse(module_name: str, root_dir: Path) -> ast.Module:
    origin = _find(module_name, root_dir)
    if origin is None:
        raise _Unchecked(f"module {module_name!r} is not importable from here")
    if isinstance(origin, str):
        raise _Unchecked(origin)
    if is_standard_library(origin) or is_flyte_decl(origin):
        owner = "the standard library" if is_standard_library(origin) else "flyte-decl itself"
        raise Unbindable(f"module {module_name!r} is part of {owner}", "wrap it in a module-level function")
    try:
        return ast.parse(origin.read_bytes(), str(origin))
    except (OSError, SyntaxError, ValueError) as exc:
        raise _Unchecked(f"{origin} cannot be parsed: {type(exc).__name__}") from None


def _find(module_name: str, root_dir: Path) -> Path | str | None:
    """The source file of a module, found as an import would (root_dir first) but without importing.

    A string says why there is no source to read; None: not found. Only finding a top-level
    module is left to the import system (editable installs have finders of their own); a package's
    submodules are looked up in its folders, since importing a package runs its `__init__`.
    """
    root = str(root_dir)
    if root not in sys.path:
        sys.path.insert(0, root)
    parts = module_name.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        return None
    for i in range(1, len(parts)):
        if spec is None:
            return None
        search = list(spec.submodule_search_locations or [])
        if not search:
            # A module, not a package: `os.path` is an attribute of `os`. Judge by that module.
            break
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), search)
    if spec is None:
        return None
    if spec.origin in ("built-in", "frozen"):  # compiled into Python or frozen: the standard library
        return Path(f"<frozen {module_name}>")  # as a frozen module's code names its file
    if spec.origin is None or not spec.origin.endswith(".py"):
        return f"{module_name} has no Python source here"
    return Path(spec.origin)


def _top_level(body: list[ast.stmt]) -> tuple[dict[str, ast.AST], bool]:
    """The names a module's top level binds (what binds each), and whether it makes names dynamically."""
    names: dict[str, ast.AST] = {}
    dynamic = False
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[stmt.name] = stmt
            dynamic = dynamic or stmt.name == "__getattr__"
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            value = stmt.value if stmt.value is not None else stmt
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        names[name.id] = value if isinstance(target, ast.Name) else stmt
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            for alias in stmt.names:
                if alias.name == "*":
                    dynamic = True
                else:
                    names[alias.asname or alias.name.split(".")[0]] = stmt
        elif isinstance(stmt, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            for block in ("body", "orelse", "finalbody", "handlers"):
                for inner in getattr(stmt, block, []):
                    sub, more = _top_level(inner.body if isinstance(inner, ast.ExceptHandler) else [inner])
                    names.update(sub)
                    dynamic = dynamic or more
            if isinstance(stmt, ast.For):
                for name in ast.walk(stmt.target):
                    if isinstance(name, ast.Name):
                        names[name.id] = stmt
        if isinstance(stmt, ast.Match) or (isinstance(stmt, (ast.Expr, ast.Assign)) and _calls_dynamic(stmt)):
            dynamic = True
    return names, dynamic


def _calls_dynamic(stmt: ast.stmt) -> bool:
    """`globals()[...] = ...`, `setattr(...)`, `exec(...)`, `sys.modules[...] = ...` at the top level."""
    return any(
        (isinstance(node, ast.Name) and node.id in ("globals", "setattr", "exec", "vars", "locals"))
        or (isinstance(node, ast.Attribute) and node.attr == "modules")
        for node in ast.walk(stmt)
    )


def _yields(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether the function's own body (not a nested function's) yields."""
    stack: list[ast.AST] = list(function.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            return True
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(node))
    return False
