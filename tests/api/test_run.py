"""Flyte-2-style programs run unchanged under `import flyte_decl as flyte`, as scripts and via the CLI."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "flyte_code"


def run_cli(*args, cwd=ROOT):
    result = subprocess.run([sys.executable, "-m", "flyte_decl", *args], cwd=cwd, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    return result


def test_python_hello_runs_through_flyte_run(tmp_path):
    result = subprocess.run([sys.executable, str(EXAMPLE / "hello.py")], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "succeeded [0, 1, 4, 9, 16]"


def test_cli_runs_a_py_target_with_each_square_in_its_own_limited_process():
    result = run_cli("run", "examples/flyte_code/hello.py", "main", "--n", "4", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["status"] == "succeeded" and data["outputs"] == [0, 1, 4, 9]
    root, children = data["actions"][0], data["actions"][1:]
    assert root["task"] == "env1.main"
    assert {c["task"] for c in children} == {"env2.square"} and len(children) == 4
    assert all(c["parent"] == root["id"] for c in children)
    assert root["pid"] not in {c["pid"] for c in children}
    assert all(c["limits"]["cpu"] == 1.0 and c["limits"]["memory"] == 250 * 2**20 for c in children)
    assert all(c["queue"] == "gcp-useast1-1" for c in children)  # declared in code, defined in the YAML


@pytest.mark.parametrize(
    ("args", "root_queue", "child_queue"),
    [
        ((), "default", "gcp-useast1-1"),  # the environment's queue (code) for children
        (("--queue", "gcp-useast1-1"), "gcp-useast1-1", "gcp-useast1-1"),  # run level: the root only
    ],
)
def test_run_level_queue_applies_to_the_root_only(args, root_queue, child_queue):
    result = run_cli("run", "examples/flyte_code/hello.py", "main", "--n", "2", "--json", *args)
    data = json.loads(result.stdout)
    assert data["actions"][0]["queue"] == root_queue
    assert {a["queue"] for a in data["actions"][1:]} == {child_queue}


def test_call_site_override_merges_over_code_and_yaml():
    result = run_cli("run", "examples/flyte_code/hello.py", "overridden", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    child = data["actions"][1]
    assert child["queue"] == "default"  # override beats the environment's queue
    assert child["limits"]["memory"] == 300 * 2**20 and child["limits"]["cpu"] == 1.0  # cpu kept
    assert data["outputs"]["greeting"] == "hello"  # code env var kept
    assert data["outputs"]["queue_note"] == "from-yaml"  # YAML env var merged over code
    assert data["outputs"]["pid"] == child["pid"]


def test_with_overrides_max_inline_io_fails_the_call(tmp_path):
    result = subprocess.run([sys.executable, str(EXAMPLE / "inline_io.py")], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.strip()
        == "failed failed inline_io_exceeded io.foo inputs are 17, over max_inline_io_bytes 1"
    )


def test_unknown_task_in_a_py_target_is_a_usage_error():
    result = run_cli("run", "examples/flyte_code/hello.py", "mian")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "error: examples/flyte_code/hello.py has no task 'mian' (did you mean 'main'?)"
    )


def test_map_outside_a_run_calls_the_function():
    import flyte_decl as flyte

    assert list(flyte.map(lambda x, y: x + y, [1, 2], [10, 20])) == [11, 22]
