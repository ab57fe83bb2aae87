"""`flyte-decl run` on the bundled example and its user errors, through the real command."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def flyte_decl(*args, cwd=ROOT, env=None):
    return subprocess.run([sys.executable, "-m", "flyte_decl", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)  # fmt: skip


def test_hello_example_fans_out_square_into_env2_processes():
    result = flyte_decl("run", "hello_wf", "--data", "hi", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["status"] == "succeeded"
    assert data["outputs"] == [i * i for i in range(10)]
    by_task: dict[str, list[dict]] = {}
    for action in data["actions"]:
        by_task.setdefault(action["task"], []).append(action)
    (root,) = by_task["env1.hello_wf"]
    squares = by_task["env2.square"]
    assert len(squares) == 10 and len(by_task["env1.say_hello"]) == 1
    assert all(s["parent"] == root["id"] and s["pid"] != root["pid"] for s in squares)
    assert len({s["pid"] for s in squares}) == 10
    assert all(s["limits"]["cpu"] == 1.0 and s["limits"]["memory"] == 250 * 2**20 for s in squares)
    assert root["limits"]["memory"] == 512 * 2**20  # env1 gets the defaults


def test_backend_ray_without_the_extra_says_how_to_install_it(tmp_path):
    # A `ray` package that cannot be imported, as when the extra is not installed.
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = flyte_decl("run", "hello_wf", "--backend", "ray", env=env)
    assert (result.returncode, result.stderr, result.stdout) == (
        2,
        "error: --backend ray needs Ray: pip install 'flyte-decl[ray]'\n",
        "",
    )


def test_hello_example_text_output():
    result = flyte_decl("run", "hello_wf", "--data", "hi", "--n", "3")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[0, 1, 4]\n"
    assert "env1.hello_wf[0] | hi world" in result.stderr.splitlines()


def test_task_help_lists_parameters_from_the_signature():
    result = flyte_decl("run", "hello_wf", "--help")
    assert result.returncode == 0
    assert "Greets, then squares 0..n-1" in result.stdout
    assert "--data STR  default 'hello'" in result.stdout
    assert "--n INT     default 10" in result.stdout


def test_user_errors_are_one_line_with_exit_2():
    cases = [
        (("run", "hello_wfx"), "error: unknown task 'hello_wfx' (did you mean 'hello_wf'?)"),
        (
            ("run", "hello_wf", "--n", "ten"),
            "error: --n: input should be a valid integer, unable to parse string as an integer, got 'ten' "
            "(expected int; lists and mappings are JSON, e.g. '[1,2]')",
        ),
        (("run",), "run needs a task: flyte-decl run TASK [--PARAM VALUE]...; the tasks here:"),
        (
            ("run", "hello_wf", "--address", "10.0.0.1:6379"),
            "error: --address is the Ray cluster's address; it needs --backend ray "
            "(or run: {backend: ray} in the config)",
        ),
        (
            ("run", "hello_wf", "--queue", "fast"),
            "<cli --queue>: error: queue: unknown queue 'fast' (expected one of: default)",
        ),
        (
            ("run", "hello_wf", "-e", "1X=2"),
            "error: -e '1X=2': expected KEY=VALUE with a variable name like LOG_LEVEL",
        ),
        (
            ("run", "hello_wf", "--set", "timeout=soon"),
            "<cli --set>: error: timeout: 'soon' is not a duration (e.g. 30s, 5m, 1h30m, 250ms or 30)",
        ),
    ]
    for args, expected in cases:
        result = flyte_decl(*args)
        assert (result.returncode, result.stderr.strip()) == (2, expected), args
        assert result.stdout == "" or args == ("run",), args  # `run` alone lists the tasks on stdout


def test_run_level_env_and_set_reach_the_root_action(tmp_path):
    (tmp_path / "environments.yaml").write_text(
        "version: 1\nenvironments:\n  e:\n    tasks:\n      show: {fn: 'envtask:show'}\n"
    )
    (tmp_path / "envtask.py").write_text(
        "import os\n\ndef show() -> list:\n    return [os.environ.get('X'), os.environ.get('Y')]\n"
    )
    result = flyte_decl("run", "show", "-e", "X=1", "--set", "env_vars.Y=2", "--json", cwd=tmp_path)
    assert json.loads(result.stdout)["outputs"] == ["1", "2"]
