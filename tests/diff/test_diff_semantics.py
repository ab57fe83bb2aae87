"""Values compare by meaning; every risk rule; settings outside tasks (queues, capacity, depends_on)."""

import json
import subprocess

import pytest

TEMPLATE = """
version: 1
queues:
  spot: {concurrency: 2}
environments:
  env1:
    %s
    tasks:
      train: {fn: "m:train"}
  env2: {tasks: {other: {fn: "m:other"}}}
"""


def diff_json(write, flyte_decl, old, new, template=TEMPLATE):
    write(template % old, "old.yaml")
    write(template % new, "new.yaml")
    result = flyte_decl("diff", "old.yaml", "new.yaml", "--format", "json")
    assert result.code in (0, 1), result.err
    data = json.loads(result.out)
    assert result.code == int(data["changed"])
    return data


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("resources: {memory: 1Gi}", "resources: {memory: 1024Mi}"),
        ("resources: {memory: 1Gi}", "resources: {memory: {request: 1024Mi, limit: 1073741824e0}}"),
        ("resources: {cpu: 1}", "resources: {cpu: 1000m}"),
        ("resources: {cpu: 0.5}", "resources: {cpu: 500m}"),
        ("timeout: 30s", "timeout: 30"),
        ("timeout: 1h30m", "timeout: 90m"),
        ("max_inline_io_bytes: 1Ki", "max_inline_io_bytes: 1024"),
        ("secrets: [A, B]", "secrets: [B, A]"),
        ("retries: 3", "retries: {count: 3}"),
        ("queue: spot", "task_queue: spot"),
        ("retries: {count: 1, backoff: 1s}", "retries: {backoff: 1000ms, count: 1}"),
    ],
)
def test_same_meaning_is_no_change(write, flyte_decl, old, new):
    data = diff_json(write, flyte_decl, old, new)
    assert data["changes"] == [] and data["changed"] is False


def test_a_value_moved_to_another_layer_is_no_change(write, flyte_decl):
    write("version: 1\nenvironments:\n  e:\n    timeout: 1m\n    tasks: {t: {fn: 'm:t'}}\n", "old.yaml")
    write("version: 1\ndefaults: {timeout: 60s}\nenvironments:\n  e: {tasks: {t: {fn: 'm:t'}}}\n", "new.yaml")
    assert flyte_decl("diff", "old.yaml", "new.yaml").out == "old.yaml -> new.yaml: no effective changes\n"


def test_a_change_in_a_layer_below_an_override_is_no_effective_change(write, flyte_decl):
    template = TEMPLATE + "overrides:\n  - match: {task: train}\n    set: {timeout: 5m}\n"
    assert not diff_json(write, flyte_decl, "timeout: 30s", "timeout: 1m", template)["changed"]


RISKS = [
    ("resources: {memory: 1Gi}", "resources: {memory: 2Gi}", []),
    ("resources: {memory: 1Gi}", "resources: {memory: 2049Mi}", [("memory_doubled", "1Gi -> 2049Mi")]),
    ("resources: {cpu: 500m}", "resources: {cpu: 2}", [("cpu_doubled", "500m -> 2")]),
    (
        "resources: {cpu: {request: 1, limit: 1}}",
        "resources: {cpu: {request: 1}}",
        [("cpu_limit_removed", "cpu limit removed (was 1)")],
    ),
    ("queue: spot", "queue: default", [("queue_changed", "queue changed (spot -> default)")]),
    ("retries: 2", "retries: 0", [("retries_removed", "retries removed (was 2)")]),
    ("timeout: 1m", "{}", [("timeout_removed", "timeout removed (was 1m)")]),
    ("secrets: [A]", "secrets: [A, C, B]", [("secret_added", "secrets added: B, C")]),
    ("secrets: [A, B]", "secrets: [A]", []),
]


@pytest.mark.parametrize(("old", "new", "risks"), RISKS)
def test_risks(write, flyte_decl, old, new, risks):
    data = diff_json(write, flyte_decl, old, new.replace("{}", "description: none"))
    assert data["changed"] is True
    found = [(r["kind"], r["message"]) for r in data["risks"]]
    assert [kind for kind, _ in found] == [kind for kind, _ in risks]
    for (_, message), (_, part) in zip(found, risks, strict=True):
        assert part in message
    assert all(r["subject"] == "env1.train" for r in data["risks"])


def test_function_queue_capacity_and_depends_on_changes(write, flyte_decl):
    write(TEMPLATE % "depends_on: [env2]", "old.yaml")
    new = (TEMPLATE % "{}").replace("concurrency: 2", "concurrency: 4").replace("m:train", "m:train_v2")
    write(new.replace("    {}\n", "") + "capacity: {cpu: 8}\n", "new.yaml")
    result = flyte_decl("diff", "old.yaml", "new.yaml")
    assert result.code == 1, result.err
    assert result.out.splitlines() == [
        "env1.train        fn           m:train -> m:train_v2  (task, new.yaml:7)",
        "environment env1  depends_on   [env2] -> unset        (was environment env1, old.yaml:6)",
        "queue spot        concurrency  2 -> 4                 (queues, new.yaml:3)",
        "capacity          cpu          unset -> 8             (capacity, new.yaml:9)",
        "",
        "old.yaml -> new.yaml: 1 task setting changed in 1 task; 1 environment setting changed; "
        "1 queue setting changed; 1 capacity setting changed",
    ]


def test_added_and_removed_environments_and_tasks(write, flyte_decl):
    write("version: 1\nenvironments:\n  a: {tasks: {t: {fn: 'm:t'}, u: {fn: 'm:u'}}}\n", "old.yaml")
    write(
        "version: 1\nenvironments:\n  a: {tasks: {t: {fn: 'm:t'}}}\n  b: {tasks: {v: {fn: 'm:v'}}}\n",
        "new.yaml",
    )
    result = flyte_decl("diff", "old.yaml", "new.yaml")
    assert result.code == 1, result.err
    assert result.out.splitlines() == [
        "added environment b",
        "added task b.v",
        "removed task a.u",
        "",
        "old.yaml -> new.yaml: 1 environment added; 1 task added; 1 task removed",
    ]


def test_tasks_of_a_renamed_environment_are_compared_under_the_new_name(write, flyte_decl):
    write("version: 1\nenvironments:\n  a: {resources: {memory: 1Gi}, tasks: {t: {fn: 'm:t'}}}\n", "old.yaml")
    write("version: 1\nenvironments:\n  b: {resources: {memory: 4Gi}, tasks: {t: {fn: 'm:t'}}}\n", "new.yaml")
    result = flyte_decl("diff", "old.yaml", "new.yaml")
    assert result.code == 1, result.err
    assert result.out.splitlines() == [
        "b.t  resources.memory.request  1Gi -> 4Gi  (environment b, new.yaml:3)",
        "b.t  resources.memory.limit    1Gi -> 4Gi  (environment b, new.yaml:3)",
        "renamed environment a -> b (tasks: t)",
        "",
        "risks:",
        "  b.t: memory more than doubled (1Gi -> 4Gi)",
        "",
        "old.yaml -> new.yaml: 2 task settings changed in 1 task; 1 environment renamed; 1 risk to review",
    ]


def test_toml_config_at_a_revision(tmp_path, isolated_git, write, flyte_decl):
    toml = '[environments.env1]\nresources = {memory = "%s"}\n[environments.env1.tasks.t]\nfn = "m:t"\n'
    write("version = 1\n" + toml % "1Gi", "environments.toml")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "add", "."], cwd=tmp_path, check=True)
    subprocess.run(["git", "commit", "-qm", "toml"], cwd=tmp_path, check=True)
    write("version = 1\n" + toml % "1536Mi", "environments.toml")
    result = flyte_decl("diff", "git:HEAD", "environments.toml")
    assert result.code == 1, result.err
    assert result.out.splitlines()[0] == (
        "env1.t  resources.memory.request  1Gi -> 1536Mi  (environment env1, environments.toml:3)"
    )
