"""`flyte-decl rerun RUN` on real runs: same inputs, the run's config snapshot or the current config."""

from __future__ import annotations

import json


def _outputs(result) -> object:
    assert result.code == 0, result.err
    return json.loads(result.out)["outputs"]


def test_rerun_uses_the_same_inputs_and_the_config_snapshot_unless_told_otherwise(ws) -> None:
    assert _outputs(ws.cli("run", "greet", "--name", "ada", "--json")) == "hello ada"
    config = ws.root / "environments.yaml"
    config.write_text(config.read_text().replace("GREETING: hello", "GREETING: bonjour"))

    assert _outputs(ws.cli("rerun", "r1", "--json")) == "hello ada"
    assert _outputs(ws.cli("rerun", "r1", "--current-config", "--json")) == "bonjour ada"
    # A rerun's own snapshot is what it ran with: rerunning it again keeps that.
    assert _outputs(ws.cli("rerun", "r3", "--json")) == "bonjour ada"
    config.unlink()  # the snapshot does not need the file
    assert _outputs(ws.cli("rerun", "r1", "--json")) == "hello ada"

    listed = json.loads(ws.cli("runs", "list", "--format", "json").out)
    assert [(r["run"], r["origin"], r["source_run"], r["inputs"]) for r in listed] == [
        ("r5", "rerun", "r1", {"name": "ada"}),
        ("r4", "rerun", "r3", {"name": "ada"}),
        ("r3", "rerun", "r1", {"name": "ada"}),
        ("r2", "rerun", "r1", {"name": "ada"}),
        ("r1", "run", None, {"name": "ada"}),
    ]


def test_rerun_keeps_run_level_flags(ws) -> None:
    ws.cli("run", "greet", "--set", "env_vars.GREETING=hi", "-e", "UNUSED=1")
    result = ws.cli("rerun", "last")
    assert (result.code, result.out) == (0, '"hi world"\n')
    assert result.err.splitlines()[2].startswith(
        "run r2: wf.greet in wf (cpu 1, memory 256Mi; queue default)"
    )


def test_rerun_of_a_failed_run_fails_the_same_way(ws) -> None:
    ws.touch("fail-3")
    ws.cli("run", "piece", "--i", "3")
    result = ws.cli("rerun", "r1")
    assert result.code == 1
    assert "error: wf.piece[0] (a1) failed: user_error: ValueError: piece 3 failed on purpose" in result.err


def test_rerun_and_recover_take_q_and_v_as_run_does(ws) -> None:
    ws.cli("run", "fan", "--n", "1")
    quiet = ws.cli("rerun", "r1", "-q")
    assert (quiet.code, quiet.out, quiet.err) == (0, "[0]\n", "")
    verbose = ws.cli("rerun", "r1", "--verbose")
    assert verbose.code == 0 and "wf.piece[0] (a2) running, pid " in verbose.err, verbose.err
    for command in ("rerun", "recover"):
        both = ws.cli(command, "r1", "-q", "-v")
        assert (both.code, both.err) == (2, "error: -q/--quiet and -v/--verbose cannot be used together\n")
    ws.touch("fail-0")
    assert ws.cli("run", "fan", "--n", "1").code == 1
    (ws.root / "fail-0").unlink()
    recovered = ws.cli("recover", "r4", "--quiet")
    assert (recovered.code, recovered.out, recovered.err) == (0, "[0]\n", "")
