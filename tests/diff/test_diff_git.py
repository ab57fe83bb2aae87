"""`flyte-decl diff` between git revisions and files: exact output per format, and exit codes."""

import json
import os
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"


def test_memory_change_shows_each_effective_setting_with_its_source(repo, flyte_decl):
    result = flyte_decl("diff", "git:base", "git:memory")
    assert result.code == 1, result.err
    assert result.out.splitlines() == [
        "env2.square  resources.memory.request  250Mi -> 1Gi  (overrides[0], memory:environments.yaml:21)",
        "env2.square  resources.memory.limit    250Mi -> 1Gi  (overrides[0], memory:environments.yaml:21)",
        "",
        "risks:",
        "  env2.square: memory more than doubled (250Mi -> 1Gi)",
        "",
        "git:base -> git:memory: 2 task settings changed in 1 task; 1 risk to review",
    ]


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("text", "git:memory -> git:reorder: no effective changes\n"),
        (
            "markdown",
            "<!-- flyte-decl diff -->\n### flyte-decl diff: `git:memory` → `git:reorder`\n\nNo effective changes.\n",
        ),
    ],
)
def test_reordering_and_reformatting_is_no_change(repo, flyte_decl, fmt, expected):
    # Keys and entries reordered, flow style to block, 1Gi as 1024Mi, cpu 1 as 1000m, 30s as 30,
    # retries 3 as {count: 3}, queue as task_queue, a scalar memory as an equal request/limit pair.
    result = flyte_decl("diff", "git:memory", "git:reorder", "--format", fmt)
    assert (result.code, result.out, result.err) == (0, expected, "")


def test_renamed_environment(repo, flyte_decl):
    result = flyte_decl("diff", "git:reorder", "git:rename")
    assert result.code == 1, result.err
    assert result.out.splitlines() == [
        "renamed environment env1 -> base (tasks: hello_wf, say_hello)",
        "",
        "git:reorder -> git:rename: 1 environment renamed",
    ]
    data = json.loads(flyte_decl("diff", "git:reorder", "git:rename", "--format", "json").out)
    assert data["renamed"] == [{"old": "env1", "new": "base", "tasks": ["hello_wf", "say_hello"]}]
    assert data["added"] == data["removed"] == {"environments": [], "tasks": []}


def test_added_secret_is_a_risk(repo, flyte_decl):
    result = flyte_decl("diff", "git:rename", "git:secret")
    assert result.code == 1, result.err
    assert result.out.splitlines() == [
        "env2.cube    secrets  unset -> [API_TOKEN]  (environment env2, secret:environments.yaml:12)",
        "env2.square  secrets  unset -> [API_TOKEN]  (environment env2, secret:environments.yaml:12)",
        "",
        "risks:",
        "  env2.cube: secret added: API_TOKEN",
        "  env2.square: secret added: API_TOKEN",
        "",
        "git:rename -> git:secret: 2 task settings changed in 2 tasks; 2 risks to review",
    ]


def test_markdown_golden(repo, flyte_decl):
    result = flyte_decl("diff", "git:base", "git:secret", "--format", "markdown")
    assert result.code == 1, result.err
    golden = GOLDEN / "base-to-secret.md"
    if os.environ.get("UPDATE_GOLDEN"):  # regenerate deliberately, then review the diff
        golden.write_text(result.out)
    assert result.out == golden.read_text()


def test_json(repo, flyte_decl):
    result = flyte_decl("diff", "git:base", "git:memory", "--format", "json")
    assert result.code == 1, result.err
    source = {"layer": "overrides[0]", "file": "memory:environments.yaml", "line": 21}
    was = {"layer": "overrides[0]", "file": "base:environments.yaml", "line": 21}
    change = {
        "subject": "env2.square",
        "kind": "task",
        "old": "250Mi",
        "new": "1Gi",
        "source": source,
        "was": was,
    }
    assert json.loads(result.out) == {
        "old": "git:base",
        "new": "git:memory",
        "changed": True,
        "changes": [
            {**change, "path": "resources.memory.request"},
            {**change, "path": "resources.memory.limit"},
        ],
        "added": {"environments": [], "tasks": []},
        "removed": {"environments": [], "tasks": []},
        "renamed": [],
        "risks": [
            {
                "subject": "env2.square",
                "kind": "memory_doubled",
                "message": "memory more than doubled (250Mi -> 1Gi)",
            }
        ],
        "summary": "2 task settings changed in 1 task; 1 risk to review",
    }


def test_working_tree_file_against_a_revision(repo, tmp_path, flyte_decl):
    config = tmp_path / "environments.yaml"
    text = config.read_text().replace("1024Mi", "2Gi").replace("task_queue: spot", "task_queue: default")
    config.write_text(text.replace("    timeout: 30\n", ""))
    result = flyte_decl("diff", "git:secret", "environments.yaml")
    assert result.code == 1, result.err
    assert result.out.splitlines() == [
        "env2.cube    queue                     spot -> default  (environment env2, environments.yaml:10)",
        "env2.cube    timeout                   30 -> unset      (was environment env2, secret:environments.yaml:9)",
        "env2.square  resources.memory.request  1024Mi -> 2Gi    (overrides[0], environments.yaml:20)",
        "env2.square  resources.memory.limit    1024Mi -> 2Gi    (overrides[0], environments.yaml:20)",
        "env2.square  queue                     spot -> default  (environment env2, environments.yaml:10)",
        "env2.square  timeout                   30 -> unset      (was environment env2, secret:environments.yaml:9)",
        "",
        "risks:",
        "  env2.cube: queue changed (spot -> default)",
        "  env2.cube: timeout removed (was 30)",
        "  env2.square: queue changed (spot -> default)",  # exactly doubled memory is not a risk
        "  env2.square: timeout removed (was 30)",
        "",
        "git:secret -> environments.yaml: 6 task settings changed in 2 tasks; 4 risks to review",
    ]


def test_explicit_path_at_a_revision_equals_the_discovered_one(repo, flyte_decl):
    # A path is relative to the repository root, or to the working directory with ./ (as in git).
    implicit = flyte_decl("diff", "git:base", "git:memory", "--format", "json")
    explicit = flyte_decl(
        "diff", "git:base:environments.yaml", "git:memory:./environments.yaml", "--format", "json"
    )
    assert explicit.code == implicit.code == 1
    assert json.loads(explicit.out)["changes"][0]["source"]["file"] == "memory:./environments.yaml"
    assert json.loads(explicit.out)["summary"] == json.loads(implicit.out)["summary"]


def test_profile_is_applied_to_both_sides(write, flyte_decl):
    config = """
        version: 1
        environments:
          env1: {tasks: {train: {fn: "m:train"}}}
        profiles:
          prod: {environments: {env1: {resources: {cpu: %s}}}}
        """
    write(config % "1", "old.yaml")
    write(config % "4", "new.yaml")
    assert flyte_decl("diff", "old.yaml", "new.yaml").out == "old.yaml -> new.yaml: no effective changes\n"
    result = flyte_decl("diff", "old.yaml", "new.yaml", "--profile", "prod")
    assert result.code == 1
    assert result.out.splitlines()[:2] == [
        "env1.train  resources.cpu.request  1 -> 4  (profile prod, new.yaml:5)",
        "env1.train  resources.cpu.limit    1 -> 4  (profile prod, new.yaml:5)",
    ]
    assert "  env1.train: cpu more than doubled (1 -> 4)" in result.out.splitlines()


ERRORS = [
    pytest.param(
        ("git:nope", "environments.yaml"),
        "error: git:nope: unknown git revision 'nope' "
        "(check it with `git log --oneline --all`; a shallow CI checkout needs the revision fetched)",
        id="bad-revision",
    ),
    pytest.param(
        ("git:base", "missing.yaml"),
        "error: missing.yaml: file not found (give a config file, or git:REV[:PATH] for one at a git revision)",
        id="missing-file",
    ),
    pytest.param(
        ("git:base:conf/environments.yaml", "environments.yaml"),
        "error: git:base:conf/environments.yaml: no file 'conf/environments.yaml' at revision base "
        "(list the files with `git ls-tree -r --name-only base`)",
        id="missing-file-at-revision",
    ),
    pytest.param(
        ("git:empty", "environments.yaml"),
        "error: git:empty: no config at revision empty (searched environments.yaml, environments.yml, "
        "environments.toml, [tool.flyte-decl] in pyproject.toml; name it: git:empty:PATH)",
        id="no-config-at-revision",
    ),
    pytest.param(
        ("git:HEAD", "environments.yaml"),
        "HEAD:environments.yaml:4:17: error: environments.env1.resources.memery: unknown key "
        "(did you mean 'memory'?)",
        id="invalid-config-at-revision",
    ),
    pytest.param(
        ("git:", "environments.yaml"),
        "error: git:: no revision given (write git:REV or git:REV:PATH, e.g. git:HEAD~1)",
        id="no-revision",
    ),
    pytest.param(
        ("git:base", "environments.yaml", "--profile", "prod"),
        "error: git:base: unknown profile 'prod' (the config declares no profiles)",
        id="unknown-profile",
    ),
    pytest.param(
        ("git:base", "environments.yaml", "--format", "html"),
        "error: Invalid value for '--format': 'html' is not one of 'text', 'markdown', 'json'. "
        "(see 'flyte-decl diff --help')",
        id="bad-format",
    ),
]


@pytest.mark.parametrize(("args", "message"), ERRORS)
def test_errors_are_one_line_and_exit_2(repo, flyte_decl, args, message):
    result = flyte_decl("diff", *args)
    assert (result.code, result.out, result.err) == (2, "", message + "\n")


def test_invalid_file_side(repo, write, flyte_decl):
    write("version: 1\nenvironments:\n  env1: {queue: spto}\n", "bad.yaml")
    result = flyte_decl("diff", "bad.yaml", "git:base")
    assert (result.code, result.out) == (2, "")
    assert result.err == (
        "bad.yaml:3:17: error: environments.env1.queue: unknown queue 'spto' (expected one of: default)\n"
    )


def test_outside_a_git_repository(isolated_git, write, flyte_decl):
    write("version: 1\n")
    result = flyte_decl("diff", "git:HEAD", "environments.yaml")
    assert (result.code, result.out) == (2, "")
    assert result.err == (
        "error: git:HEAD: not inside a git repository (run flyte-decl diff in the repository, or compare files)\n"
    )
