"""Declared secrets never show (SPEC §5): every output channel and every stored byte masks each value,
each line of a multi-line one, and each encoding of it.

Four shapes are planted: a plain token, a multi-line PEM key, one with `"`, `\\` and non-ASCII
characters, and one that a task prints inside a longer word. Real runs through the CLI.
"""

from __future__ import annotations

import base64
import html
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from flyte_decl import _task_environment as te
from flyte_decl import masking
from flyte_decl.cli.main import _run

SECRETS = {
    "PLAIN": "plain-8d2f7c1e9b",
    "PEM": "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7q1w2e3r4t5y6\n"
    "u7i8o9p0aAsSdDfFgGhHjJkKlLzZxXcCvVbBnNm1Q2W3E4R5T6Y7U8I9O0Pa\n"
    "Zw==\n"
    "-----END PRIVATE KEY-----\n",
    "QUOTED": 'q"uo\\te-é€-ünï',
    "SUB": "hidden42",
}

CONFIG = """
version: 1
environments:
  vault:
    secrets: [PLAIN, PEM, QUOTED, SUB]
    env_vars: {COPY: "${PLAIN}", KEY: "${PEM}"}
    tasks:
      leak: {fn: "leaky:leak"}
"""

# Prints each value raw, as JSON, repr and base64, once split across two writes with a pause (so
# the runner reads it in two chunks), on stderr, and line by line; returns them all, or raises with their repr.
MODULE = """
import base64, json, os, sys, time

NAMES = ["PLAIN", "PEM", "QUOTED", "SUB"]


def leak(fail: bool = False) -> dict:
    values = {name: os.environ[name] for name in NAMES}
    for value in values.values():
        print(value, json.dumps(value), repr(value), base64.b64encode(value.encode()).decode(), flush=True)
        half = len(value) // 2
        sys.stdout.write("split:" + value[:half])
        sys.stdout.flush()
        time.sleep(0.05)
        print(value[half:], flush=True)
        print(value, file=sys.stderr, flush=True)
        for line in value.splitlines():
            print("line:", line, flush=True)
    print("id=" + values["SUB"] + "-suffix", flush=True)
    if fail:
        raise ValueError(f"cannot use {values}")
    return {"values": values, "repr": repr(values), "b64": base64.b64encode(values["PLAIN"].encode()).decode()}
"""


def encodings(value: str) -> set[str]:
    """How a value may be spelled in output, written out here apart from the masker's own list."""
    forms = {value.strip()} | {line for line in value.splitlines() if len(line) >= 4}
    found = set()
    for form in forms:
        found |= {
            form,
            json.dumps(form)[1:-1],
            json.dumps(form, ensure_ascii=False)[1:-1],
            repr(form)[1:-1],
            ascii(form)[1:-1],
            html.escape(form),
            quote(form, safe=""),
            form.replace("%", "%25").replace("\n", "%0A"),
        }
    found.add(base64.b64encode(value.encode()).decode()[:-4])
    return found


FORMS = {(name, form) for name, value in SECRETS.items() for form in encodings(value)}


def leaks(data: str | bytes) -> list[tuple[str, str]]:
    raw = data if isinstance(data, bytes) else data.encode()
    return sorted((name, form) for name, form in FORMS if form.encode() in raw)


@pytest.fixture
def project(
    tmp_path: Path, flyte_decl: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Any]]:
    monkeypatch.delenv("FLYTE_DECL_HOME", raising=False)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "environments.yaml").write_text(textwrap.dedent(CONFIG).lstrip())
    (tmp_path / "leaky.py").write_text(textwrap.dedent(MODULE).lstrip())
    yield flyte_decl
    sys.modules.pop("leaky", None)
    while str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def test_every_channel_and_every_stored_byte_masks_every_spelling(project, tmp_path: Path) -> None:
    shown: dict[str, str] = {}

    def cli(*args: str, code: int = 0) -> Any:
        result = project(*args)
        assert result.code == code, (args, result.err)
        shown[" ".join(args)] = result.out + result.err
        return result

    ran = cli("run", "leak")
    masked = {name: "****" for name in SECRETS}
    assert json.loads(ran.out) == {"values": masked, "repr": repr(masked), "b64": "****g=="}
    assert "vault.leak[0] | split:****\n" in ran.err
    assert "vault.leak[0] | id=****-suffix\n" in ran.err
    assert json.loads(cli("run", "leak", "--json").out)["outputs"]["values"] == masked
    failed = cli("run", "leak", "--fail", code=1)
    assert "error: vault.leak[0] (a1) failed: user_error" in failed.err and "Traceback" in failed.err
    assert failed.err.endswith(f"ValueError: cannot use {masked}\n")
    cli("run", "leak", "--fail", "--json", code=1)
    cli("rerun", "r1", "--json")
    for run in ("r1", "r3"):
        cli("runs", "show", run)
        cli("runs", "show", run, "--format", "json")
        cli("logs", run)
        cli("report", run, "-o", f"{run}.html")
    assert cli("logs", "r1", "a1").out.count("split:****\n") == 4
    cli("runs", "list")
    cli("runs", "list", "--format", "json")
    explained = cli("explain", "leak", "--format", "json")
    values = {f["path"]: f["value"] for f in json.loads(explained.out)["fields"]}
    assert (values["env_vars.COPY"], values["env_vars.KEY"]) == ("****", "****")
    cli("explain", "leak")
    # The same as a real process: its own stdout and stderr.
    spawned = subprocess.run(
        [sys.executable, "-m", "flyte_decl", "run", "leak", "--fail"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert spawned.returncode == 1, spawned.stderr
    assert "Traceback" in spawned.stderr
    shown["spawned"] = spawned.stdout + spawned.stderr

    assert {command: leaks(text) for command, text in shown.items() if leaks(text)} == {}
    stored = [path for path in tmp_path.rglob("*") if path.is_file() and path.suffix not in (".py", ".yaml")]
    assert {path.name for path in stored} >= {"runs.db", "a1.1.log", "r1.html", "r3.html"}
    assert {str(path): leaks(path.read_bytes()) for path in stored if leaks(path.read_bytes())} == {}


def test_a_secret_that_reaches_the_config_is_masked_in_validate(project, tmp_path: Path) -> None:
    config = tmp_path / "environments.yaml"
    config.write_text(config.read_text().replace("    tasks:\n", '    timeout: "${QUOTED}"\n    tasks:\n'))
    message = "environments.vault.timeout: '****' is not a duration"
    hint = "e.g. 30s, 5m, 1h30m, 250ms or 30; the value comes from ${QUOTED}"  # the variable, never its value
    result = project("validate")
    assert (result.code, result.out) == (1, f"environments.yaml:6:14: error: {message} ({hint})\n1 error\n")
    result = project("validate", "--format", "github")
    assert result.out == f"::error file=environments.yaml,line=6,col=14::{message} ({hint})\n"
    problem = json.loads(project("validate", "--format", "json").out)["problems"][0]
    assert (problem["message"], problem["hint"]) == ("'****' is not a duration", hint)
    config.write_text(config.read_text().replace("${QUOTED}", "${PEM}"))
    result = project("validate", "--format", "github")
    hint = hint.replace("QUOTED", "PEM")
    assert result.out == f"::error file=environments.yaml,line=6,col=14::{message} ({hint})\n"


def test_a_secret_given_with_set_is_masked_in_errors_and_explain(project) -> None:
    result = project("run", "leak", "--set", f"timeout={SECRETS['QUOTED']}")
    assert (result.code, result.out) == (2, "")
    assert (
        result.err
        == "<cli --set>: error: timeout: '****' is not a duration (e.g. 30s, 5m, 1h30m, 250ms or 30)\n"
    )
    result = project("explain", "leak", "--set", f"env_vars.EXTRA={SECRETS['PEM']}")
    assert (result.code, result.err) == (0, "")
    assert result.out.splitlines() == [
        "vault.leak  fn=leaky:leak  declared at environments.yaml:7",
        "",
        "  queue                default                    built-in",
        "  env_vars.COPY        ****                       environment vault (environments.yaml:5)",
        "  env_vars.EXTRA       ****                       cli --set",
        "  env_vars.KEY         ****                       environment vault (environments.yaml:5)",
        "  secrets              [PLAIN, PEM, QUOTED, SUB]  environment vault (environments.yaml:4)",
        "  retries.count        0                          built-in",
        "  max_inline_io_bytes  10Mi                       built-in",
        "  cache                disable                    built-in",
        "  interruptible        false                      built-in",
    ]


def test_a_secret_added_through_interpolation_is_masked_in_diff(project, tmp_path: Path) -> None:
    old = (tmp_path / "environments.yaml").read_text()
    (tmp_path / "new.yaml").write_text(old.replace('KEY: "${PEM}"}', 'KEY: "${PEM}", TOKEN: "${QUOTED}"}'))
    result = project("diff", "environments.yaml", "new.yaml")
    assert (result.code, result.out) == (
        1,
        "vault.leak  env_vars.TOKEN  unset -> ****  (environment vault, new.yaml:5)\n"
        "\n"
        "environments.yaml -> new.yaml: 1 task setting changed in 1 task\n",
    )
    markdown = project("diff", "environments.yaml", "new.yaml", "--format", "markdown").out
    assert (
        "| `vault.leak` | `env_vars.TOKEN` | *unset* | `****` | environment vault (`new.yaml:5`) |\n"
        in markdown
    )
    change = json.loads(project("diff", "environments.yaml", "new.yaml", "--format", "json").out)["changes"][
        0
    ]
    assert (change["path"], change["old"], change["new"]) == ("env_vars.TOKEN", None, "****")
    assert leaks(markdown) == []


def test_a_secret_declared_in_code_is_masked(
    project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(te, "ENVIRONMENTS", {})  # this program's environments stay in this test
    monkeypatch.delitem(sys.modules, "prog", raising=False)
    (tmp_path / "prog.py").write_text(
        textwrap.dedent("""
        import os
        import flyte_decl as flyte

        env = flyte.TaskEnvironment(name="coded", secrets=["QUOTED"])

        @env.task
        def reveal() -> str:
            print("token", os.environ["QUOTED"], flush=True)
            return os.environ["QUOTED"]
        """)
    )
    result = project("run", "prog.py", "reveal", "--json")
    assert (result.code, json.loads(result.out)["outputs"]) == (0, "****"), result.err
    assert "coded.reveal[0] | token ****\n" in project("logs", "last").out
    stored = [path for path in (tmp_path / ".flyte-decl").rglob("*") if path.is_file()]
    assert {str(path): leaks(path.read_bytes()) for path in stored if leaks(path.read_bytes())} == {}


def test_a_traceback_of_an_unexpected_error_is_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PEM", SECRETS["PEM"])

    def command(**kwargs: Any) -> None:
        masking.declare(["PEM"])
        raise RuntimeError(f"cannot parse {os.environ['PEM']}")

    assert _run(command, []) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):\n")
    assert err.endswith("RuntimeError: cannot parse ****\n")
    assert leaks(err) == []
