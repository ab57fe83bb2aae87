"""Two `flyte-decl run` processes at once, recording into one store."""

from __future__ import annotations

import json


def test_two_runs_at_once_are_both_recorded_in_full(ws) -> None:
    ws.touch("slow", "0.5")  # each piece takes 0.5 s, so the two runs overlap even on a busy machine
    runners = [ws.spawn("run", "fan", "--n", "6", "--json") for _ in range(2)]
    results = [json.loads(runner.communicate(timeout=60)[0]) for runner in runners]
    assert [runner.returncode for runner in runners] == [0, 0]
    assert sorted(result["run"] for result in results) == ["r1", "r2"]

    listed = json.loads(ws.cli("runs", "list", "--format", "json").out)
    assert sorted((r["run"], r["status"], r["actions"]["succeeded"]) for r in listed) == [
        ("r1", "succeeded", 7),
        ("r2", "succeeded", 7),
    ]
    first, second = listed
    assert (
        first["created_at"] < second["ended_at"] and second["created_at"] < first["ended_at"]
    )  # they overlapped
    for result in results:
        shown = json.loads(ws.cli("runs", "show", result["run"], "--format", "json").out)
        assert [(a["id"], a["pid"]) for a in shown["actions"]] == [
            (a["id"], a["pid"]) for a in result["actions"]
        ]
        assert shown["log_dir"].endswith(f"/logs/{result['run']}")
        assert shown["outputs"] == [i * 10 for i in range(6)]
