"""Secret values never reach the run store: not in specs, flags, inputs, outputs, payloads or logs."""

from __future__ import annotations

import json

import pytest

TOKEN = "tok-4f9a1c77e2d0"


def test_no_byte_of_a_secret_value_is_stored(ws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", TOKEN)
    first = ws.cli("run", "reveal", "-e", f"EXTRA={TOKEN}", "--set", f"env_vars.OTHER={TOKEN}")
    assert (first.code, first.out) == (0, '"16 characters"\n'), first.err
    echoed = ws.cli("run", "reveal", "--echo", "--json")
    assert json.loads(echoed.out)["outputs"] == "****"  # not shown, not stored

    for path in (ws.root / ".flyte-decl").rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path

    shown = json.loads(ws.cli("runs", "show", "r1", "--format", "json").out)
    spec = shown["actions"][0]["spec"]
    assert (spec["secrets"], spec["env_vars"]) == (["API_TOKEN"], {"OTHER": "****", "TOKEN_COPY": "****"})
    assert ws.cli("logs", "r1").out == "vault.reveal[0] | token is **** and its copy ****\n"
    assert json.loads(ws.cli("runs", "show", "r2", "--format", "json").out)["outputs"] == "****"
    # The run whose outputs held the token can run again (its inputs did not); its outputs were not kept.
    assert json.loads(ws.cli("rerun", "r2", "--json").out)["outputs"] == "****"


def test_a_secret_given_with_e_is_masked_and_not_stored(ws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("API_TOKEN")
    for flag in ("-e", "--env"):
        result = ws.cli("run", "reveal", "--echo", flag, f"API_TOKEN={TOKEN}")
        assert (result.code, result.out) == (0, '"****"\n'), result.err
        assert TOKEN not in result.err
    assert ws.cli("logs", "r1").out == "vault.reveal[0] | token is **** and its copy unset\n"
    for path in (ws.root / ".flyte-decl").rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path

    # Run again, the secret comes from today's environment; without it the rerun refuses as run does.
    refused = ws.cli("rerun", "r1")
    assert (refused.code, refused.err) == (
        2,
        "environments.yaml:13:15: error: environments.vault.secrets[0]: secret 'API_TOKEN' is not set "
        "(export API_TOKEN=... or pass -e API_TOKEN=...)\n",
    )
    monkeypatch.setenv("API_TOKEN", "today-7c1d")
    again = ws.cli("rerun", "r1", "--json")
    assert (again.code, json.loads(again.out)["outputs"]) == (0, "****"), again.err


def test_a_secret_given_with_e_reaches_only_the_tasks_that_declare_it(ws, monkeypatch) -> None:
    monkeypatch.delenv("API_TOKEN")
    (ws.root / "histwf.py").write_text(
        (ws.root / "histwf.py").read_text()
        + "\n\ndef peek() -> str:\n    return os.environ.get('API_TOKEN', 'absent')\n"
    )
    config = (ws.root / "environments.yaml").read_text()
    (ws.root / "environments.yaml").write_text(
        config.replace(
            '      greet: {fn: "histwf:greet"}',
            '      greet: {fn: "histwf:greet"}\n      peek: {fn: "histwf:peek"}',
        )
    )
    result = ws.cli("run", "peek", "-e", f"API_TOKEN={TOKEN}", "-e", "OTHER=1")
    assert (result.code, result.out) == (0, '"absent"\n'), result.err
