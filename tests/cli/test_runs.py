"""`runs list` and `runs show` on real runs recorded by `flyte-decl run`, and their user errors."""

from __future__ import annotations

import json
import sqlite3

from flyte_decl.store.schema import SCHEMA_VERSION


def test_a_run_is_recorded_with_its_actions_samples_and_payloads(ws) -> None:
    result = ws.cli("run", "fan", "--n", "3", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["run"] == "r1" and data["log_dir"] == str(ws.root / ".flyte-decl" / "logs" / "r1")

    listed = json.loads(ws.cli("runs", "list", "--format", "json").out)
    assert [(r["run"], r["task"], r["status"], r["origin"], r["inputs"], r["outputs"]) for r in listed] == [
        ("r1", "wf.fan", "succeeded", "run", {"n": 3, "cached": False}, [0, 10, 20])
    ]
    assert listed[0]["actions"] == {"succeeded": 4}

    shown = json.loads(ws.cli("runs", "show", "r1", "--format", "json").out)
    actions = shown["actions"]
    assert [(a["id"], a["label"], a["parent"], a["phase"]) for a in actions] == [
        ("a1", "wf.fan[0]", None, "succeeded"),
        ("a2", "wf.piece[0]", "a1", "succeeded"),
        ("a3", "wf.piece[1]", "a1", "succeeded"),
        ("a4", "wf.piece[2]", "a1", "succeeded"),
    ]
    assert all(a["limits"]["memory"] == 256 * 2**20 and a["limits"]["cpu"] == 1.0 for a in actions)
    assert all(a["peak_memory"] > 0 and a["cpu_seconds"] is not None and a["exit_code"] == 0 for a in actions)
    assert all(a["queued_at"] <= a["started_at"] <= a["ended_at"] for a in actions)
    assert actions[0]["spec"]["fn"] == "histwf:fan" and actions[0]["spec"]["env_vars"] == {
        "GREETING": "hello"
    }
    assert {a["pid"] for a in actions} == {a["pid"] for a in data["actions"]}

    store = ws.store()
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert len(store.samples("r1")) == 4  # every attempt sampled at least once


def test_runs_list_text_and_filters(ws) -> None:
    ws.cli("run", "greet")
    ws.touch("fail-1", "0.3")
    assert ws.cli("run", "fan", "--n", "2").code == 1

    lines = ws.cli("runs", "list").out.splitlines()
    assert lines[0].split() == ["RUN", "STATUS", "TASK", "STARTED", "DURATION", "ACTIONS", "FROM"]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["r2", "failed", "wf.fan"],
        ["r1", "succeeded", "wf.greet"],
    ]
    assert "3: 2 failed, 1 succeeded" in lines[1] or "3: 1 succeeded, 2 failed" in lines[1]

    def ids(*args: str) -> list[str]:
        return [r["run"] for r in json.loads(ws.cli("runs", "list", "--format", "json", *args).out)]

    assert ids("--status", "failed") == ["r2"]
    assert ids("--status", "failed", "--status", "succeeded") == ["r2", "r1"]
    assert ids("--task", "greet") == ["r1"]
    assert ids("--task", "wf.fan") == ["r2"]
    assert ids("--since", "1h") == ["r2", "r1"]
    assert ids("--since", "today", "--until", "1h") == []
    assert ids("--until", "2100-01-01") == ["r2", "r1"]
    assert ids("--since", "2100-01-01T10:30") == []
    assert ids("-n", "1") == ["r2"]
    assert ws.cli("runs", "list", "--status", "running").out == "no runs match\n"


def test_runs_show_draws_the_action_tree_with_peaks_against_limits(ws) -> None:
    ws.touch("fail-1", "0.3")
    ws.cli("run", "fan", "--n", "3")
    out = ws.cli("runs", "show", "last").out
    lines = out.splitlines()
    assert lines[0] == (
        "run r1  wf.fan  failed (user_error): RuntimeUserError: wf.piece (a3) failed: user_error: "
        "ValueError: piece 1 failed on purpose"
    )
    assert lines[2].startswith("  config  environments.yaml sha256:")
    assert lines[3] == '  inputs  {"n": 3, "cached": false}'
    table = lines[lines.index("") + 1 :]
    assert table[0].split() == [
        "ACTION",
        "TASK",
        "PHASE",
        "DURATION",
        "MEMORY",
        "PEAK/LIMIT",
        "CPU",
        "AVG/LIMIT",
    ]
    rows = [row.split() for row in table[1:5]]
    assert [row[:3] for row in rows] == [
        ["a1", "wf.fan[0]", "failed"],
        ["a2", "├─", "wf.piece[0]"],
        ["a3", "├─", "wf.piece[1]"],
        ["a4", "└─", "wf.piece[2]"],
    ]
    assert all(
        "/ 256Mi (" in row and row.rstrip().endswith("/ 1") for row in table[1:5] if "aborted" not in row
    )
    assert "  a3 wf.piece[1]: user_error: ValueError: piece 1 failed on purpose" in lines


def test_user_errors_are_one_line_with_a_hint_and_exit_2(ws) -> None:
    empty = ws.cli("runs", "list")
    assert (empty.code, empty.err) == (
        2,
        f"error: no runs recorded in {ws.root / '.flyte-decl'} (hint: start one with 'flyte-decl run TASK'; runs "
        "are kept in .flyte-decl/ beside the config, or in $FLYTE_DECL_HOME)\n",
    )
    for _ in range(3):
        ws.cli("run", "greet")
    cases = [
        (("runs",),
         "error: runs needs a command: flyte-decl runs list, show RUN, prune or delete RUN (see 'flyte-decl runs --help')"),
        (("runs", "show"), "error: Missing argument 'RUN'. (see 'flyte-decl runs show --help')"),
        (("runs", "show", "r4"), "error: unknown run 'r4' (recent runs: r3, r2, r1; see 'flyte-decl runs list')"),
        (("runs", "show", "2"), "error: unknown run '2' (did you mean 'r2'? see 'flyte-decl runs list')"),
        (("report", "R03"), "error: unknown run 'R03' (did you mean 'r3'? see 'flyte-decl runs list')"),
        (("runs", "show", "zz"), "error: unknown run 'zz' (recent runs: r3, r2, r1; see 'flyte-decl runs list')"),
        (("logs", "r7"), "error: unknown run 'r7' (recent runs: r3, r2, r1; see 'flyte-decl runs list')"),
        (("runs", "list", "--since", "lastweek"),
         "error: --since 'lastweek': expected a date (2026-11-24 or 2026-11-24T10:30), a time ago (30m, 2h, 3d), "
         "today or yesterday"),
        (("runs", "list", "--status", "done"),
         "error: Invalid value for '--status': 'done' is not one of 'running', 'succeeded', 'failed', 'timed_out', "
         "'aborted'. (see 'flyte-decl runs list --help')"),
    ]  # fmt: skip
    for args, expected in cases:
        result = ws.cli(*args)
        assert (result.code, result.err.strip(), result.out) == (2, expected, ""), args


def test_a_store_from_a_newer_flyte_decl_is_refused(ws) -> None:
    ws.cli("run", "greet")
    conn = sqlite3.connect(ws.root / ".flyte-decl" / "runs.db")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    result = ws.cli("runs", "list")
    assert (result.code, result.err.strip()) == (
        2,
        f"error: the run store is at schema version {SCHEMA_VERSION + 1}, newer than this flyte-decl's "
        f"{SCHEMA_VERSION} (hint: upgrade flyte-decl, or set FLYTE_DECL_HOME to another folder)",
    )
