"""`flyte_decl.flyte.environments()` and `flyte-decl export flyte`: real Flyte objects, checked by what
Flyte's own serializer puts on the wire."""

from __future__ import annotations

import importlib
import shutil
import sys
import textwrap
from pathlib import Path

import flyte
import pytest
from flyte_wire import wire

from flyte_decl.flyte import ConfigTaskResolver, FlyteExportWarning, environments

ROOT = Path(__file__).resolve().parents[2]

EVERY_SETTING = """
version: 1
defaults:
  resources: {cpu: 1, memory: 512Mi}
  env_vars: {TEAM: data}
queues:
  gpu-pool: {concurrency: 2, description: the GPU nodes}
  batch: {}
capacity: {cpu: 2, memory: 8Gi}
environments:
  trainer:
    description: trains on GPUs
    depends_on: [prep]
    resources:
      cpu: {request: 500m, limit: 2}
      memory: 1Gi
      gpu: "A100:2"
      disk: 10Gi
      shm: auto
    queue: gpu-pool
    secrets: [API_TOKEN]
    env_vars: {LOG_LEVEL: debug}
    cache: auto
    interruptible: true
    image:
      python_version: "3.12"
      pip_packages: [numpy]
      apt_packages: [git]
      env: {MODE: train}
      registry: ghcr.io/acme
      name: trainer
    tasks:
      train:
        fn: "trainwf:train"
        description: fits the model
        retries: {count: 3, backoff: 2s, on_oom: {memory: 2x, max: 4Gi}}
        timeout: 1h
        max_inline_io_bytes: 1Mi
      evaluate:
        fn: "trainwf:evaluate"
        cache: disable
        queue: batch
  prep:
    image: ghcr.io/acme/prep:1.0
    reusable: {replicas: 3, idle_ttl: 10s, concurrency: 1}
    tasks:
      load: {fn: "trainwf:load", retries: 2}
      clean: {fn: "trainwf:clean"}
overrides:
  - match: {environment: prep, task: clean}
    set: {resources: {memory: 2Gi}}
profiles:
  prod:
    environments:
      trainer: {resources: {memory: 4Gi}}
"""

TRAINWF = """
async def train(n: int) -> int:
    return await evaluate(n)


async def evaluate(n: int) -> int:
    return n


async def load() -> int:
    return 1


async def clean() -> int:
    return 2
"""

EVERY_SETTING_WARNINGS = [
    "queues.gpu-pool.concurrency (2) is not exported: a Flyte queue's limits are set in the cluster's "
    "queue configuration",
    "queues.gpu-pool.description is not exported: a Flyte queue is described in the cluster's queue "
    "configuration",
    "capacity is not exported: it bounds the local scheduler only; a cluster has its own",
    "prep: reusable.idle_ttl (10s) is below Flyte's minimum of 30s; exported as 30s",
    "prep.clean: its resources differ from its environment's and Flyte sets resources per environment "
    "only; on Flyte it gets prep's",
    "trainer.train: retries.on_oom is not exported: Flyte retries an OOM-killed attempt with the same memory",
]

TRAINER_IMAGE = (
    flyte.Image.from_debian_base(python_version=(3, 12), registry="ghcr.io/acme", name="trainer")
    .with_pip_packages("numpy")
    .with_apt_packages("git")
    .with_env_vars({"MODE": "train"})
)


def _trainer_wire(memory: str) -> dict:
    return {
        "requests": {"CPU": "500m", "MEMORY": memory, "GPU": "2", "EPHEMERAL_STORAGE": "10Gi"},
        "limits": {"CPU": "2", "MEMORY": memory},
        "env": {"TEAM": "data", "LOG_LEVEL": "debug"},
        "secrets": [("API_TOKEN", "API_TOKEN")],
        "gpu": "nvidia-tesla-a100",
        "image": TRAINER_IMAGE.uri,
        "interruptible": True,
        "reuse": None,
    }


def _export(flyte_decl, *args: str):
    result = flyte_decl("export", "flyte", "-o", "flyte_envs.py", *args)
    module = importlib.import_module("flyte_envs")
    return result, module


@pytest.fixture
def every_setting(project):
    return project({"environments.yaml": textwrap.dedent(EVERY_SETTING), "trainwf.py": TRAINWF})


def test_bundled_example_serializes_with_its_settings(tmp_path):
    for name in ("environments.yaml", "hello.py"):
        shutil.copy(ROOT / name, tmp_path / name)
    config = tmp_path / "environments.yaml"
    with pytest.warns(FlyteExportWarning) as caught:
        envs = environments(config)
    assert [str(w.message) for w in caught] == [
        "queues.default.concurrency (4) is not exported: a Flyte queue's limits are set in the cluster's "
        "queue configuration"
    ]
    assert list(envs) == ["env1", "env2"]
    assert all(isinstance(e, flyte.TaskEnvironment) for e in envs.values())
    assert envs["env1"].description == "default configuration"
    square = envs["env2"].tasks["env2.square"]
    assert square.queue is None  # the built-in queue "default" is the cluster's default queue
    got = wire(square, tmp_path)
    assert got["requests"] == got["limits"] == {"CPU": "1", "MEMORY": "250Mi"}
    assert got["env"] == {"LOG_LEVEL": "info"}
    assert (got["retries"], got["backoff"], got["timeout"], got["cache"]) == (1, None, 30, False)
    assert got["secrets"] == [] and got["reuse"] is None and got["gpu"] is None
    assert got["image"].startswith("ghcr.io/flyteorg/flyte:py3.")
    assert got["resolver"] == [
        "flyte_decl.flyte.ConfigTaskResolver", "config", str(config), "profile", "", "programs", "",
        "task", "env2.square",
    ]  # fmt: skip
    hello_wf = wire(envs["env1"].tasks["env1.hello_wf"], tmp_path)
    assert hello_wf["requests"] == hello_wf["limits"] == {"CPU": "1", "MEMORY": "512Mi"}
    assert (hello_wf["env"], hello_wf["retries"], hello_wf["timeout"]) == ({}, 0, None)
    hello = sys.modules["hello"]
    assert hello.square is square  # hello_wf's calls to square() are Flyte actions in env2


def test_flyte_runs_the_exported_example_with_calls_as_actions(flyte_decl, tmp_path):
    """Flyte's own runtime (local mode, in-process) runs the exported module: hello_wf's plain calls to
    say_hello() and square() reach Flyte as task calls, through the rebinding."""
    for name in ("environments.yaml", "hello.py"):
        shutil.copy(ROOT / name, tmp_path / name)
    _, module = _export(flyte_decl)
    context = flyte.with_runcontext(
        mode="local",
        raw_data_path=str(tmp_path / "raw"),
        run_base_dir=str(tmp_path / "runs"),
        disable_run_cache=True,
    )
    # flyte 2.12 offers no public option for where local runs keep metadata; its default is the
    # shared /tmp/flyte, which may belong to another user.
    context._metadata_path = str(tmp_path / "runs")
    run = context.run(module.hello_wf, data="hi", n=4)
    assert list(run.outputs()) == [[0, 1, 4, 9]]
    assert sys.modules["hello"].square is module.square


def test_program_declarations_lie_beneath_the_config(flyte_decl, tmp_path):
    for name in ("environments.yaml", "hello.py"):
        shutil.copy(ROOT / "examples" / "flyte_code" / name, tmp_path / name)
    result = flyte_decl("export", "flyte", "hello.py", "-o", "flyte_envs.py")
    assert result.code == 0, result.err
    module = importlib.import_module("flyte_envs")
    assert sorted(module.TASKS) == ["env1.main", "env1.overridden", "env2.square", "env2.where"]
    square = wire(module.TASKS["env2.square"], tmp_path)
    assert square["requests"] == square["limits"] == {"CPU": "1", "MEMORY": "250Mi"}  # from the code
    assert square["env"] == {"GREETING": "hello", "QUEUE_NOTE": "from-yaml"}  # code, then the file
    assert module.TASKS["env2.square"].queue == "gcp-useast1-1"
    assert "exported by `flyte-decl export flyte` from hello.py." in (tmp_path / "flyte_envs.py").read_text()


def test_every_setting_reaches_the_wire(flyte_decl, every_setting):
    result, module = _export(flyte_decl)
    assert result.code == 0, result.err
    assert result.err.splitlines() == [
        *(f"warning: {w}" for w in EVERY_SETTING_WARNINGS),
        "wrote flyte_envs.py: 2 environments, 4 tasks; deploy with: flyte deploy --all flyte_envs.py",
    ]
    train = wire(module.TASKS["trainer.train"], every_setting)
    assert {k: train[k] for k in _trainer_wire("1Gi")} == _trainer_wire("1Gi")
    assert (train["retries"], train["backoff"], train["timeout"], train["cache"]) == (
        3,
        (2, 2.0, 8),
        3600,
        True,
    )
    assert train["resolver"] == ["flyte_envs.Resolver", "task", "trainer.train"]
    assert module.TASKS["trainer.train"].max_inline_io_bytes == 1024 * 1024
    assert module.TASKS["trainer.train"].docs.description == "fits the model"
    evaluate = wire(module.TASKS["trainer.evaluate"], every_setting)
    assert (evaluate["cache"], evaluate["retries"]) == (False, 0)
    assert module.TASKS["trainer.train"].queue == "gpu-pool"
    assert module.TASKS["trainer.evaluate"].queue == "batch"
    load = wire(module.TASKS["prep.load"], every_setting)
    assert load["requests"] == load["limits"] == {"CPU": "1", "MEMORY": "512Mi"}
    assert (load["image"], load["reuse"], load["retries"], load["env"]) == (
        "ghcr.io/acme/prep:1.0", (3, 3, 30), 2, {"TEAM": "data"}
    )  # fmt: skip
    assert wire(module.TASKS["prep.clean"], every_setting)["limits"]["MEMORY"] == "512Mi"  # warned above


def test_depends_on_declares_dependencies_first(flyte_decl, every_setting):
    _, module = _export(flyte_decl)
    text = (every_setting / "flyte_envs.py").read_text()
    assert text.index("prep = flyte.TaskEnvironment(") < text.index("trainer = flyte.TaskEnvironment(")
    assert module.trainer.depends_on == [module.prep]
    assert module.prep.depends_on == []
    assert {n: e for n, e in vars(module).items() if isinstance(e, flyte.TaskEnvironment)} == {
        "prep": module.prep, "trainer": module.trainer
    }  # fmt: skip  # what `flyte deploy flyte_envs.py` discovers


def test_profile_is_applied(flyte_decl, every_setting):
    result, module = _export(flyte_decl, "--profile", "prod")
    assert result.code == 0, result.err
    train = wire(module.TASKS["trainer.train"], every_setting)
    assert {k: train[k] for k in _trainer_wire("4Gi")} == _trainer_wire("4Gi")
    assert "from the discovered config with profile prod." in (every_setting / "flyte_envs.py").read_text()


def test_module_and_python_api_build_the_same_tasks(flyte_decl, every_setting):
    _, module = _export(flyte_decl, "--profile", "prod")
    with pytest.warns(FlyteExportWarning):
        envs = environments(every_setting / "environments.yaml", profile="prod")
    for name, task in module.TASKS.items():
        from_api = wire(envs[name.partition(".")[0]].tasks[name], every_setting)
        from_module = wire(task, every_setting)
        assert {**from_api, "resolver": None} == {**from_module, "resolver": None}, name


def test_resolvers_load_the_task_a_container_asks_for(flyte_decl, every_setting):
    _, module = _export(flyte_decl)
    args = wire(module.TASKS["trainer.evaluate"], every_setting)["resolver"]
    assert args[0] == "flyte_envs.Resolver"
    assert module.Resolver().load_task(args[1:]) is module.TASKS["trainer.evaluate"]
    assert sys.modules["trainwf"].evaluate is module.TASKS["trainer.evaluate"]  # train's call is an action
    config = str(every_setting / "environments.yaml")
    with pytest.warns(FlyteExportWarning):
        loaded = ConfigTaskResolver().load_task(
            ["config", config, "profile", "prod", "task", "trainer.train"]
        )
    assert loaded.name == "trainer.train"
    assert loaded.resources.memory == ("4Gi", "4Gi")


def test_base_image_with_requirements(flyte_decl, project):
    folder = project(
        {
            "environments.yaml": textwrap.dedent("""
                version: 1
                environments:
                  app:
                    image: {base_image: "python:3.12-slim", requirements: requirements.txt,
                            registry: ghcr.io/acme, name: app}
                    tasks: {job: {fn: "prog:job"}}
            """),
            "requirements.txt": "numpy\n",
            "prog.py": "def job() -> int:\n    return 1\n",
        }
    )
    result, module = _export(flyte_decl)
    assert result.code == 0, result.err
    expected = (
        flyte.Image.from_base("python:3.12-slim")
        .clone(registry="ghcr.io/acme", name="app", extendable=True)
        .with_requirements(folder / "requirements.txt")
    )
    assert wire(module.TASKS["app.job"], folder)["image"] == expected.uri
    assert 'str(_HERE / "requirements.txt")' in (folder / "flyte_envs.py").read_text()


def test_task_named_apart_from_its_function_is_warned(flyte_decl, project):
    project(
        {
            "environments.yaml": 'version: 1\nenvironments:\n  e:\n    tasks: {sq: {fn: "prog:square"}}\n',
            "prog.py": "def square(i: int) -> int:\n    return i * i\n",
        }
    )
    result, module = _export(flyte_decl)
    assert result.code == 0
    assert result.err.splitlines()[0] == (
        "warning: e.sq: Flyte names a task after its function, so it deploys as e.square"
    )
    assert list(module.TASKS) == ["e.square"]


PROG = """
def f() -> int:
    return 1


class Thing:
    @classmethod
    def make(cls) -> int:
        return 2
"""


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            'version: 1\nenvironments:\n  e:\n    tasks: {t: {fn: "nosuchmod:f"}}\n',
            "error: e.t: cannot import module 'nosuchmod' (is nosuchmod.py in {root} or installed?)",
        ),
        (
            'version: 1\nenvironments:\n  e:\n    tasks: {t: {fn: "prog:Thing"}}\n',
            "error: e.t: 'prog:Thing' is a class, not a function (bind a module-level function that uses it)",
        ),
        (
            'version: 1\nenvironments:\n  e:\n    tasks: {t: {fn: "prog:Thing.make"}}\n',
            "error: e.t: 'prog:Thing.make' is a class method and a Flyte task is a function (bind a "
            "module-level function that calls it)",
        ),
        (
            'version: 1\nenvironments:\n  e:\n    secrets: [api_token]\n    tasks: {t: {fn: "prog:f"}}\n',
            "error: environment e: Flyte refused it: Invalid environment variable name: api_token, "
            "must match ^[A-Z_][A-Z0-9_]*$",
        ),
        (
            'version: 1\nenvironments:\n  e:\n    resources: {gpu: "A100"}\n    tasks: {t: {fn: "prog:f"}}\n',
            "error: environment e: Flyte refused it: gpu must be one of",
        ),
    ],
)
def test_export_errors_are_one_line_exit_2(flyte_decl, project, config, message):
    folder = project({"environments.yaml": config, "prog.py": PROG})
    result = flyte_decl("export", "flyte", "-o", "flyte_envs.py")
    assert result.code == 2
    assert len(result.err.splitlines()) == 1
    assert result.err.startswith(message.replace("{root}", str(folder)))
    assert not (folder / "flyte_envs.py").exists()


def test_module_must_be_written_beside_the_config(flyte_decl, every_setting):
    result = flyte_decl("export", "flyte", "-o", "out/flyte_envs.py")
    assert (result.code, result.err) == (
        2,
        "error: out/flyte_envs.py: write the module beside the config (it imports the bound modules by "
        "name, relative to the config's folder): -o flyte_envs.py\n",
    )


def test_missing_flyte_package_says_how_to_install(flyte_decl, project, monkeypatch):
    project({"environments.yaml": "version: 1\n"})
    monkeypatch.setitem(sys.modules, "flyte", None)
    result = flyte_decl("export", "flyte", "-o", "flyte_envs.py")
    assert result.code == 2
    assert result.err == (
        "error: the flyte package is not importable (import of flyte halted; None in sys.modules); "
        "install it with: pip install 'flyte-decl[flyte]'\n"
    )
