"""Hostile and surprising inputs: each gets one located line and the right exit code, never a traceback.

Reading (exit 2): integers beyond 64 bits, deep nesting, alias and merge-key bombs, files that are not
regular files. Values (exit 1): every number checked against what the runtime can represent, YAML 1.1
typing quoted as written, `${VAR}` defaults and the variable named, one error per mistake.
"""

import os
import subprocess
import sys
import time

import pytest

from flyte_decl.spec import OnOOM, RetryPolicy

HEAD = "version: 1\n"
NINES = "9" * 5000
ABOVE_24D = "(the runner's timers wait at most 24 days; write at most 24d)"
BELOW_10M = "(the kernel's smallest CPU quota is 10m (1 ms per 100 ms); write at least 10m, or no limit)"


def validated(write, flyte_decl, text):
    """(exit code, output lines) of `flyte-decl validate` on `text` as environments.yaml."""
    write(text)
    result = flyte_decl("validate")
    return result.code, lines(result)


def lines(result):
    assert "Traceback" not in result.out + result.err
    return (result.out + result.err).splitlines()


# --------------------------------------------------------------------------- reading: exit 2

UNREADABLE = [
    pytest.param(
        "environments.yaml",
        HEAD + f"defaults:\n  retries: {NINES}\n",
        "environments.yaml:3:12: error: defaults.retries: integer 999999999999...999999 (5,000 characters) "
        "is out of range (integers are at most 9,223,372,036,854,775,807)",
        id="yaml-int-of-5000-digits",
    ),
    pytest.param(
        "environments.yaml",
        HEAD + "defaults:\n  retries: 9223372036854775808\n",
        "environments.yaml:3:12: error: defaults.retries: integer 9223372036854775808 is out of range "
        "(integers are at most 9,223,372,036,854,775,807)",
        id="yaml-int-above-64-bits",
    ),
    pytest.param(
        "environments.toml",
        f"version = 1\n[defaults]\nretries = {NINES}\n",
        "environments.toml:3:11: error: integer 999999999999...999999 (5,000 characters) is out of range "
        "(integers are at most 9,223,372,036,854,775,807)",
        id="toml-int-of-5000-digits",
    ),
    pytest.param(
        "environments.toml",
        "version = 1\n[defaults]\nretries = 99999999999999999999\n",
        "environments.toml:3:11: error: defaults.retries: integer 99999999999999999999 is out of range "
        "(integers are at most 9,223,372,036,854,775,807)",
        id="toml-int-above-64-bits",
    ),
    pytest.param(
        "environments.toml",
        "version = 1\nx = " + "[" * 700 + "]" * 700 + "\n",
        "environments.toml:2:37: error: nested more than 32 levels deep (flatten the structure)",
        id="toml-nested-arrays",
    ),
    pytest.param(
        "environments.toml",
        "version = 1\nx = " + "[" * 40 + "]" * 40 + "\n",
        "environments.toml:2:37: error: nested more than 32 levels deep (flatten the structure)",
        id="toml-nested-below-the-recursion-limit",
    ),
    pytest.param(
        "environments.yaml",
        HEAD + "x: " + "[" * 40 + "]" * 40 + "\n",
        "environments.yaml:2:36: error: x"
        + "[0]" * 32
        + ": nested more than 32 levels deep (flatten the structure)",
        id="yaml-nested-lists",
    ),
]


@pytest.mark.parametrize(("name", "text", "expected"), UNREADABLE)
def test_unreadable_values_are_one_located_line_exit_2(write, flyte_decl, name, text, expected):
    write(text, name)
    result = flyte_decl("validate", "-c", name)
    assert result.code == 2
    assert lines(result) == [expected]


def test_merge_keys_count_against_the_expansion_cap(write, flyte_decl):
    # Each level merges the one before ten times: 10**30 copied keys, 2.5 KB of text.
    rows = ["version: 1", "x:", "  a0: &a0 {" + ", ".join(f"k{j}: {j}" for j in range(10)) + "}"]
    rows += [f"  a{i}: &a{i} {{<<: [{', '.join([f'*a{i - 1}'] * 10)}], b{i}: 1}}" for i in range(1, 30)]
    write("\n".join(rows) + "\n")
    start = time.monotonic()
    result = flyte_decl("validate")
    assert time.monotonic() - start < 10
    assert result.code == 2
    assert lines(result) == [
        "environments.yaml:3:44: error: aliases expand to more than 100,000 nodes "
        "(this looks like an alias bomb; write the values out)"
    ]


def test_aliases_of_scalars_count_too(write, flyte_decl):
    write(HEAD + "a: &a [" + ", ".join(["x"] * 1000) + "]\nb: [" + ", ".join(["*a"] * 200) + "]\n")
    result = flyte_decl("validate")
    assert result.code == 2
    assert "aliases expand to more than 100,000 nodes" in result.err


def test_a_fifo_or_device_is_refused_without_reading(tmp_path, flyte_decl):
    os.mkfifo(tmp_path / "pipe.yaml")
    result = flyte_decl("validate", "-c", "pipe.yaml")  # would block forever if opened for a read
    assert result.code == 2
    assert lines(result) == [
        "pipe.yaml: error: is not a regular file (name a .yaml or .toml file, not a pipe or device)"
    ]
    result = flyte_decl("validate", "-c", "/dev/zero")
    assert result.code == 2
    assert lines(result) == [
        "/dev/zero: error: is not a regular file (name a .yaml or .toml file, not a pipe or device)"
    ]


def test_a_regular_file_that_cannot_be_read_is_one_line(flyte_decl):
    result = flyte_decl("validate", "-c", "/proc/self/mem")  # a regular file by its type; reading it fails
    assert (result.code, lines(result)) == (
        2,
        ["/proc/self/mem: error: cannot read: Input/output error (check the path given to -c/--config)"],
    )


def test_symlink_loop_and_over_long_name(tmp_path, flyte_decl):
    (tmp_path / "loop.yaml").symlink_to(tmp_path / "loop.yaml")
    result = flyte_decl("validate", "-c", "loop.yaml")
    assert result.code == 2
    assert lines(result) == [
        "loop.yaml: error: too many levels of symbolic links (a symlink points to itself; fix the link)"
    ]
    result = flyte_decl("validate", "-c", "x" * 5000 + ".yaml")
    assert result.code == 2
    assert lines(result) == [
        "x" * 60 + "...: error: file name too long (check the path given to -c/--config)"
    ]


def test_invalid_utf8_is_located(tmp_path, flyte_decl):
    (tmp_path / "environments.yaml").write_bytes(b"version: 1\nx: caf\xe9\n")
    result = flyte_decl("validate")
    assert result.code == 2
    assert lines(result) == [
        "environments.yaml:2:7: error: not UTF-8 text (invalid continuation byte) (save the file as UTF-8)"
    ]


# --------------------------------------------------------------------------- values: exit 1

OUT_OF_RANGE = [
    pytest.param(
        HEAD + 'defaults:\n  max_inline_io_bytes: "1e1000000"\n',
        "environments.yaml:3:24: error: defaults.max_inline_io_bytes: max_inline_io_bytes '1e1000000' "
        "is above the maximum of 1Ei (write at most 1Ei)",
        id="inline-io-1e1000000",
    ),
    pytest.param(
        HEAD + 'capacity: {memory: "1e999999"}\n',
        "environments.yaml:2:20: error: capacity.memory: memory '1e999999' is above the maximum of 1Ei "
        "(write at most 1Ei)",
        id="capacity-1e999999-is-not-computed",
    ),
    pytest.param(
        HEAD + "defaults:\n  resources: {cpu: 1e40}\n",
        "environments.yaml:3:20: error: defaults.resources.cpu: cpu '1e40' is above the maximum of 100000 cores "
        "(write at most 100000)",
        id="cpu-above-maximum",
    ),
    pytest.param(
        HEAD + "defaults:\n  resources: {memory: 2Ei}\n",
        "environments.yaml:3:23: error: defaults.resources.memory: memory '2Ei' is above the maximum of 1Ei "
        "(write at most 1Ei)",
        id="memory-above-maximum",
    ),
    pytest.param(
        HEAD + "defaults:\n  timeout: 30d\n",
        f"environments.yaml:3:12: error: defaults.timeout: duration '30d' is above the maximum of 24d {ABOVE_24D}",
        id="timeout-30d",
    ),
    pytest.param(
        HEAD + "defaults:\n  timeout: 99999999999\n",
        f"environments.yaml:3:12: error: defaults.timeout: duration 99999999999 is above the maximum of 24d "
        f"{ABOVE_24D}",
        id="timeout-in-seconds",
    ),
    pytest.param(
        HEAD + "defaults:\n  retries: {count: 1, backoff: 24d1s}\n",
        f"environments.yaml:3:32: error: defaults.retries.backoff: duration '24d1s' is above the maximum of 24d "
        f"{ABOVE_24D}",
        id="backoff",
    ),
    pytest.param(
        HEAD + "defaults:\n  reusable: {idle_ttl: 999999999999h}\n",
        "environments.yaml:3:24: error: defaults.reusable.idle_ttl: duration '999999999999h' is above the "
        f"maximum of 24d {ABOVE_24D}",
        id="idle-ttl",
    ),
    pytest.param(
        HEAD + "defaults:\n  retries: {count: 1, on_oom: {memory: 0.5x, max: 9Ei}}\n",
        "environments.yaml:3:40: error: defaults.retries.on_oom.memory: growth factor '0.5x' is out of range "
        "(write a factor above 1x and at most 1024x, e.g. 2x)",
        id="oom-growth-factor",
    ),
    pytest.param(
        HEAD + 'defaults:\n  resources: {gpu: "A100:' + NINES + '"}\n',
        f"environments.yaml:3:20: error: defaults.resources.gpu: 'A100:{NINES}' is not a valid value "
        "(write a count, or an accelerator and a count such as 'A100:2')",
        id="gpu-count",
    ),
]


@pytest.mark.parametrize(("text", "expected"), OUT_OF_RANGE)
def test_values_beyond_what_the_runtime_represents(write, flyte_decl, text, expected):
    write(text)
    result = flyte_decl("validate")
    assert result.code == 1
    assert expected in lines(result), result.out


def test_on_oom_max_above_the_maximum(write, flyte_decl):
    write(HEAD + "defaults:\n  retries: {count: 1, on_oom: {memory: 2x, max: 9Ei}}\n")
    result = flyte_decl("validate")
    assert lines(result)[0] == (
        "environments.yaml:3:49: error: defaults.retries.on_oom.max: memory '9Ei' is above the maximum of 1Ei "
        "(write at most 1Ei)"
    )


def test_wrong_types_inside_request_and_limit(write, flyte_decl):
    write(
        HEAD + "defaults:\n  resources:\n    cpu: {request: [1], limit: {a: 1}}\n"
        '    memory: {request: "1e401", limit: ""}\n'
    )
    result = flyte_decl("validate")
    assert result.code == 1
    assert lines(result) == [
        "environments.yaml:4:20: error: defaults.resources.cpu.request: must be an integer or a number or a "
        "string, got a list",
        "environments.yaml:4:32: error: defaults.resources.cpu.limit: must be an integer or a number or a "
        "string, got a mapping",
        "environments.yaml:5:23: error: defaults.resources.memory.request: memory '1e401' is above the maximum "
        "of 1Ei (write at most 1Ei)",
        "environments.yaml:5:39: error: defaults.resources.memory.limit: '' is not a quantity "
        "(write a number with an optional suffix: 500m, 1, 0.5, 250Mi, 1.5Gi, 2G)",
        "4 errors",
    ]


def test_an_invalid_limit_is_one_error_not_two(write, flyte_decl):
    assert validated(
        write, flyte_decl, HEAD + "defaults:\n  resources:\n    memory: {request: 1Gi, limit: 2GB}\n"
    ) == (
        1,
        [
            "environments.yaml:4:35: error: defaults.resources.memory.limit: '2GB' is not a quantity "
            "(suffixes are case-sensitive: use G or Gi)",
            "1 error",
        ],
    )


def test_a_thousand_long_extends_chain_resolves(write, flyte_decl):
    chain = "".join(f"  e{i}:\n    extends: e{i + 1}\n" for i in range(999))
    write(HEAD + "environments:\n" + chain + "  e999:\n    timeout: 5s\n    tasks: {t: {fn: 'm:f'}}\n")
    result = flyte_decl("validate")
    assert lines(result)[0] == "ok: 1 task in 1000 environments"


def test_a_thousand_long_extends_cycle_is_one_line(write, flyte_decl):
    chain = "".join(f"  e{i}:\n    extends: e{(i + 1) % 1000}\n" for i in range(1000))
    assert validated(write, flyte_decl, HEAD + "environments:\n" + chain) == (
        1,
        [
            "environments.yaml:4:14: error: environments.e0.extends: extends cycle: "
            "e0 -> e1 -> e2 -> e3 -> ... 994 more ... -> e998 -> e999 -> e0 (remove one 'extends' link of the cycle)",
            "1 error",
        ],
    )


def test_set_values_are_read_by_the_file_rules(write, flyte_decl):
    write(HEAD + "environments:\n  env1:\n    tasks: {t: {fn: 'm:f'}}\n")
    result = flyte_decl("explain", "t", "--set", f"retries={NINES}")
    assert result.code == 2
    assert lines(result) == [
        "<cli --set>: error: retries: integer 999999999999...999999 (5,000 characters) is out of range "
        "(integers are at most 9,223,372,036,854,775,807)"
    ]
    result = flyte_decl(
        "explain", "t", "--set", "timeout=1:30", "--set", "resources.cpu=5m", "--set", "x" * 200
    )
    assert result.code == 2
    assert lines(result) == [
        f"<cli --set>: error: {'x' * 200}: expected PATH=VALUE (e.g. --set resources.memory=1Gi)"
    ]
    result = flyte_decl("explain", "t", "--set", "timeout=1:30", "--set", "resources.cpu=5m")
    assert result.code == 2
    assert lines(result) == [
        "<cli --set>: error: timeout: YAML 1.1 reads '1:30' as 90 (write 90 if you mean 90, or quote it: \"1:30\")",
        f"<cli --set>: error: resources.cpu: cpu limit '5m' is below the minimum of 10m that can be enforced {BELOW_10M}",
    ]


def test_runtime_delays_and_growth_stay_representable():
    assert RetryPolicy(count=5000, backoff=1.0).delay(4999) == 24 * 86400
    assert RetryPolicy(count=3, backoff=1.0).delay(3) == 4.0
    assert OnOOM(factor=1024.0).grow(2**59) == 2**60


# --------------------------------------------------------------------------- values the user did not write


def test_yaml_11_typing_never_silently_changes_a_value(write, flyte_decl):
    write(
        HEAD + "defaults:\n  cache: off\n  interruptible: on\n  timeout: 1:30\n  retries: 010\n"
        "  max_inline_io_bytes: 0x400\nenvironments:\n  env1:\n    reusable: off\n    description: 3.10\n"
        "    resources: {cpu: 0755}\n    tasks:\n      t: {fn: 'm:f', retries: {count: 1_000}}\n"
    )
    result = flyte_decl("validate")
    assert result.code == 1
    assert lines(result) == [
        "environments.yaml:3:10: error: defaults.cache: must be 'auto', 'override' or 'disable', got 'off'",
        "environments.yaml:4:18: error: defaults.interruptible: YAML 1.1 reads 'on' as true "
        '(write true if you mean true, or quote it: "on")',
        "environments.yaml:5:12: error: defaults.timeout: YAML 1.1 reads '1:30' as 90 "
        '(write 90 if you mean 90, or quote it: "1:30")',
        "environments.yaml:6:12: error: defaults.retries: YAML 1.1 reads '010' as 8 "
        '(write 8 if you mean 8, or quote it: "010")',
        "environments.yaml:7:24: error: defaults.max_inline_io_bytes: YAML 1.1 reads '0x400' as 1024 "
        '(write 1024 if you mean 1024, or quote it: "0x400")',
        'environments.yaml:10:15: error: environments.env1.reusable: must be a mapping, got a boolean (quote it: "off")',
        "environments.yaml:11:18: error: environments.env1.description: must be a string, got a float "
        '(quote it: "3.10")',
        "environments.yaml:12:22: error: environments.env1.resources.cpu: YAML 1.1 reads '0755' as 493 "
        '(write 493 if you mean 493, or quote it: "0755")',
        "environments.yaml:14:39: error: environments.env1.tasks.t.retries.count: YAML 1.1 reads '1_000' as 1000 "
        '(write 1000 if you mean 1000, or quote it: "1_000")',
        "9 errors",
    ]


def test_env_vars_hint_quotes_the_text_as_written(write, flyte_decl):
    write(
        HEAD + "environments:\n  env1:\n    env_vars:\n      PY_VERSION: 3.10\n      FEATURE_X: YES\n"
        "      DEBUG: on\n      UMASK: 0755\n      START: 1:30\n    tasks:\n      show: {fn: 'mod:show'}\n"
    )
    result = flyte_decl("validate")
    assert result.code == 1
    prefix = "error: environments.env1.env_vars"
    assert lines(result) == [
        f'environments.yaml:5:19: {prefix}.PY_VERSION: must be a string, got a float (quote it: "3.10")',
        f'environments.yaml:6:18: {prefix}.FEATURE_X: must be a string, got a boolean (quote it: "YES")',
        f'environments.yaml:7:14: {prefix}.DEBUG: must be a string, got a boolean (quote it: "on")',
        f'environments.yaml:8:14: {prefix}.UMASK: must be a string, got an integer (quote it: "0755")',
        f'environments.yaml:9:14: {prefix}.START: must be a string, got an integer (quote it: "1:30")',
        "5 errors",
    ]


def test_cpu_limit_below_what_the_kernel_enforces(write, flyte_decl):
    write(
        HEAD
        + "environments:\n  sidecar:\n    resources: {cpu: 5m}\n    tasks:\n      spin: {fn: 'mod:spin'}\n"
        "  zero:\n    resources: {cpu: 0}\n  pair:\n    resources: {cpu: {request: 5m, limit: 9m}}\n"
        "  fine:\n    resources: {cpu: {request: 1m, limit: 10m}}\n"
    )
    result = flyte_decl("validate")
    assert result.code == 1
    assert lines(result) == [
        "environments.yaml:4:22: error: environments.sidecar.resources.cpu: cpu limit '5m' is below the minimum "
        f"of 10m that can be enforced {BELOW_10M}",
        "environments.yaml:8:22: error: environments.zero.resources.cpu: cpu limit 0 is below the minimum "
        f"of 10m that can be enforced {BELOW_10M}",
        "environments.yaml:10:43: error: environments.pair.resources.cpu.limit: cpu limit '9m' is below the "
        f"minimum of 10m that can be enforced {BELOW_10M}",
        "3 errors",
    ]


INTERPOLATED = HEAD + (
    "environments:\n  env1:\n"
    '    resources: {memory: "${FD_MEM:-300Mi}", cpu: "${FD_CPU-2}"}\n'
    '    env_vars: {LEVEL: "${FD_LEVEL:-info}", OTHER: "${FD_OTHER-x}"}\n'
    "    tasks: {t: {fn: 'm:f'}}\n"
)


def test_interpolation_defaults_follow_shell_semantics(write, flyte_decl, monkeypatch):
    write(INTERPOLATED)
    for name in ("FD_MEM", "FD_LEVEL", "FD_OTHER"):
        monkeypatch.setenv(name, "")
    monkeypatch.delenv("FD_CPU", raising=False)
    result = flyte_decl("explain", "t", "--format", "json")
    assert result.code == 0, result
    fields = {f["path"]: f["value"] for f in __import__("json").loads(result.out)["fields"]}
    assert fields["resources.memory.limit"] == "300Mi"  # `:-` on an empty variable
    assert fields["resources.cpu.limit"] == "2"  # `-` on an unset variable
    assert fields["env_vars.LEVEL"] == "info"
    assert fields["env_vars.OTHER"] == ""  # `-` keeps an empty variable


def test_an_invalid_interpolated_value_names_the_variable(write, flyte_decl, monkeypatch):
    write(INTERPOLATED)
    monkeypatch.setenv("FD_MEM", "1gi")
    monkeypatch.setenv("FD_CPU", "")
    result = flyte_decl("validate")
    assert result.code == 1
    assert lines(result) == [
        "environments.yaml:4:25: error: environments.env1.resources.memory: '1gi' is not a quantity "
        "(suffixes are case-sensitive: use Gi; the value comes from ${FD_MEM})",
        "environments.yaml:4:50: error: environments.env1.resources.cpu: '' is not a quantity "
        "(write a number with an optional suffix: 500m, 1, 0.5, 250Mi, 1.5Gi, 2G; "
        "the value comes from ${FD_CPU} (set but empty))",
        "2 errors",
    ]


MERGED = HEAD + (
    "environments:\n  base: &base\n    resources: {cpu: 1, memory: 300Mi}\n    tasks:\n      a: {fn: 'mod:a'}\n"
    "  gpu:\n    resources: {cpu: 2, memory: %s}\n    <<: *base\n    tasks:\n      b: {fn: 'mod:b'}\n"
)


def test_merge_keys_keep_the_lines_of_values_written_beside_them(write, flyte_decl):
    write(MERGED % "1gi")
    result = flyte_decl("validate")
    assert lines(result)[0] == (
        "environments.yaml:8:33: error: environments.gpu.resources.memory: '1gi' is not a quantity "
        "(suffixes are case-sensitive: use Gi)"
    )
    write(MERGED % "1Gi")
    result = flyte_decl("explain", "gpu.b")
    assert "  resources.cpu.request     2        environment gpu (environments.yaml:8)" in lines(result)


def test_merged_keys_keep_the_anchor_lines(write, flyte_decl):
    write(
        HEAD + "environments:\n  base: &base {timeout: 5s}\n  env1:\n    <<: *base\n"
        "    tasks: {t: {fn: 'm:f'}}\n"
    )
    result = flyte_decl("explain", "t")
    assert "  timeout              5s       environment env1 (environments.yaml:3)" in lines(result)


# --------------------------------------------------------------------------- encodings


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("environments.toml", 'version = 1\n\n[environments.env1.tasks.t]\nfn = "mod:t"\n'),
        ("environments.yaml", "version: 1\nenvironments:\n  env1:\n    tasks: {t: {fn: 'mod:t'}}\n"),
        (
            "pyproject.toml",
            '[tool.flyte-decl]\nversion = 1\n\n[tool.flyte-decl.environments.env1.tasks.t]\nfn = "mod:t"\n',
        ),
    ],
)
def test_a_byte_order_mark_is_accepted(tmp_path, flyte_decl, name, text):
    (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + text.encode())
    result = flyte_decl("validate", "-c", name)
    assert result.code == 0
    assert lines(result)[0] == "ok: 1 task in 1 environment"


# --------------------------------------------------------------------------- through `run`, as users hit them


def run_cli(cwd, *args, **env):
    environ = {**os.environ, **env}
    result = subprocess.run(
        [sys.executable, "-m", "flyte_decl", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def test_an_exported_but_empty_variable_takes_the_default(write, tmp_path):
    write("import os\n\ndef show() -> str:\n    return os.environ['LOG_LEVEL']\n", "mod.py")
    write(HEAD + "environments:\n  env1:\n    env_vars:\n      LOG_LEVEL: '${LOG_LEVEL:-info}'\n"
          "    tasks:\n      show: {fn: 'mod:show'}\n")  # fmt: skip
    result = run_cli(tmp_path, "run", "show", LOG_LEVEL="")
    assert result.returncode == 0, result.stderr
    assert result.stdout == '"info"\n'


def test_run_refuses_a_timeout_beyond_what_it_can_wait(write, tmp_path):
    write("def long_job() -> str:\n    return 'done'\n", "mod.py")
    write(HEAD + "environments:\n  env1:\n    tasks:\n      long_job: {fn: 'mod:long_job', timeout: 30d}\n")
    result = run_cli(tmp_path, "run", "long_job")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "environments.yaml:5:47: error: environments.env1.tasks.long_job.timeout: duration '30d' is above the "
        f"maximum of 24d {ABOVE_24D}"
    ]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            'env = flyte.TaskEnvironment(name="My Env")\n',
            "app.py:2:1: error: Environment name 'My Env' must be in snake_case or kebab-case format.",
        ),
        (
            'env = flyte.TaskEnvironment(name="e", resources=flyte.Resources(cpu="1gi"))\n',
            "app.py:2:1: error: cpu: '1gi' is not a quantity (suffixes are case-sensitive: use Gi)",
        ),
        (
            'def make():\n    return flyte.TaskEnvironment(name="e", queue="a", task_queue="b")\nenv = make()\n',
            "app.py:3:1: error: set either queue or task_queue (an alias), not both",
        ),
        (
            'env = flyte.TaskEnvironment(name="side", resources=flyte.Resources(cpu="5m"))\n'
            "@env.task\ndef main() -> int:\n    return 1\n",
            "app.py:2:1: error: side.resources.cpu: cpu limit '5m' is below the minimum of 10m "
            f"that can be enforced {BELOW_10M}",
        ),
    ],
    ids=["environment-name", "resources", "queue-and-alias", "cpu-below-10m"],
)
def test_declarations_in_code_are_one_located_line(write, tmp_path, code, expected):
    write("import flyte_decl as flyte\n" + code, "app.py")
    result = run_cli(tmp_path, "run", "app.py", "main")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [expected]


def test_a_value_copied_by_a_merge_key_is_reported_once(write, flyte_decl):
    assert validated(
        write,
        flyte_decl,
        HEAD + f"defaults: &defaults\n  resources: {NINES}\nenvironments:\n  e0:\n    <<: *defaults\n",
    ) == (
        2,
        [
            "environments.yaml:3:14: error: defaults.resources: integer 999999999999...999999 (5,000 characters) "
            "is out of range (integers are at most 9,223,372,036,854,775,807)"
        ],
    )


def test_a_control_character_is_one_located_line(write, flyte_decl):
    assert validated(write, flyte_decl, "\x1fversion: 1\n") == (
        2,
        [
            "environments.yaml:1:1: error: invalid YAML: character '\\x1f' is not allowed "
            "(remove it, or write it as an escape inside double quotes)"
        ],
    )


def test_depends_on_of_the_wrong_type_is_one_error(write, flyte_decl):
    assert validated(write, flyte_decl, HEAD + "environments:\n  e0:\n    depends_on: -1\n") == (1, [
        "environments.yaml:4:17: error: environments.e0.depends_on: must be a list, got an integer",
        "1 error",
    ])  # fmt: skip


def test_settings_declared_in_code_are_checked_by_the_file_rules(write, tmp_path):
    write(
        "from datetime import timedelta\nimport flyte_decl as flyte\nenv = flyte.TaskEnvironment(name='e')\n\n"
        "@env.task(timeout=timedelta(days=30))\ndef main() -> int:\n    return 1\n",
        "app.py",
    )
    result = run_cli(tmp_path, "run", "app.py", "main")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"app.py:5:1: error: e.main.timeout: duration 2592000.0 is above the maximum of 24d {ABOVE_24D}"
    ]
