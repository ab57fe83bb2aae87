"""The Python API's declarations: Flyte's names and checks, and code as layers beneath environments.yaml."""

from datetime import timedelta

import pytest

import flyte_decl._task_environment as te
from flyte_decl import _task
from flyte_decl._resources import Resources
from flyte_decl._task_environment import RetryStrategy, TaskEnvironment, code_layers
from flyte_decl.config.load import load


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch):
    monkeypatch.setattr(te, "ENVIRONMENTS", {})


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"cpu": -1}, ValueError, "cpu must be greater than or equal to 0"),
        (
            {"cpu": [1, 2]},
            ValueError,
            "cpu must be a core count or a Kubernetes quantity string such as 1, 0.5 or '100m', got list: [1, 2]",
        ),
        ({"cpu": (1,)}, ValueError, "cpu tuple must have exactly two elements"),
        ({"cpu": (1, None)}, ValueError, "cpu pair elements must both be set, got None"),
        ({"cpu": (2, 1)}, ValueError, "cpu request 2 is above its limit 1"),
        (
            {"cpu": "banana"},
            ValueError,
            "cpu: 'banana' is not a quantity (write a number with an optional suffix: 500m, 1, 0.5, 250Mi, 1.5Gi, 2G)",
        ),
        (
            {"memory": 1024},
            ValueError,
            "memory must be a Kubernetes quantity string such as '1Gi', '512Mi' or '2G', got int: 1024",
        ),
        (
            {"memory": "lots"},
            ValueError,
            "memory: 'lots' is not a quantity (write a number with an optional suffix: 500m, 1, 0.5, 250Mi, 1.5Gi, 2G)",
        ),
        (
            {"memory": "1gi"},
            ValueError,
            "memory: '1gi' is not a quantity (suffixes are case-sensitive: use Gi)",
        ),
        (
            {"disk": 10},
            ValueError,
            "disk must be a Kubernetes quantity string such as '1Gi', '512Mi' or '2G', got int: 10",
        ),
        (
            {"gpu": "A100"},
            ValueError,
            "gpu must be one of Flyte's accelerators such as 'A100:4' or 'T4:1', got 'A100'",
        ),
        (
            {"gpu": ("A100", 2)},
            ValueError,
            "gpu must be an accelerator string such as 'A100:4', a device count or a flyte.GPU(...) device, got tuple: "
            "('A100', 2)",
        ),
        ({"gpu": -1}, ValueError, "gpu must be greater than or equal to 0"),
    ],
)
def test_resources_refuse_bad_arguments_with_exact_messages(kwargs, error, message):
    with pytest.raises(error) as caught:
        Resources(**kwargs)
    assert str(caught.value) == message


def test_resources_to_settings():
    assert Resources(cpu=("500m", 1), memory="250Mi", gpu="A100:2").to_settings() == {
        "cpu": {"request": "500m", "limit": 1},
        "memory": "250Mi",
        "gpu": "A100:2",
    }


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: TaskEnvironment(name="My_Env"),
            ValueError,
            "Environment name 'My_Env' must be in snake_case or kebab-case format.",
        ),
        (
            lambda: TaskEnvironment(name="e", resources={"cpu": 1}),
            TypeError,
            "Expected resources to be of type Resources, got <class 'dict'>",
        ),
        (
            lambda: TaskEnvironment(name="e", env_vars=["A"]),
            TypeError,
            "Expected env_vars to be of type Dict[str, str], got <class 'list'>",
        ),
        (
            lambda: TaskEnvironment(name="e", secrets=123),
            TypeError,
            "Expected secrets to be of type SecretRequest, got <class 'int'>",
        ),
        (
            lambda: TaskEnvironment(name="e", cache=123),
            TypeError,
            "Expected cache to be of type str or Cache, got <class 'int'>",
        ),
        (
            lambda: TaskEnvironment(name="e", reusable=2),
            TypeError,
            "Expected reusable to be of type ReusePolicy, got <class 'int'>",
        ),
        (
            lambda: TaskEnvironment(name="e").add_dependency(3),
            TypeError,
            "Expected Environment, got <class 'int'>",
        ),
        (
            lambda: TaskEnvironment(name="e", depends_on=["x"]),
            TypeError,
            "Expected depends_on to be of type List[Environment], got <class 'str'>",
        ),
        (
            lambda: TaskEnvironment(name="e", queue="a", task_queue="b"),
            ValueError,
            "set either queue or task_queue (an alias), not both",
        ),
        (
            lambda: TaskEnvironment(name="e", cache="always"),
            ValueError,
            "Invalid cache behavior 'always': use 'auto', 'override' or 'disable' "
            "(aliases accepted: enable, enabled, false, no, none, off, on, true, yes)",
        ),
        (
            lambda: TaskEnvironment(name="e").task(retries="3")(lambda: 1),
            ValueError,
            "retries must be an int (a retry count) or a flyte.RetryStrategy, got '3'",
        ),
        (
            lambda: TaskEnvironment(name="e").task(timeout="10")(lambda: 1),
            ValueError,
            "Timeout must be an instance of Timeout, int, or timedelta, got '10'",
        ),
        (
            lambda: TaskEnvironment(name="e").clone_with("f", queue="q"),
            TypeError,
            "Unexpected keyword arguments: ['queue']",
        ),
        (
            lambda: TaskEnvironment(name="e").add_dependency(te.ENVIRONMENTS["e"][0]),
            ValueError,
            "Cannot add self as a dependency",
        ),
    ],
)
def test_environment_arguments_are_checked(call, error, message):
    with pytest.raises(error) as caught:
        call()
    assert str(caught.value) == message


def test_only_given_arguments_become_settings():
    env = TaskEnvironment(name="env2", resources=Resources(cpu=1, memory="250Mi"), task_queue="spot")
    assert env.settings == {"resources": {"cpu": 1, "memory": "250Mi"}, "queue": "spot"}

    @env.task(retries=RetryStrategy(3, backoff=timedelta(seconds=2)), timeout=timedelta(minutes=1))
    async def square(i: int = 3) -> int:
        return i * i

    assert square.settings == {"retries": {"count": 3, "backoff": 2.0}, "timeout": 60.0}
    assert square.full_name == "env2.square"


def test_calling_a_task_outside_a_run_calls_the_function():
    env = TaskEnvironment(name="env1")

    @env.task
    def add(a: int, b: int) -> int:
        return a + b

    assert add(2, 3) == 5
    assert _task._submitter is None


def test_override_merges_and_falsy_values_apply():
    env = TaskEnvironment(name="env1")

    @env.task(retries=3, queue="default")
    def work() -> None: ...

    first = work.override(resources=Resources(memory="1Gi"), env_vars={"A": "1"})
    second = first.override(env_vars={"B": "2"}, retries=0, queue=None)
    assert second.call_settings == {
        "resources": {"memory": "1Gi"},
        "env_vars": {"A": "1", "B": "2"},
        "retries": {"count": 0},
        "queue": None,
    }
    assert work.call_settings == {}
    with pytest.raises(ValueError, match="^Image cannot be overridden$"):
        work.override(image="x")
    with pytest.raises(TypeError, match="^override\\(\\) got an unexpected keyword argument 'bogus'$"):
        work.override(bogus=1)
    assert work.with_overrides(max_inline_io_bytes=1).call_settings == {"max_inline_io_bytes": 1}


YAML = """
version: 1
environments:
  env2:
    resources: {memory: 500Mi}
    tasks:
      square: {timeout: 5m}
"""


def test_code_lies_beneath_yaml_and_overrides_apply_on_top(write, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    env = TaskEnvironment(name="env2", resources=Resources(cpu=1, memory="250Mi"), env_vars={"A": "code"})

    @env.task(timeout=30, retries=2)
    async def square(i: int = 3) -> int:
        return i * i

    resolved = load([write(YAML)], code=code_layers())
    task = resolved.tasks["env2.square"]
    assert task.value("resources.memory.limit") == "500Mi"  # YAML environment beats code environment
    assert task.value("resources.cpu.limit") == 1  # from code, kept field by field
    assert task.value("timeout") == "5m"  # YAML task entry beats the decorator
    assert task.value("retries.count") == 2  # decorator
    assert str(task.fields["retries.count"][1]).startswith("code task (")
    assert task.fn.endswith(":test_code_lies_beneath_yaml_and_overrides_apply_on_top.<locals>.square")
    config = resolved.run_config()
    assert config.tasks["env2.square"].memory_limit == 500 * 2**20
    spec = config.spec_for(
        "env2.square", square.override(resources=Resources(memory="1Gi"), retries=0).call_settings
    )
    assert (spec.memory_limit, spec.cpu_limit, spec.retries.count) == (2**30, 1.0, 0)
    reset = config.spec_for("env2.square", {"env_vars": None, "queue": None})
    assert reset.env_vars == {} and reset.queue == "default"


def test_code_alone_is_a_configuration(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = TaskEnvironment(name="solo", resources=Resources(memory="100Mi"))

    @env.task
    def f() -> int:
        return 1

    resolved = load(code=code_layers())
    assert resolved.run_config().tasks["solo.f"].memory_limit == 100 * 2**20
