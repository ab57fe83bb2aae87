"""`validate --check-imports`: import every bound function and report failures at the `fn:` line."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from flyte_decl.config.resolve import Resolved
from flyte_decl.problems import Problem
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


def check_imports(resolved: Resolved) -> list[Problem]:
    problems = []
    doc = resolved.document
    for task in resolved.tasks.values():
        path = ("environments", task.environment, "tasks", task.task, "fn")
        where = doc.mark(path)
        module_name, attr_path = split_fn(task.fn)
        try:
            target = import_function(task.fn, doc.root_dir)
        except ModuleNotFoundError as exc:
            missing = exc.name or module_name
            hint = f"is {missing}.py in {doc.root_dir} or installed?"
            problems.append(Problem(where, f"{task.name}.fn", f"cannot import module {missing!r}", hint))
            continue
        except AttributeError:
            problems.append(
                Problem(
                    where,
                    f"{task.name}.fn",
                    f"module {module_name!r} has no attribute {attr_path!r}",
                    "check the function name after ':'",
                )
            )
            continue
        except Exception as exc:  # the user's module raised while importing
            first = str(exc).splitlines()[0] if str(exc) else ""
            problems.append(
                Problem(
                    where,
                    f"{task.name}.fn",
                    f"importing {module_name!r} raised {type(exc).__name__}: {first}",
                    f"run `python -c 'import {module_name}'` to see the traceback",
                )
            )
            continue
        if not callable(target):
            problems.append(
                Problem(
                    where,
                    f"{task.name}.fn",
                    f"{task.fn!r} is not callable (it is {type(target).__name__!r})",
                    "bind the task to a function",
                )
            )
    return problems
