"""Render an export plan as a Python module for `flyte deploy` / `flyte run`.

The module needs only `flyte` and the bound modules: it declares one `flyte.TaskEnvironment` per
environment (dependencies first), binds each declared function with `@env.task(...)`, rebinds the
function in its module (so calls between tasks start Flyte actions), and carries a task resolver
that loads each task from this module inside the container.
"""

from __future__ import annotations

import json
import keyword
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from flyte_decl.flyte.build import BoundFunction
from flyte_decl.flyte.plan import Call, ExportPlan
from flyte_decl.spec import split_fn

_RESOLVER = '''

class Resolver:
    """Loads a task inside a Flyte container from this module, which binds it (Flyte's resolver protocol)."""

    import_path = f"{__name__}.Resolver"

    def loader_args(self, task, root_dir=None):
        return ["task", task.name]

    def load_task(self, loader_args):
        return TASKS[loader_args[-1]]


_resolver = Resolver()
TASKS = {}
'''


def render_module(plan: ExportPlan, bindings: dict[str, BoundFunction], output: Path, origin: str) -> str:
    """The text of the module to be written at `output`; `origin` (what it was exported from) goes
    into its docstring, with the settings Flyte cannot carry."""
    renderer = _Renderer(output.parent)
    modules = sorted({split_fn(t.fn)[0] for env in plan.environments for t in env.tasks})
    taken = {m.split(".")[0] for m in modules} | {"flyte", "pathlib", "timedelta", "Resolver", "TASKS"}
    env_vars = {env.name: _identifier(env.name, taken) for env in plan.environments}
    body: list[str] = []
    for env in plan.environments:
        args = [f"name={renderer.value(env.name)}"]
        if env.depends_on:
            args.append(f"depends_on=[{', '.join(env_vars[d] for d in env.depends_on)}]")
        args += [f"{k}={renderer.value(v)}" for k, v in env.kwargs.items()]
        body.append(
            f"{env_vars[env.name]} = flyte.TaskEnvironment(\n" + "".join(f"    {a},\n" for a in args) + ")"
        )
    short_names = [t.full.partition(".")[2] for env in plan.environments for t in env.tasks]
    for env in plan.environments:
        for task in env.tasks:
            short = task.full.partition(".")[2]
            variable = _identifier(short if short_names.count(short) == 1 else task.full, taken)
            module, attr_path = split_fn(task.fn)
            target = f"{module}.{attr_path}"
            function = (
                target if bindings[task.full].function is bindings[task.full].original else f"{target}.func"
            )
            args = [f"{k}={renderer.value(v)}" for k, v in task.kwargs.items()] + ["task_resolver=_resolver"]
            body.append(
                f"{variable} = TASKS[{renderer.value(_flyte_name(env.name, task.function_name))}] = {target} = "
                f"{env_vars[env.name]}.task({', '.join(args)})({function})"
            )
    lines = [f'"""Flyte task environments exported by `flyte-decl export flyte` from {origin}.', ""]
    lines.append(
        "Deploy with `flyte deploy` on this file; re-export after changing the config instead of editing."
    )
    if plan.warnings:
        lines += ["", "Not carried to Flyte:", *(f"- {w}" for w in plan.warnings)]
    lines += ['"""', ""]
    if renderer.uses_path:
        lines.append("import pathlib")
    if renderer.uses_timedelta:
        lines.append("from datetime import timedelta")
    lines += ["", "import flyte", "", *(f"import {m}" for m in modules)]
    if renderer.uses_path:
        lines += ["", "_HERE = pathlib.Path(__file__).resolve().parent"]
    return "\n".join(lines) + "\n" + _RESOLVER + "\n" + "\n".join(body) + "\n"


def _flyte_name(env: str, function_name: str) -> str:
    return f"{env}.{function_name}"


def _identifier(name: str, taken: set[str]) -> str:
    base = re.sub(r"\W", "_", name)
    if base[0].isdigit() or keyword.iskeyword(base):
        base = f"_{base}"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}_{n}", n + 1
    taken.add(candidate)
    return candidate


class _Renderer:
    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir.resolve()
        self.uses_path = False
        self.uses_timedelta = False

    def value(self, value: Any) -> str:
        if isinstance(value, Call):
            prefix = self.value(value.receiver) if value.receiver is not None else "flyte"
            args = [self.value(a) for a in value.args] + [f"{k}={self.value(v)}" for k, v in value.kwargs]
            return f"{prefix}.{value.name}({', '.join(args)})"
        if isinstance(value, timedelta):
            self.uses_timedelta = True
            seconds = value.total_seconds()
            return f"timedelta(seconds={int(seconds) if seconds.is_integer() else seconds!r})"
        if isinstance(value, Path):
            self.uses_path = True
            return f"str(_HERE / {self.value(os.path.relpath(value, self.out_dir))})"
        if isinstance(value, tuple):
            inner = ", ".join(self.value(v) for v in value)
            return f"({inner},)" if len(value) == 1 else f"({inner})"
        if isinstance(value, list):
            return f"[{', '.join(self.value(v) for v in value)}]"
        if isinstance(value, dict):
            return "{" + ", ".join(f"{self.value(k)}: {self.value(v)}" for k, v in value.items()) + "}"
        if isinstance(value, str):
            return json.dumps(value, ensure_ascii=False)  # a JSON string is a Python string literal
        return repr(value)
