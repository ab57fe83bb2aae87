"""The config's `run:` section chooses the backend when no flag (or `with_runcontext` argument) does.

Ray is made unimportable in the subprocesses here (a `ray` package that raises ImportError first on
PYTHONPATH, as when the extra is not installed): a run that would use Ray says how to install it and
exits 2; a run that the flag or argument keeps local never imports it and succeeds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

NO_RAY = "error: --backend ray needs Ray: pip install 'flyte-decl[ray]'\n"

CONFIG = """\
version: 1
run:
  backend: ray
profiles:
  here:
    run: {backend: local}
environments:
  wf:
    tasks:
      where: {fn: "choice_tasks:where"}
"""

TASKS = """
def where() -> str:
    return "ran"
"""

PROGRAM = """
import sys
import flyte_decl as flyte

env = flyte.TaskEnvironment(name="api")

@env.task
def where() -> str:
    return "ran"

if __name__ == "__main__":
    context = flyte.with_runcontext(backend=sys.argv[1]) if len(sys.argv) > 1 else flyte.with_runcontext()
    print(context.run(where).status)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "environments.yaml").write_text(CONFIG)
    (tmp_path / "prog.py").write_text(PROGRAM)
    (tmp_path / "choice_tasks.py").write_text(TASKS)
    fake = tmp_path / "no-ray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    return tmp_path


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root / "no-ray")}
    return subprocess.run([sys.executable, *args], cwd=root, capture_output=True, text=True, timeout=120, env=env)  # fmt: skip


def test_backend_ray_in_the_config_without_the_extra_says_how_to_install_it(project: Path):
    for args in (("run", "where"), ("run", "where", "--profile", "here", "--set", "run.backend=ray")):
        result = _run(project, "-m", "flyte_decl", *args)
        assert (result.returncode, result.stderr, result.stdout) == (2, NO_RAY, "")


def test_the_flag_beats_the_config_and_the_profile_beats_the_file(project: Path):
    by_flag = _run(project, "-m", "flyte_decl", "run", "where", "--backend", "local", "--json")
    assert by_flag.returncode == 0, by_flag.stderr
    config = json.loads(by_flag.stdout)["config"]
    assert (config["backend"], config["address"]) == ("local", None)
    by_profile = _run(project, "-m", "flyte_decl", "run", "where", "--profile", "here")
    assert by_profile.returncode == 0, by_profile.stderr
    shown = _run(project, "-m", "flyte_decl", "runs", "show", "r1", "--format", "json")
    assert json.loads(shown.stdout)["config"]["backend"] == "local"
    listed = _run(project, "-m", "flyte_decl", "runs", "show", "r1").stdout
    assert "--backend local" in listed
    # A rerun reuses the flag and the profile; with today's config the profile no longer says local.
    assert _run(project, "-m", "flyte_decl", "rerun", "r1").returncode == 0
    (project / "environments.yaml").write_text(CONFIG.replace("{backend: local}", "{address: auto}"))
    again = _run(project, "-m", "flyte_decl", "rerun", "r2", "--current-config")
    assert again.returncode == 2 and again.stderr.endswith("\n" + NO_RAY)


def test_with_runcontext_backend_beats_the_config(project: Path):
    local = _run(project, "prog.py", "local")
    assert (local.returncode, local.stdout) == (0, "succeeded\n"), local.stderr
    from_config = _run(project, "prog.py")
    assert from_config.returncode != 0 and "needs Ray: pip install 'flyte-decl[ray]'" in from_config.stderr
    listed = _run(project, "-m", "flyte_decl", "runs", "list", "--format", "json")
    assert len(json.loads(listed.stdout)) == 1  # refused before it was recorded


def test_a_backend_typo_is_located_with_a_did_you_mean(write, flyte_decl):
    write(CONFIG.replace("backend: ray", "backend: rey"))
    message = "environments.yaml:3:12: error: run.backend: must be 'local' or 'ray', got 'rey' (did you mean 'ray'?)"
    validated = flyte_decl("validate")
    assert validated.code == 1 and validated.out.splitlines()[0] == message
    ran = flyte_decl("run", "where")
    assert (ran.code, ran.err) == (2, message + "\n")
    write(CONFIG)
    for item, error in (
        ("run.backend=rey", "run.backend: must be 'local' or 'ray', got 'rey' (did you mean 'ray'?)"),
        ("run.adress=auto", "run.adress: unknown key (did you mean 'address'?)"),
    ):
        result = flyte_decl("run", "where", "--set", item)
        assert (result.code, result.err) == (2, f"<cli --set>: error: {error}\n")


def test_an_address_needs_the_ray_backend(write, flyte_decl):
    write(CONFIG.replace("backend: ray", "backend: local\n  address: auto"))
    write(TASKS, "choice_tasks.py")
    result = flyte_decl("run", "where", "--address", "10.0.0.1:6379")
    assert (result.code, result.err) == (
        2,
        "error: --address is the Ray cluster's address; it needs --backend ray "
        "(or run: {backend: ray} in the config)\n",
    )


def test_diff_shows_a_changed_run_section(write, flyte_decl):
    write(CONFIG.replace("backend: ray", "backend: local"), "old.yaml")
    write(CONFIG.replace("backend: ray", "backend: ray\n  address: auto"), "new.yaml")
    result = flyte_decl("diff", "old.yaml", "new.yaml")
    assert result.code == 1, result.err
    assert result.out.splitlines() == [
        "run  address  unset -> auto  (run, new.yaml:4)",
        "run  backend  local -> ray   (run, new.yaml:3)",
        "",
        "old.yaml -> new.yaml: 2 run settings changed",
    ]


def test_explain_says_where_the_config_runs_and_which_layer_chose_it(write, flyte_decl):
    write(CONFIG.replace("backend: ray", "backend: ray\n  address: auto"))
    explained = flyte_decl("explain", "where", "--profile", "here", "--format", "json")
    assert json.loads(explained.out)["run"] == {
        "backend": "local",
        "address": None,
        "source": "run.backend of profile here at environments.yaml:7",
    }
    text = flyte_decl("explain", "where", "--set", "run.backend=ray").out.splitlines()
    assert (
        text[-1] == "  note: runs on ray at auto, set by run.backend at <cli --set> (--backend overrides it)"
    )
    write(CONFIG.replace("run:\n  backend: ray\n", ""))
    assert "run" not in json.loads(flyte_decl("explain", "where", "--format", "json").out)
