"""Run the Flyte 2 SDK's example programs under Flyte's local mode and under flyte-decl; print a table.

    python bench/compat.py /path/to/flyte-sdk [--only SUBSTRING] [--jobs 2] [--timeout 90] [--scripts]

Needs the real `flyte` package installed (`pip install 'flyte-decl[flyte]'`) and a checkout of
github.com/flyteorg/flyte-sdk (nothing of it is vendored here). It takes every example program under
`examples/` whose `__main__` block runs a task with `flyte.run(...)` and that needs no cluster,
network, GPU or package missing here (the rules are in `skip_reason`), and runs each of them:

- `flyte`: the task through real Flyte's local mode (`flyte.run`), outputs as JSON (repr if not JSON);
- `cli`: `flyte-decl run prog.py TASK --ARG VALUE --json`, the program unmodified;
- `decl`: the task through `flyte_decl.run` from a copy with only the import changed
  (`import flyte_decl as flyte`), outputs as in `flyte`;
- with `--scripts`, also `python prog.py` with real Flyte and the changed copy, for their exit statuses.

An example counts when `flyte` completes. `cli` is the same when it succeeds with equal outputs;
`python` is the same when `decl` gives equal outputs (and, with `--scripts`, the two `python prog.py`
exit alike). Some examples give different outputs from one run of Flyte to the next (random numbers,
action ids, dict order after Flyte's own serialization): when flyte-decl's outputs differ, Flyte runs
the example again, up to FLYTE_AGAIN more times, and equal to any of Flyte's outputs counts as the
same; an example whose Flyte outputs vary and that neither way matches is listed as `varies` and not
counted. Rows print as examples finish; totals come last.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

# Folders of examples that need a cluster, a network service, accelerators or ML stacks.
SKIP_DIRS = {
    "apps", "deploy_patterns", "remote_management", "triggers", "connectors", "plugins", "clustered",
    "multi_cluster", "genai", "ml", "agents", "mcp", "interactive", "notification", "accelerators", "stress",
    "sandbox", "code-runner", "published-library", "byoi_guide", "uv_monorepo_guide", "queue-reader", "volumes",
    "highlevel_libraries", "migration", "cli", "reference_tasks", "reftask_complex_io", "multi_env", "rerun",
    "project_structures", "image",
}  # fmt: skip
# Text that marks a program as needing a control plane, the network or a GPU.
SKIP_TEXT = re.compile(
    r"flyte\.remote|flyte\.deploy|flyte\.serve|flyte\.app|flyte\.build|remote_task|init_from_api_key|"
    r"requests\.|httpx|aiohttp|urllib\.request|openai|gpu=|GPU\(|torch|s3://|gs://|abfs://|flyte\.Trigger"
)

DRIVER = r"""
import dataclasses, enum, importlib.util, json, sys
path, task, kwargs, package = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
folder = str(__import__("pathlib").Path(path).resolve().parent)
sys.path.insert(0, folder)
import importlib
flyte = importlib.import_module(package)
stem = __import__("pathlib").Path(path).stem
spec = importlib.util.spec_from_file_location(stem, path)
module = importlib.util.module_from_spec(spec)
sys.modules[stem] = module
spec.loader.exec_module(module)
if hasattr(flyte, "init"):
    flyte.init()
run = flyte.run(getattr(module, task), **kwargs)
outputs = tuple(run.outputs())
value = outputs[0] if len(outputs) == 1 else tuple(outputs)  # o0..oN: the tuple the task returned
try:
    text = json.dumps(value)
except (TypeError, ValueError):
    text = json.dumps(repr(value))
print("@@OUTPUTS@@" + text)
"""


@dataclass
class Example:
    path: Path
    task: str = ""
    kwargs: dict[str, object] = field(default_factory=dict)
    skip: str = ""
    results: dict[str, tuple[bool, str]] = field(default_factory=dict)  # mode -> (ok, outputs or error)
    flyte_again: list[tuple[bool, str]] = field(default_factory=list)  # Flyte's runs after the first


def _imports(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _main_run(tree: ast.Module) -> ast.Call | None:
    """The first `flyte.run(task, ...)` or `....run(task, ...)` call in the `__main__` block."""
    for node in tree.body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            for call in ast.walk(node):
                if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "run"
                        and call.args and isinstance(call.args[0], ast.Name)):  # fmt: skip
                    return call
    return None


_SAFE = {"range": range, "list": list, "dict": dict, "tuple": tuple, "str": str, "int": int, "float": float}


def _value(node: ast.expr) -> object:
    """An input written as a literal or a small expression of literals (`list(range(10))`)."""
    try:
        return ast.literal_eval(node)
    except ValueError:
        names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        if not names <= set(_SAFE) or any(isinstance(n, ast.Attribute) for n in ast.walk(node)):
            raise
        return eval(compile(ast.Expression(node), "<input>", "eval"), {"__builtins__": {}, **_SAFE})  # noqa: S307


def _params(tree: ast.Module, name: str) -> list[str]:
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return [a.arg for a in node.args.args]
    return []


def skip_reason(example: Example, root: Path) -> str:
    """Why an example is left out ("" to run it), and its task and literal inputs when it is not."""
    relative = example.path.relative_to(root)
    if len(relative.parts) > 1 and relative.parts[0] in SKIP_DIRS:
        return f"folder {relative.parts[0]}"
    text = example.path.read_text(errors="replace")
    if "import flyte" not in text and "from flyte" not in text:
        return "no flyte"
    if SKIP_TEXT.search(text):
        return f"needs {SKIP_TEXT.search(text).group(0)}"  # type: ignore[union-attr]
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return "syntax"
    missing = sorted(
        name for name in _imports(tree) - {"flyte", "flyte_decl", "__future__"}
        if importlib.util.find_spec(name) is None and not (example.path.parent / f"{name}.py").exists()
        and not (example.path.parent / name).is_dir()
    )  # fmt: skip
    if missing:
        return f"missing {missing[0]}"
    call = _main_run(tree)
    if call is None:
        return "no flyte.run in __main__"
    example.task = call.args[0].id  # type: ignore[attr-defined]
    try:
        positional = [_value(a) for a in call.args[1:]]
        example.kwargs = {k.arg: _value(k.value) for k in call.keywords if k.arg}
    except (ValueError, NameError, TypeError, AttributeError):
        return "inputs not literal"
    example.kwargs.update(zip(_params(tree, example.task), positional, strict=False))
    try:
        json.dumps(example.kwargs)
    except TypeError:
        return "inputs not JSON"
    return ""


def with_decl_imports(text: str) -> str:
    """The program with only its imports changed from flyte to flyte_decl (the `python prog.py` way)."""
    from flyte_decl._alias import target_of

    def module(name: str) -> str:
        return target_of(name)

    out = []
    for line in text.splitlines():
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        m = re.match(r"import (flyte(?:\.[\w.]+)?)(\s+as\s+(\w+))?\s*$", stripped)
        if m and m.group(1) == "flyte":
            line = f"{indent}import flyte_decl as {m.group(3) or 'flyte'}"
        elif m:
            alias = m.group(3)
            line = f"{indent}import {module(m.group(1))}" + (f" as {alias}" if alias else "")
            if not alias:
                line += f"\n{indent}import flyte_decl as flyte"
        else:
            m = re.match(r"from (flyte(?:\.[\w.]+)?) import (.*)$", stripped)
            if m:
                line = f"{indent}from {module(m.group(1))} import {m.group(2)}"
        out.append(line)
    return "\n".join(out) + "\n"


def _run(command: list[str], cwd: Path, timeout: float, env: dict[str, str]) -> tuple[int, str, str]:
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return 124, "", "timed out"
    return done.returncode, done.stdout, done.stderr


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:160] if lines else ""


def _driver(
    path: Path, example: Example, package: str, timeout: float, env: dict[str, str]
) -> tuple[bool, str]:
    code, out, err = _run([sys.executable, "-c", DRIVER, str(path), example.task, json.dumps(example.kwargs), package],
                          path.parent, timeout, env)  # fmt: skip
    for line in out.splitlines():
        if line.startswith("@@OUTPUTS@@"):
            return True, line.removeprefix("@@OUTPUTS@@")
    return False, _last_line(err) or f"exit {code}"


def _cli_args(kwargs: dict[str, object]) -> list[str]:
    args: list[str] = []
    for name, value in kwargs.items():
        if isinstance(value, bool):
            args.append(f"--{name}" if value else f"--no-{name}")
        else:
            args += [f"--{name}", value if isinstance(value, str) else json.dumps(value)]
    return args


def run_example(example: Example, timeout: float, scripts: bool = False) -> None:
    """Run one example the five ways (three without `scripts`); fills `example.results`."""
    with tempfile.TemporaryDirectory(prefix="flyte-compat-") as tmp:
        home = Path(tmp)
        env = {**os.environ, "FLYTE_DECL_HOME": str(home / "decl-home"), "HOME": str(home)}
        env.pop("FLYTE_DECL_AS_FLYTE", None)
        path = example.path
        example.results["flyte"] = _driver(path, example, "flyte", timeout, env)
        if not example.results["flyte"][0]:
            return  # not counted: Flyte's local mode does not complete it
        if scripts:
            code, _out, err = _run([sys.executable, str(path)], path.parent, timeout, env)
            example.results["flyte script"] = (
                code == 0,
                f"exit {code}" + (f": {_last_line(err)}" if code else ""),
            )
        cli = [
            sys.executable,
            "-m",
            "flyte_decl",
            "run",
            str(path),
            example.task,
            *_cli_args(example.kwargs),
            "--json",
        ]
        code, out, err = _run(cli, path.parent, timeout, env)
        try:
            outputs = json.dumps(json.loads(out.strip().splitlines()[-1])["outputs"]) if out.strip() else ""
        except (ValueError, KeyError, IndexError):
            outputs = ""
        example.results["cli"] = (code == 0, outputs if code == 0 else _last_line(err) or f"exit {code}")
        # The changed copy sits in a copy of the example's folder, so its sibling files come along.
        folder = home / "src"
        shutil.copytree(path.parent, folder, ignore=shutil.ignore_patterns("__pycache__", ".*"))
        changed = folder / path.name
        changed.write_text(with_decl_imports(path.read_text()))
        if scripts:
            code, _out, err = _run([sys.executable, str(changed)], folder, timeout, env)
            example.results["decl script"] = (
                code == 0,
                f"exit {code}" + (f": {_last_line(err)}" if code else ""),
            )
        example.results["decl"] = _driver(changed, example, "flyte_decl", timeout, env)
        while not all(verdicts(example)[:2]) and len(example.flyte_again) < FLYTE_AGAIN:
            example.flyte_again.append(_driver(path, example, "flyte", timeout, env))


FLYTE_AGAIN = 2  # more runs of Flyte when flyte-decl's outputs differ from its first: do Flyte's vary?


def verdicts(example: Example) -> tuple[bool, bool, bool]:
    """(cli same, python same, Flyte's own outputs vary between its runs) against Flyte's local mode.

    Same means equal to the outputs of any run of Flyte that completed."""
    runs = [example.results["flyte"], *example.flyte_again]
    flyte_outs = [out for ok, out in runs if ok]
    cli_ok, cli_out = example.results["cli"]
    decl_ok, decl_out = example.results["decl"]
    same_script = "flyte script" not in example.results or (
        example.results["decl script"][0] == example.results["flyte script"][0]
    )
    cli = cli_ok and any(_same(cli_out, out) for out in flyte_outs)
    python = decl_ok and any(_same(decl_out, out) for out in flyte_outs) and same_script
    varies = len(flyte_outs) < len(runs) or any(not _same(out, flyte_outs[0]) for out in flyte_outs)
    return cli, python, varies


def _same(a: str, b: str) -> bool:
    try:
        return bool(json.loads(a) == json.loads(b))
    except ValueError:
        return a == b


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sdk", type=Path, help="a checkout of github.com/flyteorg/flyte-sdk")
    parser.add_argument("--only", default="", help="run only examples whose path contains this")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds per program run")
    parser.add_argument("--show-skipped", action="store_true")
    parser.add_argument("--scripts", action="store_true",
                        help="also run `python prog.py` both ways and require equal exit statuses")  # fmt: skip
    args = parser.parse_args(argv)
    root = args.sdk / "examples"
    if not root.is_dir():
        print(f"error: {root}: no such folder (give the path of a flyte-sdk checkout)", file=sys.stderr)
        return 2
    if importlib.util.find_spec("flyte") is None:
        print("error: the real flyte package is not installed (pip install 'flyte>=2.0')", file=sys.stderr)
        return 2
    examples = [Example(p) for p in sorted(root.rglob("*.py")) if args.only in str(p)]
    for example in examples:
        example.skip = skip_reason(example, root)
    chosen = [e for e in examples if not e.skip]
    print(f"{'example':50} {'flyte':6} {'cli':5} {'python':6}  note", flush=True)
    counted = cli_same = py_same = 0
    varying: list[str] = []

    def one(example: Example) -> Example:
        run_example(example, args.timeout, args.scripts)
        return example

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for example in pool.map(one, chosen):
            name = str(example.path.relative_to(root))
            flyte_ok = example.results["flyte"][0]
            note = f"flyte: {example.results['flyte'][1]}"
            cli = py = False
            varies = False
            if flyte_ok:
                cli, py, varies = verdicts(example)
            if varies and not (cli or py):
                varying.append(name)
                note = f"not counted: Flyte's outputs vary between runs ({len(example.flyte_again) + 1} runs)"
                flyte_ok = False
            elif flyte_ok:
                counted += 1
                cli_same += cli
                py_same += py
                note = ""
                if not cli:
                    note = f"cli: {example.results['cli'][1]}"
                if not py:
                    script = example.results.get("decl script", (True, ""))[1]
                    note += f" python: {example.results['decl'][1]} {script}".rstrip()
            mark = {True: "same", False: "diff"}
            shown = "varies" if varies and not flyte_ok else "ok" if flyte_ok else "fail"
            print(f"{name:50} {shown:6} {mark[cli] if flyte_ok else '-':5} "
                  f"{mark[py] if flyte_ok else '-':6}  {note.strip()[:160]}", flush=True)  # fmt: skip
    if args.show_skipped:
        for example in examples:
            if example.skip:
                print(f"skipped {example.path.relative_to(root)}: {example.skip}")
    print(
        f"\n{len(examples)} example files, {len(chosen)} run, {counted + len(varying)} completed by Flyte's local mode"
    )
    if varying:
        print(f"not counted, Flyte's own outputs vary between runs: {len(varying)} ({', '.join(varying)})")
    if counted:
        print(f"flyte-decl run prog.py TASK (unmodified): {cli_same}/{counted} same outputs "
              f"({100 * cli_same / counted:.0f}%)")  # fmt: skip
        print(f"python prog.py (import changed):         {py_same}/{counted} same outputs "
              f"({100 * py_same / counted:.0f}%)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
