"""A run remembers its config: files with hashes, profiles, -c overlays, --set and -e names."""

from __future__ import annotations

import hashlib
import json

OVERLAY = """
version: 1
profiles:
  loud:
    environments: {wf: {env_vars: {GREETING: HELLO}}}
"""


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_run_records_and_shows_its_config_sources(ws, monkeypatch) -> None:
    monkeypatch.setenv("API_TOKEN", "s3cret-value")
    overlay = ws.touch("overlay.yaml", OVERLAY.lstrip())
    base = ws.root / "environments.yaml"
    args = ("-c", "environments.yaml", "-c", "overlay.yaml", "--profile", "loud", "--set", "timeout=20s")
    result = ws.cli("run", "greet", *args, "-e", "API_TOKEN=s3cret-value", "-e", "MODE=fast", "--json")
    assert result.code == 0, result.err
    expected = {
        "files": [
            {"path": str(base), "sha256": _sha(base), "bytes": base.stat().st_size, "given": True},
            {"path": str(overlay), "sha256": _sha(overlay), "bytes": overlay.stat().st_size, "given": True},
        ],
        "profiles": ["loud"],
        "sets": ["timeout=20s"],
        "env": ["API_TOKEN", "MODE"],
        "queue": None,
        "backend": "local",
        "address": None,
    }
    assert json.loads(result.out)["config"] == expected
    assert json.loads(ws.cli("runs", "show", "r1", "--format", "json").out)["config"] == expected
    assert json.loads(ws.cli("runs", "list", "--format", "json").out)[0]["config"] == expected

    line = (
        f"environments.yaml sha256:{_sha(base)[:12]} (-c), overlay.yaml sha256:{_sha(overlay)[:12]} (-c), "
        "profile loud, --set timeout=20s, -e API_TOKEN, -e MODE"
    )
    assert f"  config  {line}" in ws.cli("runs", "show", "r1").out.splitlines()
    text = ws.cli("run", "greet", *args, "-e", "API_TOKEN=s3cret-value", "-e", "MODE=fast")
    assert text.err.splitlines()[1] == f"config: {line}"
    assert "s3cret-value" not in ws.cli("runs", "show", "r1", "--format", "json").out


def test_a_secret_value_in_a_set_item_is_masked(ws, monkeypatch) -> None:
    monkeypatch.setenv("API_TOKEN", "s3cret-value")
    result = ws.cli("run", "reveal", "--set", "env_vars.COPY=s3cret-value", "--json")
    assert json.loads(result.out)["config"]["sets"] == ["env_vars.COPY=****"]


def test_rerun_says_what_it_reuses_and_current_config_what_it_does_not(ws) -> None:
    base = ws.root / "environments.yaml"
    old = _sha(base)
    ws.cli("run", "greet", "--set", "timeout=20s", "-e", "MODE=fast")
    same = ws.cli("rerun", "r1")
    assert same.err.splitlines()[:2] == [
        "reusing from r1: --set timeout=20s, -e MODE; inputs",
        f"r1's config snapshot: environments.yaml sha256:{old[:12]}",
    ]
    base.write_text(base.read_text() + "# edited\n")
    new = _sha(base)
    changed = ws.cli("rerun", "r1")
    assert changed.err.splitlines()[2] == (
        f"  (today's environments.yaml differs: sha256:{new[:12]}; --current-config reads it)"
    )
    assert f"config: environments.yaml sha256:{old[:12]}, --set timeout=20s, -e MODE" in changed.err
    current = ws.cli("rerun", "r1", "--current-config")
    assert current.err.splitlines()[:2] == [
        "reusing from r1: --set timeout=20s, -e MODE; inputs",
        f"not reusing r1's config snapshot: today's files environments.yaml sha256:{new[:12]} "
        f"(was sha256:{old[:12]})",
    ]
    assert (
        json.loads(ws.cli("runs", "show", "last", "--format", "json").out)["config"]["files"][0]["sha256"]
        == new
    )
