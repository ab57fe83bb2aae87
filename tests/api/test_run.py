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


MAPPED = """
import asyncio, os, time
import flyte_decl as flyte

env = flyte.TaskEnvironment(name="mapper", resources=flyte.Resources(cpu="500m", memory="200Mi"))


@env.task
async def slow_double(x: int) -> list:
    start = time.time()
    await asyncio.sleep(0.3)
    return [x * 2, os.getpid(), start, time.time()]


@env.task
async def fan(n: int = 4, concurrency: int = 2) -> list:
    return [r async for r in flyte.map.aio(slow_double, range(n), concurrency=concurrency)]


@env.task
def fan_sync(n: int = 3) -> list:
    return [r[0] for r in flyte.map(slow_double, range(n))]
"""


def _overlaps(rows):
    spans = sorted((start, end) for _, _, start, end in rows)
    return max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)


def test_map_in_an_action_runs_each_item_as_an_action_with_bounded_concurrency(tmp_path):
    (tmp_path / "mapped.py").write_text(MAPPED)
    result = run_cli("run", "mapped.py", "fan", "--n", "4", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    rows = data["outputs"]
    assert [r[0] for r in rows] == [0, 2, 4, 6]
    assert len({r[1] for r in rows}) == 4 and data["actions"][0]["pid"] not in {r[1] for r in rows}
    assert _overlaps(rows) <= 2
    sync = json.loads(run_cli("run", "mapped.py", "fan_sync", "--json", cwd=tmp_path).stdout)
    assert sync["status"] == "succeeded" and sync["outputs"] == [0, 2, 4]


def test_explain_shows_code_and_yaml_layers():
    result = run_cli("explain", "env2.square", "-c", "examples/flyte_code/environments.yaml")
    # Without importing hello.py the task is unknown to the YAML alone, so name the program's config folder.
    assert result.returncode == 2
    result = run_cli("explain", "examples/flyte_code/hello.py", "square")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "env2.square  fn=hello:square  declared at examples/flyte_code/hello.py:21"
    assert any(line.split()[:2] == ["resources.memory.limit", "250Mi"] and "code environment env2 "
               "(examples/flyte_code/hello.py:13)" in line for line in lines)  # fmt: skip
    assert any(line.split()[:2] == ["env_vars.QUEUE_NOTE", "from-yaml"] and "environment env2 "
               "(examples/flyte_code/environments.yaml:7)" in line for line in lines)  # fmt: skip
