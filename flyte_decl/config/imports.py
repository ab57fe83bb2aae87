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
import sysconfig
from pathlib import Path
from typing import Any

from flyte_decl.binding import Binding, Unbindable, bind, check_bindable, is_flyte_decl, is_standard_library
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
    trees: dict[str, Any] = {}
    for task in resolved.tasks.values():
        if _declared_in_code(resolved, task):
            continue  # @env.task: bound by construction
        mark, path = fn_location(resolved, task)
        try:
            _check_source(task.fn, resolved.document.root_dir, trees)
        except Unbindable as exc:
            problems.append(Problem(mark, path, exc.message, exc.hint))
        except _Unchecked as exc:
            unchecked.append(f"{task.fn} ({exc})")
    return problems, unchecked


def _check_source(fn: str, root_dir: Path, trees: dict[str, Any]) -> None:
    module_name, attr_path = split_fn(fn)
    parts = attr_path.split(".")
    if module_name in sys.builtin_module_names:  # compiled into Python: importing it runs no user code
        bind(fn, root_dir)
        return
    if module_name not in trees:
        trees[module_name] = _parse(module_name, root_dir)
    tree = trees[module_name]
    names, dynamic = _top_level(tree.body)
    node = names.get(parts[0])
    if node is None:
        if dynamic or any(isinstance(n, ast.Global) and parts[0] in n.names for n in ast.walk(tree)):
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
    if spec.origin in ("built-in", "frozen"):  # compiled into Python or frozen: the standard library's
        return Path(sysconfig.get_paths()["stdlib"], "os.py")
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
