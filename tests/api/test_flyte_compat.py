"""Flyte 2 programs run unchanged: `flyte-decl run prog.py TASK` with `import flyte`, and `python prog.py`
with only the import changed; Flyte's names (init, Image, errors, ctx, group, trace, io) behave as Flyte's.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import flyte_decl as flyte
from flyte_decl import _alias, errors
from flyte_decl._run import ActionOutputs, Outputs
from flyte_decl.runtime.records import ActionFailed, FailureKind

PROGRAMS = Path(__file__).resolve().parent / "programs"


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flyte_decl", *args], cwd=PROGRAMS, capture_output=True,
                          text=True, timeout=120, env={**_env(), "FLYTE_DECL_HOME": str(home)})  # fmt: skip


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != _alias.ENV_AS_FLYTE}


def script(mode: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(PROGRAMS / "changed_import.py"), mode], cwd=home, capture_output=True,
                          text=True, timeout=120, env={**_env(), "FLYTE_DECL_HOME": str(home)})  # fmt: skip


# -- flyte.errors: one table, every failure kind ---------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "message", "cls", "code"),
    [
        (FailureKind.USER_ERROR, "ValueError: no", errors.RuntimeUserError, "ValueError"),
        (
            FailureKind.USER_ERROR,
            "OOMError: env.hog (a3) failed: oom_killed: ...",
            errors.OOMError,
            "OOMError",
        ),
        (FailureKind.OOM_KILLED, "over its memory limit", errors.OOMError, "OOMKilled"),
        (
            FailureKind.TIMED_OUT,
            "ran longer than 1s",
            errors.MaxRuntimeExceededError,
            "MaxRuntimeExceededError",
        ),
        (
            FailureKind.QUEUED_TIMEOUT,
            "waited",
            errors.MaxQueuedTimeExceededError,
            "MaxQueuedTimeExceededError",
        ),
        (FailureKind.DEADLINE_EXCEEDED, "deadline", errors.DeadlineExceededError, "DeadlineExceededError"),
        (
            FailureKind.INLINE_IO_EXCEEDED,
            "inputs are 2Ki",
            errors.InlineIOMaxBytesBreached,
            "InlineIOMaxBytesBreached",
        ),
        (FailureKind.IMPORT_ERROR, "cannot import", errors.ModuleLoadError, "ModuleLoadError"),
        (FailureKind.UNSCHEDULABLE, "queue 'q' is full", errors.RuntimeSystemError, "Unschedulable"),
        (FailureKind.CRASHED, "killed by SIGSEGV", errors.RuntimeSystemError, "Crashed"),
        (None, "its parent ended", errors.ActionAbortedError, "ActionAbortedError"),
    ],
)
def test_every_failure_kind_raises_its_flyte_class(kind, message, cls, code) -> None:
    failure = errors.child_failure("env.t", "a2", kind, message)
    assert isinstance(failure, cls) and isinstance(failure, ActionFailed)
    assert type(failure).__name__ == cls.__name__
    assert failure.code == code and failure.kind == kind and failure.task == "env.t"
    assert failure.summary == f"env.t (a2) failed: {kind.value if kind else 'aborted'}: {message}"
    again = pickle.loads(pickle.dumps(failure))
    assert type(again) is type(failure) and again.code == code


def test_the_table_covers_every_failure_kind() -> None:
    assert set(errors.FAILURE_CLASSES) == {k.value for k in FailureKind} | {"aborted"}


def test_a_user_error_reads_as_its_root_cause_and_reraises_on_arithmetic() -> None:
    failure = errors.child_failure("env.t", "a2", FailureKind.USER_ERROR, "ValueError: no")
    assert str(failure) == "no" and failure.error_kind == "user"
    with pytest.raises(errors.RuntimeUserError):
        _ = 1 + failure  # as in Flyte: a failure returned by map(return_exceptions=True) re-raises


def test_non_recoverable_error_is_a_runtime_user_error() -> None:
    error = errors.NonRecoverableError("stop")
    assert isinstance(error, errors.RuntimeUserError) and error.code == "NonRecoverableError"


# -- an unmodified program under `flyte-decl run prog.py TASK` --------------------------------------


def test_unmodified_program_catches_oom_and_user_errors_by_flyte_class(tmp_path) -> None:
    result = cli("run", "--local", "unmodified.py", "errors_main", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '"OOMError OOMKilled; RuntimeUserError ValueError: no"'
    assert "; `import flyte` is flyte-decl" in result.stderr.splitlines()[0]


def test_non_recoverable_error_skips_the_remaining_retries(tmp_path) -> None:
    marker = tmp_path / "attempts"
    result = cli("run", "unmodified.py", "give_up", "--marker", str(marker), "--json", home=tmp_path)
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert [(a["attempt"], a["message"]) for a in data["actions"]] == [(1, "NonRecoverableError: stop now")]
    assert marker.read_text() == "x"


def test_a_file_passes_by_reference_under_a_small_inline_io_limit(tmp_path) -> None:
    result = cli("run", "unmodified.py", "file_main", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "200000"  # 200 kB through actions limited to 4 KiB of inline I/O


def test_ctx_group_trace_and_custom_context_flow_to_children(tmp_path) -> None:
    result = cli("run", "unmodified.py", "context_main", home=tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["action"] == "a1" and out["attempt"] == 1 and out["run"].startswith("r") and out["raw"]
    assert out["squares"] == [0, 1, 4, 9] and out["traces"] == ["square"] * 4  # traced in the same action
    assert out["inner"] == {"stage": "one"} and out["group"] == "squares"
    assert out["child"] == {"action": "a2", "custom": {"stage": "one"}, "group": "squares"}


def test_short_name_is_a_label_and_tasks_pass_as_inputs(tmp_path) -> None:
    result = cli("run", "unmodified.py", "names_main", "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["outputs"] == [2, 2, 2, 3, 6]
    assert {a["task"] for a in data["actions"][1:]} == {"unmodified.named", "unmodified.apply"}


def test_a_flyte_module_flyte_decl_lacks_is_one_clear_error(tmp_path) -> None:
    program = tmp_path / "remote.py"
    program.write_text("import flyte\nimport flyte.remote\n")
    result = subprocess.run([sys.executable, "-m", "flyte_decl", "run", str(program), "main"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, env=_env())  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {program}:2: importing {program} raised ModuleNotFoundError: No module named 'flyte.remote': "
        f"flyte-decl runs Flyte programs locally and has no flyte.remote (hint: run `python {program}` to see "
        "the traceback)"
    )


def test_alias_maps_flyte_private_paths_to_their_homes() -> None:
    assert _alias.target_of("flyte") == "flyte_decl"
    assert _alias.target_of("flyte.errors") == "flyte_decl.errors"
    assert _alias.target_of("flyte._image") == "flyte_decl._image"
    assert _alias.target_of("flyte._retry") == "flyte_decl._task_environment"
    assert _alias.target_of("flyte.io._file") == "flyte_decl.io._file"


def test_a_task_is_an_instance_of_flytes_function_task_class() -> None:
    _alias.install()  # the autouse fixture puts the real flyte back after the test
    import flyte
    from flyte._task import AsyncFunctionTaskTemplate

    env = flyte.TaskEnvironment(name="task-class")

    @env.task
    def one() -> int:
        return 1

    assert isinstance(one, AsyncFunctionTaskTemplate)
    assert AsyncFunctionTaskTemplate.__module__ == "flyte_decl._task"


# -- `python prog.py` with only the import changed ------------------------------------------------


def test_main_defined_types_cross_the_action_boundary_both_ways(tmp_path) -> None:
    result = script("types", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "succeeded Point(x=3, y=1) Point(x=3, y=1)"


def test_outputs_are_callable_and_split_as_flyte_outputs(tmp_path) -> None:
    result = script("outputs", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ActionOutputs(o0=3, o1=\"x\") 3 x {'o0': 3, 'o1': 'x'}"


def test_runcontext_mode_positional_and_custom_context(tmp_path) -> None:
    result = script("context", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ActionOutputs(o0={'trace_id': 't1'})"


def test_a_failed_run_raises_the_flyte_error_and_the_script_exits_1(tmp_path) -> None:
    result = script("fail", tmp_path)
    assert result.returncode == 1
    assert "not reached" not in result.stdout
    assert result.stderr.strip().splitlines()[-1] == "flyte_decl.errors.RuntimeUserError: boom"


def test_with_runcontext_refuses_an_unknown_keyword() -> None:
    with pytest.raises(TypeError, match="with_runcontext\\(\\) got an unexpected keyword argument 'queu'"):
        flyte.with_runcontext(queu="x")
    with pytest.raises(ValueError, match="mode 'remote' is not available"):
        flyte.with_runcontext("remote")
    with pytest.raises(ValueError, match="^backend must be 'local' or 'ray', got 'rey'$"):
        flyte.with_runcontext(backend="rey")
    with pytest.raises(ValueError, match="^address is the Ray cluster's address; it needs backend='ray' "):
        flyte.with_runcontext(backend="local", address="10.0.0.1:6379")


def test_outputs_attribute_form_and_call_form() -> None:
    outputs = Outputs(25)
    assert outputs == 25 and str(outputs) == "25" and repr(outputs()) == "ActionOutputs(o0=25)"
    assert ActionOutputs((1, "a")).o1 == "a" and repr(ActionOutputs(None)) == "ActionOutputs(o0=None)"


# -- init, Image, environment checks --------------------------------------------------------------


def test_init_functions_are_local_and_notice_a_remote_endpoint_once(capsys) -> None:
    flyte.init()
    flyte.init_from_config(None)
    assert capsys.readouterr().err == ""
    flyte.init(endpoint="dns:///flyte.example.com")
    flyte.init(endpoint="dns:///flyte.example.com")
    assert capsys.readouterr().err == (
        "flyte-decl: flyte.init(endpoint=...) asks for a remote control plane; runs stay local\n"
    )


def test_image_builders_keep_metadata_in_the_config_shape() -> None:
    image = (
        flyte.Image.from_debian_base(python_version=(3, 12), name="mine", registry="ghcr.io/me")
        .with_pip_packages("pandas", "numpy")
        .with_apt_packages("curl")
        .with_env_vars({"A": "1"})
        .with_requirements("requirements.txt")
        .with_commands(["echo hi"])
    )
    assert image.to_config() == {
        "python_version": "3.12", "pip_packages": ["pandas", "numpy"], "requirements": "requirements.txt",
        "apt_packages": ["curl"], "env": {"A": "1"}, "name": "mine", "registry": "ghcr.io/me",
    }  # fmt: skip
    assert ("commands", "echo hi") in image.layers
    assert flyte.Image.from_base("python:3.12-slim").to_config() == "python:3.12-slim"
    from flyte_decl._image import DIST_FOLDER, PythonWheels

    wheels = image.clone(addl_layer=PythonWheels(wheel_dir=DIST_FOLDER, package_name="flyte"))
    assert wheels.layers[-1][0] == "PythonWheels" and wheels.to_config() == image.to_config()
    env = flyte.TaskEnvironment(name="imaged", image=image)
    assert env.image is image


def test_image_from_uv_script_reads_its_inline_dependencies(tmp_path) -> None:
    script_path = tmp_path / "s.py"
    script_path.write_text('# /// script\n# dependencies = ["rich>=13", "httpx"]\n# ///\nprint(1)\n')
    image = flyte.Image.from_uv_script(script_path, name="s")
    assert image.to_config()["pip_packages"] == ["rich>=13", "httpx"]


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda: flyte.TaskEnvironment(name="inc2", include=["a.html", 1]),
            TypeError,
            "include entries must be str",
        ),
        (lambda: flyte.TaskEnvironment(name="inc3", include="a.html"), TypeError, "sequence of str paths"),
        (
            lambda: flyte.TaskEnvironment(name="img", image=123),
            TypeError,
            "Expected image to be of type str or Image",
        ),
        (
            lambda: flyte.TaskEnvironment(name="reuse1", reusable=flyte.ReusePolicy()).task(pod_template="p")(
                print
            ),
            ValueError,
            "pod_template cannot be set on a task of the reusable environment 'reuse1'",
        ),
    ],
)
def test_environment_arguments_are_checked_as_flyte_checks_them(make, error, message) -> None:
    with pytest.raises(error, match=message):
        make()


def test_include_is_a_tuple() -> None:
    assert flyte.TaskEnvironment(name="inc1", include=["a.html"]).include == ("a.html",)


def test_reusable_override_rules() -> None:
    pool = flyte.TaskEnvironment(name="pool2", reusable=flyte.ReusePolicy(replicas=2, idle_ttl=60))
    plain = flyte.TaskEnvironment(name="plain2")

    @pool.task
    async def warm(x: int) -> int:
        return x

    @plain.task
    async def cold(x: int) -> int:
        return x

    with pytest.raises(ValueError, match="Cannot override resources when reusable is set"):
        warm.override(resources=flyte.Resources(cpu=2))
    with pytest.raises(ValueError, match="Cannot override resources together with a new reuse policy"):
        cold.override(resources=flyte.Resources(cpu=2), reusable=flyte.ReusePolicy(replicas=2))
    assert warm.override(reusable="off", resources=flyte.Resources(cpu=2)).call_settings["reusable"] == "off"


def test_short_name_never_changes_the_task_identity() -> None:
    env = flyte.TaskEnvironment(name="labels")

    @env.task(short_name="shown")
    async def child(x: int) -> int:
        return x

    assert child.name == "labels.child" and child.short_name == "shown"
    assert child.override(short_name="renamed").name == "labels.child"
    assert list(env.tasks) == ["labels.child"]


def test_ctx_outside_an_action_is_flytes_null_context() -> None:
    """Checked against the real package: falsy, the same object each time, every field None."""
    _alias.uninstall()
    real = pytest.importorskip("flyte", reason="compared with the real package: pip install -e '.[flyte]'")
    assert real.__name__ == "flyte"
    ours, theirs = flyte.ctx(), real.ctx()
    assert (bool(ours), repr(ours)) == (bool(theirs), repr(theirs)) == (False, "NullTaskContext()")
    assert ours is flyte.ctx() and theirs is real.ctx()
    names = {f.name for f in dataclasses.fields(ours)}
    shared = names & {f.name for f in dataclasses.fields(theirs)}
    assert {"action", "raw_data_path", "checkpoint_paths", "custom_context", "group_data", "data"} <= shared
    assert {name: getattr(ours, name) for name in names} == dict.fromkeys(names)
    assert {name: getattr(theirs, name) for name in shared} == dict.fromkeys(shared)
    assert (ours.checkpoint, ours.run_base_dir) == (theirs.checkpoint, theirs.run_base_dir) == (None, None)
    assert isinstance(ours, flyte.TaskContext) and isinstance(theirs, real.models.TaskContext)


def test_ctx_is_null_outside_a_run_and_trace_is_the_plain_call() -> None:
    assert not flyte.ctx() and flyte.ctx().custom_context is None

    @flyte.trace
    def double(x: int) -> int:
        return 2 * x

    with flyte.group("g"), flyte.custom_context(a="1"):
        assert double(2) == 4 and flyte.get_custom_context() == {"a": "1"}
    assert flyte.get_custom_context() == {}


# -- where flyte-decl's runtime is stricter than Flyte's local mode ---------------------------------


def test_a_queue_named_only_in_code_runs_unlimited_with_one_warning(tmp_path) -> None:
    result = cli("run", "more_cases.py", "queue_main", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[0, 1, 2]"
    warning = "flyte-decl: queue 'serial-1' is named in code but not declared in environments.yaml; "
    assert result.stderr.count(warning) == 1


def test_sync_map_inside_async_task_runs_on_a_helper_thread(tmp_path) -> None:
    result = cli("run", "more_cases.py", "sync_map_main", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[0, 1, 2]"


@pytest.mark.parametrize(
    ("given", "code", "out"), [("RED", 0, '"RED"'), ("g", 0, '"GREEN"'), ("BLUE", 2, "")]
)
def test_cli_enum_inputs_take_member_names_and_values(tmp_path, given, code, out) -> None:
    result = cli("run", "more_cases.py", "color", "--c", given, home=tmp_path)
    assert result.returncode == code, result.stderr
    assert result.stdout.strip() == out
    if code:
        error = "error: --c: expected one of RED, GREEN (or a value: 'r', 'g'), got 'BLUE'"
        assert error in result.stderr.splitlines()


def test_example_parent_catches_oom_and_retries_bigger(tmp_path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "flyte_code" / "oom_retry.py"
    result = subprocess.run([sys.executable, str(example)], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**_env(), "FLYTE_DECL_HOME": str(tmp_path)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [  # the parent's print comes first, as in Flyte's local mode
        "oom-retry.fill was OOM-killed (OOMKilled); retrying with 400Mi",
        "ActionOutputs(o0={'action': 'a1', 'note': 22, 'limit': '400Mi'})",
    ]


# -- Flyte's declaration classes ------------------------------------------------------------------


def test_secret_names_map_as_in_flyte() -> None:
    assert flyte.Secret(key="openai-key").as_env_var == "OPENAI_KEY"
    assert flyte.Secret(key="token", group="gh").as_env_var == "GH_TOKEN"
    assert flyte.Secret(key="x", as_env_var="MY_X").as_env_var == "MY_X"
    env = flyte.TaskEnvironment(name="secrets1", secrets=[flyte.Secret(key="openai-key"), "db-pass"])
    assert env.settings["secrets"] == ["OPENAI_KEY", "DB_PASS"]
    with pytest.raises(ValueError, match="Invalid environment variable name: bad name"):
        flyte.Secret(key="k", as_env_var="bad name")


def test_reuse_policy_normalises_replicas_and_times() -> None:
    from datetime import timedelta

    policy = flyte.ReusePolicy(replicas=(1, 4), idle_ttl=60, scaledown_ttl=30, concurrency=2)
    assert policy.replicas == (1, 4) and policy.idle_ttl == timedelta(seconds=60)
    assert policy.to_settings() == {"replicas": 4, "idle_ttl": 30.0, "concurrency": 2}
    assert flyte.ReusePolicy(replicas=2).replicas == (2, 2)
    with pytest.raises(ValueError, match="replicas must be a count >= 1 or a \\(min, max\\) range"):
        flyte.ReusePolicy(replicas=(3, 1))


def test_backoff_is_checked() -> None:
    from datetime import timedelta

    with pytest.raises(ValueError, match="cap is required when factor > 1.0"):
        flyte.Backoff(base=timedelta(seconds=1), factor=2.0)
    backoff = flyte.Backoff(base=timedelta(seconds=10), factor=2.0, cap=timedelta(seconds=30))
    assert backoff.compute_delay(2) == timedelta(seconds=30)
    env = flyte.TaskEnvironment(name="retrying")
    task = env.task(retries=flyte.RetryStrategy(count=2, backoff=backoff))(lambda: None)
    assert task.settings["retries"] == {"count": 2, "backoff": 10.0}


def test_accelerator_devices_become_gpu_settings() -> None:
    assert flyte.Resources(gpu=flyte.GPU("A100", 2, partition="1g.5gb")).to_settings() == {"gpu": "A100:2"}
    assert flyte.Resources(gpu="Trn1:16").get_device().device_class == "NEURON"
    with pytest.raises(ValueError, match="Invalid partition for H100: bad"):
        flyte.GPU("H100", 1, partition="bad")


def test_report_html_lands_in_the_action_folder_and_logger_in_its_log(tmp_path) -> None:
    result = cli("run", "more_cases.py", "report_main", home=tmp_path)
    assert result.returncode == 0, result.stderr
    folder = Path(json.loads(result.stdout))
    assert folder.is_relative_to(tmp_path)
    assert "<h2>Summary</h2>\n<p>ok</p>" in (folder / "report.html").read_text()
    assert "more.report_main[0] | INFO into the action log" in result.stderr
    # `flyte-decl report` links the task's page.
    page = tmp_path / "run.html"
    reported = cli("report", "last", "-o", str(page), home=tmp_path)
    assert reported.returncode == 0, reported.stderr
    link = f'<li><a href="{(folder / "report.html").resolve().as_uri()}">more.report_main[0]</a></li>'
    assert link in page.read_text()


def test_a_retry_resumes_from_the_checkpoint_of_the_attempt_before(tmp_path) -> None:
    result = cli("run", "more_cases.py", "resumes", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '"attempt 3 resumed at 4"'
