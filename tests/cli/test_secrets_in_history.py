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
