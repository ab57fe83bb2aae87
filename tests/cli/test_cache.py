"""`cache: auto` on real runs: hits keyed by task, function source and inputs; `--overwrite-cache`."""

from __future__ import annotations

import json
import sys


def _phases(result) -> dict[str, str]:
    assert result.code == 0, result.err
    return {a["id"]: a["phase"] for a in json.loads(result.out)["actions"]}


def test_a_second_run_reuses_the_cached_actions_without_processes(ws) -> None:
    first = _phases(ws.cli("run", "fan", "--n", "3", "--cached", "--json"))
    assert list(first.values()) == ["succeeded"] * 4

    second = ws.cli("run", "fan", "--n", "4", "--cached", "--json")
    data = json.loads(second.out)
    assert data["outputs"] == [0, 10, 20, 30]
    pieces = data["actions"][1:]
    assert [(a["phase"], a["pid"], a["message"]) for a in pieces[:3]] == [
        ("cached", None, f"outputs reused from r1/a{i}") for i in (2, 3, 4)
    ]
    assert (pieces[3]["phase"], pieces[3]["pid"] is not None) == ("succeeded", True)  # new inputs: it ran
    assert data["actions"][0]["phase"] == "succeeded"  # fan itself is not cached
    # The store keeps the cached ones as such, with the reused outputs.
    shown = json.loads(ws.cli("runs", "show", "r2", "--format", "json").out)
    assert [a["phase"] for a in shown["actions"]] == ["succeeded", "cached", "cached", "cached", "succeeded"]


def test_overwrite_cache_runs_everything_and_later_runs_hit_the_new_outputs(ws) -> None:
    ws.cli("run", "fan", "--n", "2", "--cached")
    overwritten = _phases(ws.cli("run", "fan", "--n", "2", "--cached", "--overwrite-cache", "--json"))
    assert list(overwritten.values()) == ["succeeded"] * 3
    later = json.loads(ws.cli("run", "fan", "--n", "2", "--cached", "--json").out)["actions"]
    assert [a["message"] for a in later[1:]] == ["outputs reused from r2/a2", "outputs reused from r2/a3"]


def test_a_changed_function_body_misses_and_a_task_without_cache_never_hits(ws) -> None:
    ws.cli("run", "cpiece", "--i", "5")
    assert _phases(ws.cli("run", "cpiece", "--i", "5", "--json")) == {"a1": "cached"}
    assert _phases(ws.cli("run", "piece", "--i", "5", "--json")) == {"a1": "succeeded"}
    assert _phases(ws.cli("run", "piece", "--i", "5", "--json")) == {"a1": "succeeded"}

    module = ws.root / "histwf.py"
    header = "async def cpiece(i: int) -> int:\n"
    # As Flyte's FunctionBodyPolicy: the syntax tree counts, so a comment keeps the version...
    module.write_text(module.read_text().replace(header, header + "    # v2\n"))
    sys.modules.pop("histwf", None)  # the in-process CLI imports the edited module afresh
    assert _phases(ws.cli("run", "cpiece", "--i", "5", "--json")) == {"a1": "cached"}
    # ...and a statement changes it.
    module.write_text(module.read_text().replace(header, header + "    i = i + 0\n"))
    sys.modules.pop("histwf", None)
    assert _phases(ws.cli("run", "cpiece", "--i", "5", "--json")) == {"a1": "succeeded"}
    result = ws.cli("run", "cpiece", "--i", "5", "--json")
    assert _phases(result) == {"a1": "cached"}
    assert json.loads(result.out)["outputs"] == 50
