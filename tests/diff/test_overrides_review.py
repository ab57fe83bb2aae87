"""Reviewing `overrides:`: which entries a task matched (`explain --overrides`), which matched nothing (`validate`)."""

import json

CONFIG = """
version: 1
queues:
  spot: {concurrency: 2}
environments:
  env1:
    tasks:
      say_hello: {fn: "hello:say_hello"}
  env2:
    queue: spot
    tasks:
      square: {fn: "hello:square"}
overrides:
  - match: {environment: env2}
    set: {timeout: 1m}
  - match: {task: "env9.*"}
    set: {timeout: 2m}
  - match: {queue: spot, task: "sq*"}
    set: {resources: {memory: 1Gi}}
  - match: {environment: "gpu*"}
    set: {retries: 2}
"""


def test_explain_lists_every_matching_override_in_order(write, flyte_decl):
    write(CONFIG)
    result = flyte_decl("explain", "square", "--overrides")
    assert result.code == 0, result.err
    assert result.out.splitlines()[-3:] == [
        "",
        "  overrides[0] matches (environments.yaml:13): environment=env2",
        "  overrides[2] matches (environments.yaml:17): queue=spot, task=sq*",
    ]
    data = json.loads(flyte_decl("explain", "env2.square", "--overrides", "--format", "json").out)
    assert data["overrides"] == [
        {"index": 0, "match": {"environment": "env2"}, "at": "environments.yaml:13"},
        {"index": 2, "match": {"queue": "spot", "task": "sq*"}, "at": "environments.yaml:17"},
    ]


def test_explain_says_when_no_override_matches(write, flyte_decl):
    write(CONFIG)
    result = flyte_decl("explain", "say_hello", "--overrides")
    assert result.code == 0, result.err
    assert result.out.splitlines()[-1] == "  no overrides match this task"
    assert (
        json.loads(flyte_decl("explain", "say_hello", "--overrides", "--format", "json").out)["overrides"]
        == []
    )


def test_validate_lists_every_selector_that_matches_nothing(write, flyte_decl):
    write(CONFIG)
    hint = "(check the environment and task names; `flyte-decl list` shows them)"
    result = flyte_decl("validate")
    assert (result.code, result.err) == (0, "")
    assert result.out.splitlines() == [
        f"environments.yaml:15:12: warning: overrides[1].match: selector matches no task {hint}",
        f"environments.yaml:19:12: warning: overrides[3].match: selector matches no task {hint}",
        "ok: 2 tasks in 2 environments (2 warnings)",
    ]
    strict = flyte_decl("validate", "--strict")
    assert strict.code == 1
    assert strict.out.splitlines()[-1] == "2 errors"
