"""One invalid config per rule: the exact `FILE:LINE:COL: error: PATH: message (hint)` and exit code."""

import json

import pytest

HEAD = "version: 1\n"

CASES = [
    pytest.param(
        HEAD + "environments:\n  env1:\n    resources: {memery: 1Gi}\n",
        "environments.yaml:4:17: error: environments.env1.resources.memery: unknown key (did you mean 'memory'?)",
        id="unknown-key-did-you-mean",
    ),
    pytest.param(
        HEAD + "environmnts: {}\n",
        "environments.yaml:2:1: error: environmnts: unknown key (did you mean 'environments'?)",
        id="unknown-top-level-key",
    ),
    pytest.param(
        "environments: {}\n",
        "environments.yaml:1:1: error: version: missing required key 'version'",
        id="missing-version",
    ),
    pytest.param(
        "version: 2\n",
        "environments.yaml:1:10: error: version: must be 1, got 2",
        id="wrong-version",
    ),
    pytest.param(
        HEAD + "environments:\n  Env1: {}\n",
        "environments.yaml:3:3: error: environments.Env1: 'Env1' is not a valid name "
        "(use lower-case letters and digits joined by single '-' or '_', e.g. 'gpu-pool')",
        id="environment-name-pattern",
    ),
    pytest.param(
        HEAD + "environments:\n  env1:\n    extends: env3\n  env2: {}\n",
        "environments.yaml:4:14: error: environments.env1.extends: unknown environment 'env3' (did you mean 'env2'?)",
        id="unknown-extends",
    ),
    pytest.param(
        HEAD + "environments:\n  env1:\n    depends_on: [gpu]\n",
        "environments.yaml:4:18: error: environments.env1.depends_on[0]: unknown environment 'gpu' "
        "(expected one of: env1)",
        id="unknown-depends-on",
    ),
    pytest.param(
        HEAD + "queues:\n  spot: {}\nenvironments:\n  env1:\n    queue: spto\n",
        "environments.yaml:6:12: error: environments.env1.queue: unknown queue 'spto' (did you mean 'spot'?)",
        id="unknown-queue",
    ),
    pytest.param(
        HEAD + "environments:\n  a:\n    extends: b\n  b:\n    extends: a\n",
        "environments.yaml:4:14: error: environments.a.extends: extends cycle: a -> b -> a "
        "(remove one 'extends' link of the cycle)",
        id="extends-cycle",
    ),
    pytest.param(
        HEAD + "environments:\n  a:\n    depends_on: [a]\n",
        "environments.yaml:4:17: error: environments.a.depends_on: depends_on cycle: a -> a "
        "(remove one 'depends_on' link of the cycle)",
        id="depends-on-cycle",
    ),
    pytest.param(
        HEAD + "defaults:\n  resources:\n    memory: {request: 2Gi, limit: 1Gi}\n",
        "environments.yaml:4:23: error: defaults.resources.memory.request: request 2Gi is above the limit 1Gi "
        "(a request cannot exceed its limit; lower the request or raise the limit)",
        id="request-above-limit",
    ),
    pytest.param(
        HEAD + "defaults:\n  resources: {memory: 1K}\n",
        "environments.yaml:3:23: error: defaults.resources.memory: '1K' is not a quantity "
        "(suffixes are case-sensitive: use k (10^3) or Ki (2^10))",
        id="quantity-1K",
    ),
    pytest.param(
        HEAD + "defaults:\n  resources: {memory: 1gi}\n",
        "environments.yaml:3:23: error: defaults.resources.memory: '1gi' is not a quantity "
        "(suffixes are case-sensitive: use Gi)",
        id="quantity-1gi",
    ),
    pytest.param(
        HEAD + "defaults:\n  resources: {memory: 250MB}\n",
        "environments.yaml:3:23: error: defaults.resources.memory: '250MB' is not a quantity "
        "(suffixes are case-sensitive: use M or Mi)",
        id="quantity-250MB",
    ),
    pytest.param(
        HEAD + "defaults:\n  resources: {memory: 2 Gi}\n",
        "environments.yaml:3:23: error: defaults.resources.memory: '2 Gi' is not a quantity "
        "(remove the spaces, e.g. '2Gi')",
        id="quantity-space",
    ),
    pytest.param(
        HEAD + "defaults:\n  resources: {memory: 1024}\n",
        "environments.yaml:3:23: error: defaults.resources.memory: memory 1024 is a bare number, "
        "which means 1024 bytes (write a unit, e.g. '1Gi' or '512Mi')",
        id="memory-bare-integer",
    ),
    pytest.param(
        HEAD + "defaults:\n  resources: {memory: 500m}\n",
        "environments.yaml:3:23: error: defaults.resources.memory: memory '500m' is in milli-bytes "
        "('m' means 1/1000 of a byte; write 500M or 500Mi)",
        id="memory-millibytes",
    ),
    pytest.param(
        HEAD + "defaults:\n  resources: {cpu: 2Gi}\n",
        "environments.yaml:3:20: error: defaults.resources.cpu: cpu '2Gi' uses a memory unit "
        "(cpu is in cores: 1, 0.5 or '500m')",
        id="cpu-memory-unit",
    ),
    pytest.param(
        HEAD + "defaults:\n  timeout: 5x\n",
        "environments.yaml:3:12: error: defaults.timeout: '5x' is not a duration (e.g. 30s, 5m, 1h30m, 250ms or 30)",
        id="bad-duration",
    ),
    pytest.param(
        HEAD + "defaults:\n  env_vars: {1BAD: x}\n",
        "environments.yaml:3:14: error: defaults.env_vars.1BAD: '1BAD' is not a valid name "
        "(variable names use letters, digits and '_', not starting with a digit)",
        id="env-var-name",
    ),
    pytest.param(
        HEAD + "defaults:\n  env_vars: {PORT: 8080}\n",
        'environments.yaml:3:20: error: defaults.env_vars.PORT: must be a string, got an integer (quote it: "8080")',
        id="env-var-value-type",
    ),
    pytest.param(
        HEAD + "environments:\n  env1:\n    tasks:\n      t: {timeout: 1s}\n",
        "environments.yaml:5:7: error: environments.env1.tasks.t.fn: missing required key 'fn' "
        "(bind the task to a function, e.g. fn: 'hello:square')",
        id="task-without-fn",
    ),
    pytest.param(
        HEAD + "environments:\n  env1:\n    tasks:\n      t: {fn: 'not a path'}\n",
        "environments.yaml:5:15: error: environments.env1.tasks.t.fn: 'not a path' is not a valid value "
        "(write 'package.module:function' or 'package.module.function')",
        id="fn-pattern",
    ),
    pytest.param(
        HEAD + "defaults:\n  queue: default\n  task_queue: default\n",
        "environments.yaml:4:3: error: defaults.task_queue: both 'queue' and its alias 'task_queue' are set "
        "(keep only 'queue')",
        id="queue-and-alias",
    ),
    pytest.param(
        HEAD + "defaults:\n  cache: always\n",
        "environments.yaml:3:10: error: defaults.cache: must be 'auto', 'override' or 'disable', got 'always'",
        id="cache-literal",
    ),
    pytest.param(
        HEAD + "defaults:\n  retries: {count: 2, on_oom: {memory: +1gi}}\n",
        "environments.yaml:3:40: error: defaults.retries.on_oom.memory: '1gi' is not a quantity "
        "(suffixes are case-sensitive: use Gi)",
        id="on-oom-quantity",
    ),
    pytest.param(
        HEAD + "environments:\n  env1: {description: 3}\n",
        'environments.yaml:3:23: error: environments.env1.description: must be a string, got an integer (quote it: "3")',
        id="wrong-type",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_each_rule_reports_its_exact_location_and_message(write, flyte_decl, text, expected):
    write(text)
    result = flyte_decl("validate")
    assert result.code == 1, result
    assert expected in result.out.splitlines(), result.out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "version: 1\nx:\n\tb: 1\n",
            "environments.yaml:3:1: error: invalid YAML: found character that cannot start "
            "any token (indent with spaces; YAML does not allow tabs for indentation)",
        ),
        (
            'version: 1\nx: "abc\n',
            "environments.yaml:2:4: error: invalid YAML: found unexpected end of stream "
            "(this quote is never closed)",
        ),
        ("", "environments.yaml:1:1: error: the file is empty (start with 'version: 1')"),
        (
            "version: 1\nx: !!python/object:os.system {}\n",
            "environments.yaml:2:4: error: x: unsupported YAML tag tag:yaml.org,2002:python/object:os.system "
            "(remove the tag)",
        ),
        (
            "version: 1\nx: ${FLYTE_DECL_TEST_UNSET}\n",
            "environments.yaml:2:4: error: x: environment variable FLYTE_DECL_TEST_UNSET is not set "
            "(export FLYTE_DECL_TEST_UNSET, or give a default: ${FLYTE_DECL_TEST_UNSET:-value})",
        ),
        (
            "version: 1\na: 1\na: 2\n",
            "environments.yaml:3:1: error: a: duplicate key (first defined at line 2; remove one of them)",
        ),
    ],
    ids=["tab", "unclosed-quote", "empty", "python-tag", "unset-variable", "duplicate-key"],
)
def test_unreadable_files_exit_2_with_one_line(write, flyte_decl, text, expected):
    write(text)
    result = flyte_decl("validate")
    assert result.code == 2
    assert result.err.splitlines() == [expected]
    assert "Traceback" not in result.err


def test_all_errors_are_reported_in_one_pass(write, flyte_decl):
    write(
        HEAD + "defaults:\n  resources: {memory: 1gi, cpu: 2Gi}\n  timeout: 5x\nenvironments:\n  env1:\n"
        "    queue: nope\n"
    )
    result = flyte_decl("validate")
    assert result.code == 1
    assert len([line for line in result.out.splitlines() if ": error: " in line]) == 4
    assert result.out.splitlines()[-1] == "4 errors"


def test_warning_for_decimal_memory_and_strict_makes_it_an_error(write, flyte_decl):
    write(HEAD + "defaults:\n  resources: {memory: 2G}\n")
    result = flyte_decl("validate")
    assert result.code == 0
    assert result.out.splitlines() == [
        "environments.yaml:3:23: warning: defaults.resources.memory: '2G' is decimal (2,000,000,000 bytes); "
        "did you mean 2Gi?",
        "ok: 0 tasks in 0 environments (1 warning)",
    ]
    assert flyte_decl("validate", "--strict").code == 1


def test_override_matching_nothing_warns_and_fails_with_strict(write, flyte_decl):
    write(
        HEAD + "environments:\n  env1:\n    tasks: {t: {fn: 'm:f'}}\noverrides:\n"
        "  - match: {environment: env9}\n    set: {timeout: 1s}\n"
    )
    expected = (
        "environments.yaml:6:12: {}: overrides[0].match: selector matches no task "
        "(check the environment and task names; `flyte-decl list` shows them)"
    )
    result = flyte_decl("validate")
    assert result.code == 0 and expected.format("warning") in result.out.splitlines()
    strict = flyte_decl("validate", "--strict")
    assert strict.code == 1 and expected.format("error") in strict.out.splitlines()


def test_alias_bomb_is_refused_quickly(write, flyte_decl):
    lines = ["version: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    write("\n".join(lines) + "\n")
    result = flyte_decl("validate")
    assert result.code == 2
    assert result.err.startswith("environments.yaml:")
    assert (
        "aliases expand to more than 100,000 nodes (this looks like an alias bomb; write the values out)"
        in result.err
    )


def test_oversized_file_is_refused(write, flyte_decl, monkeypatch):
    from flyte_decl.config import read

    monkeypatch.setattr(read, "MAX_FILE_BYTES", 100)
    write(HEAD + "#" * 200 + "\n")
    result = flyte_decl("validate")
    assert result.code == 2
    assert result.err.strip() == (
        "environments.yaml:1:1: error: file is 212 bytes, over the 100-byte limit (split it)"
    )


def test_github_and_json_formats(write, flyte_decl):
    write(HEAD + "environments:\n  env1:\n    resources: {memery: 1Gi}\n")
    github = flyte_decl("validate", "--format", "github")
    assert github.out.strip() == (
        "::error file=environments.yaml,line=4,col=17::environments.env1.resources.memery: unknown key "
        "(did you mean 'memory'?)"
    )
    data = json.loads(flyte_decl("validate", "--format", "json").out)
    assert data["valid"] is False
    assert data["problems"][0] == {
        "file": "environments.yaml",
        "line": 4,
        "col": 17,
        "severity": "error",
        "path": "environments.env1.resources.memery",
        "message": "unknown key",
        "hint": "did you mean 'memory'?",
    }


def test_no_config_is_a_usage_error(flyte_decl):
    result = flyte_decl("validate")
    assert result.code == 2
    assert result.err.strip() == (
        "error: no config found (searched ./environments.yaml, ./environments.yml, ./environments.toml, "
        "[tool.flyte-decl] in ./pyproject.toml); create environments.yaml or pass -c PATH"
    )


def test_check_imports_reports_at_the_fn_line(write, flyte_decl, tmp_path):
    write("def f():\n    pass\nVALUE = 3\n", "mod_for_imports.py")
    write(
        HEAD + "environments:\n  env1:\n    tasks:\n      a: {fn: 'mod_for_imports:f'}\n"
        "      b: {fn: 'mod_for_imports:g'}\n      c: {fn: 'nomod:f'}\n      d: {fn: 'mod_for_imports.VALUE'}\n"
    )
    result = flyte_decl("validate", "--check-imports")
    assert result.code == 1
    assert result.out.splitlines() == [
        "environments.yaml:6:15: error: environments.env1.tasks.b.fn: module 'mod_for_imports' has no attribute 'g' "
        "(expected one of: f)",
        f"environments.yaml:7:15: error: environments.env1.tasks.c.fn: cannot import module 'nomod' (is nomod.py in {tmp_path} or installed?)",
        "environments.yaml:8:15: error: environments.env1.tasks.d.fn: 'mod_for_imports.VALUE' is not callable (it is 'int') "
        "(bind the task to a function)",
        "3 errors",
    ]
