"""A declared secret that is not set stops `run` before anything starts: one line per declaration, exit 2."""

from __future__ import annotations

import sys

import pytest

CONFIG = """
version: 1
defaults:
  secrets: [SHARED_KEY]
environments:
  api:
    secrets: [SHARED_KEY, API_KEY_FOR_TEST]
    tasks:
      call: {fn: "secretive:call"}
      other: {fn: "secretive:call", secrets: [DB_PASSWORD_FOR_TEST]}
"""


@pytest.fixture
def project(write, tmp_path, monkeypatch):
    for name in ("SHARED_KEY", "API_KEY_FOR_TEST", "DB_PASSWORD_FOR_TEST"):
        monkeypatch.delenv(name, raising=False)
    write("import os\n\n\ndef call():\n    return len(os.environ['API_KEY_FOR_TEST'])\n", "secretive.py")
    write(CONFIG)
    yield tmp_path
    sys.modules.pop("secretive", None)
    while str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def test_missing_secrets_are_reported_where_declared_before_the_run(project, flyte_decl, monkeypatch):
    monkeypatch.setenv("SHARED_KEY", "x")
    result = flyte_decl("run", "call")
    assert result.code == 2
    assert result.err.splitlines() == [
        "environments.yaml:6:27: error: environments.api.secrets[1]: secret 'API_KEY_FOR_TEST' is not set "
        "(export API_KEY_FOR_TEST=... in the shell that runs flyte-decl)",
        "environments.yaml:9:47: error: environments.api.tasks.other.secrets[0]: secret 'DB_PASSWORD_FOR_TEST' "
        "is not set (export DB_PASSWORD_FOR_TEST=... in the shell that runs flyte-decl)",
    ]
    assert not (project / ".flyte-decl").exists()  # nothing started, nothing recorded


def test_the_effective_list_is_where_a_secret_is_reported_once(project, flyte_decl, monkeypatch):
    monkeypatch.setenv("API_KEY_FOR_TEST", "k3y")
    monkeypatch.setenv("DB_PASSWORD_FOR_TEST", "pw")
    result = flyte_decl("run", "call")
    assert (result.code, result.err) == (
        2,
        "environments.yaml:6:15: error: environments.api.secrets[0]: secret 'SHARED_KEY' is not set "
        "(export SHARED_KEY=... in the shell that runs flyte-decl)\n",
    )


def test_with_every_secret_set_the_task_reads_it(project, flyte_decl, monkeypatch):
    for name, value in (("SHARED_KEY", "x"), ("API_KEY_FOR_TEST", "k3y"), ("DB_PASSWORD_FOR_TEST", "pw")):
        monkeypatch.setenv(name, value)
    result = flyte_decl("run", "call")
    assert (result.code, result.out) == (0, "3\n"), result.err
