"""Layers and precedence (SPEC §3), checked through the public `load` and the `explain` command."""

import json
import os
from pathlib import Path

import pytest

from flyte_decl.config.load import load
from flyte_decl.problems import ConfigLoadError, UsageError

GOLDEN = Path(__file__).parent / "golden"

LAYERED = """
version: 1
defaults:
  resources: {cpu: 1, memory: 512Mi}
  env_vars: {A: from-defaults, B: from-defaults}
  max_inline_io_bytes: 10Mi
queues:
  spot: {concurrency: 2}
environments:
  base:
    resources: {memory: 1Gi}
    env_vars: {B: from-base}
    retries: 2
  env2:
    extends: base
    task_queue: spot
    resources:
      cpu: {request: 500m, limit: 1}
    env_vars: {C: from-env2}
    tasks:
      square:
        fn: "hello:square"
        retries: {backoff: 1s}
        timeout: 30s
      cube:
        fn: "hello:cube"
        env_vars: {A: null}
        max_inline_io_bytes: null
overrides:
  - match: {environment: env2, task: "sq*"}
    set: {resources: {memory: 2Gi}}
  - match: {task: "env2.cube"}
    set: {timeout: 5m}
profiles:
  prod:
    environments: {env2: {resources: {memory: 3Gi}}}
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # file names in origins are shown relative to the working directory


def fields(resolved, name):
    return {path: value for path, (value, _) in resolved.tasks[name].fields.items()}


def origin(resolved, name, path):
    return str(resolved.tasks[name].fields[path][1])


def test_layers_merge_field_by_field(write):
    resolved = load([write(LAYERED)])
    square = fields(resolved, "env2.square")
    assert square["resources.cpu.request"] == "500m"  # environment
    assert square["resources.cpu.limit"] == 1
    assert square["resources.memory.limit"] == "2Gi"  # overrides[0] beats base's 1Gi
    assert square["env_vars.A"] == "from-defaults"
    assert square["env_vars.B"] == "from-base"
    assert square["env_vars.C"] == "from-env2"
    assert square["retries.count"] == 2  # from base, merged with the task's backoff
    assert square["retries.backoff"] == "1s"
    assert square["queue"] == "spot"  # task_queue alias
    assert origin(resolved, "env2.square", "resources.memory.limit") == "overrides[0] (environments.yaml:30)"
    assert origin(resolved, "env2.square", "retries.count") == "environment base (environments.yaml:12)"
    assert origin(resolved, "env2.square", "cache") == "built-in"


def test_null_resets_to_the_built_in_default(write):
    resolved = load([write(LAYERED)])
    cube = fields(resolved, "env2.cube")
    assert "env_vars.A" not in cube
    assert cube["max_inline_io_bytes"] == "10Mi"
    assert origin(resolved, "env2.cube", "max_inline_io_bytes").startswith(
        "built-in (reset by task (environments.yaml:"
    )
    assert cube["timeout"] == "5m"  # overrides[1] by full name


def test_profile_overlays_before_resolution(write):
    resolved = load([write(LAYERED)], profile="prod")
    # The profile changes the environment layer; the override still wins for square, not for cube.
    assert fields(resolved, "env2.square")["resources.memory.limit"] == "2Gi"
    assert fields(resolved, "env2.cube")["resources.memory.limit"] == "3Gi"
    assert origin(resolved, "env2.cube", "resources.memory.limit") == "profile prod (environments.yaml:35)"


def test_unknown_profile_is_a_usage_error(write):
    with pytest.raises(UsageError, match=r"unknown profile 'prd' \(did you mean 'prod'\?\)"):
        load([write(LAYERED)], profile="prd")


def test_later_config_files_overlay_earlier_ones(write):
    base = write(LAYERED)
    extra = write("version: 1\nenvironments:\n  env2:\n    env_vars: {C: from-extra}\n", "extra.yaml")
    resolved = load([base, extra])
    assert fields(resolved, "env2.square")["env_vars.C"] == "from-extra"
    assert origin(resolved, "env2.square", "env_vars.C").endswith("(extra.yaml:4)")
    assert fields(resolved, "env2.square")["env_vars.B"] == "from-base"


def test_run_level_set_and_queue_apply_to_the_root_task_only(write):
    resolved = load(
        [write(LAYERED)], sets=["resources.memory=4Gi", "retries=5"], queue="default", root_task="square"
    )
    square = fields(resolved, "env2.square")
    assert square["resources.memory.limit"] == "4Gi"
    assert square["retries.count"] == 5
    assert square["queue"] == "default"
    assert origin(resolved, "env2.square", "queue") == "cli --queue (<cli --queue>)"
    assert fields(resolved, "env2.cube")["queue"] == "spot"


def test_bad_set_is_checked_by_the_same_model(write):
    with pytest.raises(ConfigLoadError) as caught:
        load([write(LAYERED)], sets=["resources.memery=1Gi", "timeout=5x", "oops"], root_task="square")
    assert caught.value.lines() == [
        "<cli --set>: error: oops: expected PATH=VALUE (e.g. --set resources.memory=1Gi)",
    ]
    with pytest.raises(ConfigLoadError) as caught:
        load([write(LAYERED)], sets=["resources.memery=1Gi", "timeout=5x"], root_task="square")
    assert caught.value.lines() == [
        "<cli --set>: error: resources.memery: unknown key (did you mean 'memory'?)",
        "<cli --set>: error: timeout: '5x' is not a duration (e.g. 30s, 5m, 1h30m, 250ms or 30)",
    ]


def test_request_above_limit_across_layers(write):
    text = LAYERED.replace("cpu: {request: 500m, limit: 1}", "cpu: {request: 2}")
    with pytest.raises(ConfigLoadError) as caught:
        load([write(text)])
    assert (
        "env2.square.resources.cpu: request 2 (environment env2) is above the limit 1 (defaults) "
        "(a request cannot exceed its limit)" in caught.value.lines()[0]
    )


def test_interpolation_reads_the_environment(write, monkeypatch):
    monkeypatch.setenv("FD_MEM", "768Mi")
    resolved = load(
        [
            write(
                LAYERED.replace("memory: 1Gi", "memory: '${FD_MEM}'").replace(
                    "from-env2", "'${FD_UNSET:-fallback}'"
                )
            )
        ]
    )
    assert fields(resolved, "env2.cube")["resources.memory.limit"] == "768Mi"
    assert fields(resolved, "env2.cube")["env_vars.C"] == "fallback"


def test_toml_has_the_same_shape_and_locations(write):
    toml = write(
        """
        version = 1

        [defaults]
        resources = {cpu = 1, memory = "512Mi"}

        [environments.env2]
        resources = {memory = "250Mi"}

        [environments.env2.tasks.square]
        fn = "hello:square"
        timeout = "30s"

        [[overrides]]
        match = {task = "square"}
        set = {retries = 3}
        """,
        "environments.toml",
    )
    resolved = load([toml])
    square = fields(resolved, "env2.square")
    assert square["resources.memory.limit"] == "250Mi" and square["retries.count"] == 3
    assert (
        origin(resolved, "env2.square", "resources.memory.limit") == "environment env2 (environments.toml:7)"
    )
    assert origin(resolved, "env2.square", "retries.count") == "overrides[0] (environments.toml:15)"


def test_toml_errors_are_located(write, flyte_decl):
    write('version = 1\n[environments.env1]\nresources = {memery = "1Gi"}\n', "environments.toml")
    result = flyte_decl("validate")
    assert result.out.splitlines()[0] == (
        "environments.toml:3:14: error: environments.env1.resources.memery: unknown key (did you mean 'memory'?)"
    )
    write("version = 1\n[environments.env1\n", "environments.toml")
    result = flyte_decl("validate")
    assert result.code == 2
    assert (
        result.err.strip()
        == "environments.toml:2:19: error: invalid TOML: Expected ']' at the end of a table declaration"
    )


def test_pyproject_table_is_discovered(write, flyte_decl):
    write(
        '[project]\nname = "x"\n\n[tool.flyte-decl]\nversion = 1\n[tool.flyte-decl.environments.env1.tasks]\n'
        't = {fn = "m:f", timeout = "5x"}\n',
        "pyproject.toml",
    )
    result = flyte_decl("validate")
    assert result.out.splitlines()[0] == (
        "pyproject.toml:7:28: error: environments.env1.tasks.t.timeout: '5x' is not a duration "
        "(e.g. 30s, 5m, 1h30m, 250ms or 30)"
    )


def test_short_task_names_must_be_unique(write, flyte_decl):
    write("version: 1\nenvironments:\n  a: {tasks: {t: {fn: 'm:f'}}}\n  b: {tasks: {t: {fn: 'm:g'}}}\n")
    result = flyte_decl("explain", "t")
    assert result.code == 2
    assert result.err.strip() == "error: task 't' is ambiguous: a.t, b.t (use the full ENV.TASK name)"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_explain_golden(write, flyte_decl, fmt):
    write(LAYERED)
    result = flyte_decl("explain", "env2.square", "--overrides", "--format", fmt)
    assert result.code == 0, result.err
    golden = GOLDEN / f"explain.{fmt}"
    if os.environ.get("UPDATE_GOLDEN"):  # regenerate deliberately, then review the diff
        golden.write_text(result.out)
    assert result.out == golden.read_text()
    if fmt == "json":
        assert json.loads(result.out)["task"] == "env2.square"
