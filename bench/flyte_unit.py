"""Run Flyte 2's own unit tests for its declaration API against flyte_decl, through an import shim.

    python bench/flyte_unit.py /path/to/flyte-sdk [--real]

Copies the SDK's tests for Resources, TaskEnvironment, override, RetryStrategy, Timeout and ReusePolicy
(`tests/user_api/`) into a temporary folder whose conftest makes `import flyte` (and Flyte's private
paths such as `flyte._resources`) resolve to flyte_decl (`flyte_decl._alias`), runs pytest there and
prints the passes per file. `--real` runs the same files against the real `flyte` package, for the
baseline. Needs Flyte's test dependencies: `pip install pytest-asyncio kubernetes`.

Each module-level statement of a test file (an import, a declaration) runs on its own: one that fails,
such as an import of a Flyte internal that flyte_decl does not have (`flyte._internal...`), leaves
its names undefined and is listed, so the tests that use them fail and the others still run, instead
of the whole file failing at import. Test functions are copied unchanged.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

FILES = ["test_resources.py", "test_task_environment.py", "test_override.py", "test_retry_strategy.py",
         "test_timeout.py", "test_reuse_policy.py"]  # fmt: skip
SHIM = "from flyte_decl import _alias\n\n_alias.install()\n"


def count_tests(path: Path) -> int:
    """Test functions in a file, parametrized ones counted once per case (literal lists only)."""
    total = 0
    for node in ast.parse(path.read_text()).body:
        if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test")):
            continue
        cases = 1
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Call) and ast.unparse(decorator.func).endswith("parametrize"):
                values = decorator.args[1] if len(decorator.args) > 1 else None
                if isinstance(values, (ast.List, ast.Tuple)):
                    cases *= len(values.elts)
        total += cases
    return total


def tolerant(source: str, failures: Path) -> str:
    """The test module with each module-level statement but the test functions run on its own.

    A statement that raises is skipped (its names stay undefined) and recorded, one line each, in
    `failures` when the module has been imported.
    """
    tree = ast.parse(source)
    future = [node for node in tree.body if isinstance(node, ast.ImportFrom) and node.module == "__future__"]
    body: list[ast.stmt] = [*future, *ast.parse("_shim_failed = []").body]
    for node in tree.body:
        if node in future:
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            body.append(node)
            continue
        first = ast.get_source_segment(source, node) or ""
        note = f"line {node.lineno}: {first.splitlines()[0][:80]}"
        guard = ast.parse(
            f"try:\n    pass\nexcept Exception as _exc:\n    _shim_failed.append({note!r} + ' -> ' + repr(_exc))"
        )
        guard.body[0].body = [node]  # type: ignore[attr-defined]
        body.extend(guard.body)
    body.extend(ast.parse(f"open({str(failures)!r}, 'w').write('\\n'.join(_shim_failed))").body)
    tree.body = body
    return ast.unparse(ast.fix_missing_locations(tree))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sdk", type=Path)
    parser.add_argument("--real", action="store_true", help="run against the real flyte package instead")
    parser.add_argument("-v", "--verbose", action="store_true", help="list each failing test")
    args = parser.parse_args(argv)
    source = args.sdk / "tests" / "user_api"
    if not source.is_dir():
        print(f"error: {source}: no such folder (give the path of a flyte-sdk checkout)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="flyte-unit-") as tmp:
        folder = Path(tmp)
        for name in FILES:
            text = (source / name).read_text()
            (folder / name).write_text(tolerant(text, folder / f"{name}.failed"))
        (folder / "conftest.py").write_text("" if args.real else SHIM)
        report = folder / "report.xml"
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                        "-o", "addopts=", "--continue-on-collection-errors", "--rootdir", str(folder), str(folder)], cwd=folder,
                       capture_output=True, text=True, timeout=600)  # fmt: skip
        passed: dict[str, int] = dict.fromkeys(FILES, 0)
        ran: dict[str, int] = dict.fromkeys(FILES, 0)
        failures: list[str] = []
        for case in ET.parse(report).getroot().iter("testcase"):
            file = case.get("classname", "").split(".")[0] + ".py"
            if file not in passed:
                continue
            ran[file] += 1
            problem = case.find("failure") if case.find("failure") is not None else case.find("error")
            if problem is None and case.find("skipped") is None:
                passed[file] += 1
            elif problem is not None:
                failures.append(f"{file}::{case.get('name')}: {(problem.get('message') or '')[:150]}")
        total_pass = total = 0
        module_failures: list[str] = []
        print(f"{'file':28} {'passed':>7} {'tests':>6}")
        for name in FILES:
            tests = max(ran[name], count_tests(folder / name))
            total_pass += passed[name]
            total += tests
            failed_file = folder / f"{name}.failed"
            failed = failed_file.read_text().splitlines() if failed_file.exists() else []
            note = "   (cannot be imported)" if not ran[name] else ""
            note += f"   ({len(failed)} module-level statements failed)" if failed else ""
            print(f"{name:28} {passed[name]:7} {tests:6}{note}")
            module_failures.extend(f"{name} {line}" for line in failed)
        print(f"{'total':28} {total_pass:7} {total:6}   ({100 * total_pass / max(total, 1):.0f}%)")
        if args.verbose:
            print("\n".join(module_failures + failures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
