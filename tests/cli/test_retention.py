"""`runs prune`, `runs delete` and the config's `retention:` leave a consistent, smaller store."""

from __future__ import annotations

import json
import os
import sqlite3
import time

import pytest


def _consistent(ws) -> None:
    """Every row refers to rows that exist, every payload and spec is referred to, logs match runs."""
    store = ws.store()
    conn = store.conn
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    referenced = {
        d
        for (d,) in conn.execute(
            "SELECT inputs_digest FROM actions UNION SELECT outputs_digest FROM actions"
            " UNION SELECT inputs_digest FROM runs UNION SELECT outputs_digest FROM runs"
        )
        if d is not None
    }
    assert {d for (d,) in conn.execute("SELECT digest FROM payloads")} == referenced
    specs = {d for (d,) in conn.execute("SELECT spec_digest FROM actions WHERE spec_digest IS NOT NULL")}
    assert {d for (d,) in conn.execute("SELECT digest FROM specs")} == specs
    runs = {r for (r,) in conn.execute("SELECT id FROM runs")}
    assert {p.name for p in (ws.root / ".flyte-decl" / "logs").iterdir()} <= runs
    store.close()


def _ids(ws) -> list[str]:
    return [r["run"] for r in json.loads(ws.cli("runs", "list", "--format", "json", "-n", "0").out)]


def test_prune_keep_removes_the_oldest_runs_whole(ws) -> None:
    for n in range(4):
        assert ws.cli("run", "fan", "--n", str(n + 1)).code == 0
    result = ws.cli("runs", "prune", "--keep", "2")
    assert result.code == 0, result.err
    assert result.out.startswith("removed 2 runs (r1, r2): 5 actions, ")
    assert _ids(ws) == ["r4", "r3"]
    assert not (ws.root / ".flyte-decl" / "logs" / "r1").exists()
    _consistent(ws)
    assert ws.cli("logs", "r3").out.count("| piece ") == 3
    ws.cli("run", "greet")
    assert _ids(ws) == ["r5", "r4", "r3"]  # ids are never reused


def test_prune_by_status_and_age(ws) -> None:
    ws.cli("run", "greet")
    ws.touch("fail-0")
    ws.cli("run", "fan", "--n", "1")
    ws.cli("run", "greet")
    assert ws.cli("runs", "prune", "--status", "failed", "--dry-run").out == "would remove 1 run: r2\n"
    assert ws.cli("runs", "prune", "--status", "failed").out.startswith("removed 1 run (r2): 2 actions")
    assert _ids(ws) == ["r3", "r1"]
    assert ws.cli("runs", "prune", "--older-than", "30d").out.startswith("no runs removed; store ")
    assert ws.cli("runs", "list", "--since", "40d").out.count("\n") == 3  # ages past 24d are no timeout
    with sqlite3.connect(ws.root / ".flyte-decl" / "runs.db") as conn:
        conn.execute("UPDATE runs SET created_at = ? WHERE id = 'r1'", (time.time() - 31 * 86400,))
    assert ws.cli("runs", "prune", "--older-than", "30d").out.startswith("removed 1 run (r1): ")
    assert _ids(ws) == ["r3"]
    _consistent(ws)


def test_delete_keeps_payloads_another_run_still_uses(ws) -> None:
    ws.cli("run", "fan", "--n", "2", "--cached")
    second = ws.cli("run", "fan", "--n", "2", "--cached", "--json")
    assert [a["phase"] for a in json.loads(second.out)["actions"]][1:] == ["cached", "cached"]
    assert ws.cli("runs", "delete", "r1").out.startswith("removed 1 run (r1): 3 actions")
    _consistent(ws)
    third = ws.cli("run", "fan", "--n", "2", "--cached", "--json")
    assert [a["phase"] for a in json.loads(third.out)["actions"]][1:] == ["cached", "cached"]


def test_the_config_retention_applies_after_each_run(ws) -> None:
    config = ws.root / "environments.yaml"
    config.write_text(config.read_text() + "retention: {keep: 2, status: [succeeded], older_than: 0s}\n")
    ws.cli("run", "greet")
    ws.touch("fail-0")
    ws.cli("run", "fan", "--n", "1")
    os.remove(ws.root / "fail-0")
    third = ws.cli("run", "greet")  # r1 is now past the newest 2
    assert third.err.splitlines()[-2].startswith("retention: removed 1 run (r1): 1 action, ")
    assert "retention:" not in ws.cli("run", "greet").err  # r2 failed: the policy removes only succeeded runs
    assert _ids(ws) == ["r4", "r3", "r2"]
    _consistent(ws)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("runs", "prune"), "error: runs prune needs --keep N, --older-than AGE or --status STATUS "
         "(hint: 'flyte-decl runs prune --keep 50' keeps the newest 50 runs)"),
        (("runs", "prune", "--older-than", "a month"),
         "error: --older-than 'a month': expected an age like 30d, 12h or 90m"),
        (("runs", "delete", "r9"), "error: unknown run 'r9' (recent runs: r1; see 'flyte-decl runs list')"),
        (("runs", "delete"), "error: Missing argument 'RUN...'. (see 'flyte-decl runs delete --help')"),
    ],
)  # fmt: skip
def test_prune_and_delete_user_errors(ws, args, message) -> None:
    ws.cli("run", "greet")
    result = ws.cli(*args)
    assert (result.code, result.err.strip()) == (2, message)


def test_a_running_run_is_never_removed(ws) -> None:
    ws.cli("run", "greet")
    with sqlite3.connect(ws.root / ".flyte-decl" / "runs.db") as conn:  # as a live runner leaves it
        conn.execute("UPDATE runs SET status = 'running', pid = ?, pid_started_at = ?",
                     (os.getpid(), __import__("psutil").Process().create_time()))  # fmt: skip
    result = ws.cli("runs", "delete", "r1")
    assert (result.code, result.err.strip()) == (
        2, f"error: run r1 is still running (runner pid {os.getpid()}) (hint: stop it first, or wait for it)"
    )  # fmt: skip
    assert ws.cli("runs", "prune", "--keep", "0").out.startswith("no runs removed")


def test_a_retention_setting_is_validated(ws) -> None:
    config = ws.root / "environments.yaml"
    config.write_text(config.read_text() + "retention: {keep: 0, older_than: 30d}\n")
    result = ws.cli("validate")
    assert result.code == 1
    assert "retention.keep" in result.out + result.err and "older_than" not in result.out + result.err
