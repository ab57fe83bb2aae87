"""`flyte-decl recover RUN`: only what did not succeed runs again, including after `kill -9` of the runner."""

from __future__ import annotations

import json
import os
import signal

import psutil


def _actions(ws, run: str) -> list[dict]:
    result = ws.cli("runs", "show", run, "--format", "json")
    assert result.code == 0, result.err
    return json.loads(result.out)["actions"]


def test_recover_reruns_the_failed_action_and_reuses_the_succeeded_ones(ws) -> None:
    failing = ws.touch("fail-2", "0.3")
    assert ws.cli("run", "fan", "--n", "4").code == 1
    failing.unlink()
    succeeded = [a for a in _actions(ws, "r1") if a["phase"] == "succeeded"]

    result = ws.cli("recover", "r1", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert (data["run"], data["status"], data["outputs"]) == ("r2", "succeeded", [0, 10, 20, 30])
    cached = [a for a in data["actions"] if a["phase"] == "cached"]
    assert sorted(a["message"] for a in cached) == sorted(
        f"outputs reused from r1/{a['id']}" for a in succeeded
    )
    assert len(succeeded) == 3  # pieces 0, 1 and 3 (piece 2 failed late, after them)
    ran = [(a["task"], a["phase"]) for a in data["actions"] if a["pid"] is not None]
    assert ran == [("wf.fan", "succeeded"), ("wf.piece", "succeeded")]  # the only processes: fan, piece 2
    assert json.loads(ws.cli("runs", "list", "--format", "json", "-n", "1").out)[0]["source_run"] == "r1"


def test_kill_9_of_the_runner_is_settled_as_aborted_and_recover_completes_the_run(ws) -> None:
    gate = ws.touch("block-3")
    runner = ws.spawn("run", "fan", "--n", "4")
    ws.wait_for(lambda: (ws.root / "blocked-3").exists(), "piece 3 to block")
    store_file = ws.root / ".flyte-decl" / "runs.db"

    def three_pieces_recorded() -> bool:
        store = ws.store()
        try:
            return sum(a.phase == "succeeded" for a in store.actions("r1")) == 3
        finally:
            store.close()

    ws.wait_for(three_pieces_recorded, "three pieces recorded as succeeded")
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait(timeout=10)
    gate.unlink()
    assert store_file.exists()

    # The next command notices the dead runner (pid + start time) and settles its run.
    listed = json.loads(ws.cli("runs", "list", "--format", "json").out)
    assert [(r["run"], r["status"]) for r in listed] == [("r1", "aborted")]
    assert listed[0]["message"] == f"the runner (pid {runner.pid}) died before the run ended"
    killed = _actions(ws, "r1")
    assert sorted(a["phase"] for a in killed) == ["aborted", "aborted", "succeeded", "succeeded", "succeeded"]
    assert all(a["ended_at"] is not None for a in killed)

    result = ws.cli("recover", "r1", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert (data["status"], data["outputs"]) == ("succeeded", [0, 10, 20, 30])
    counts = {}
    for action in data["actions"]:
        counts[(action["task"], action["phase"])] = counts.get((action["task"], action["phase"]), 0) + 1
    assert counts == {("wf.fan", "succeeded"): 1, ("wf.piece", "cached"): 3, ("wf.piece", "succeeded"): 1}
    reused = sorted(a["message"] for a in data["actions"] if a["phase"] == "cached")
    succeeded_before = sorted(
        f"outputs reused from r1/{a['id']}" for a in killed if a["phase"] == "succeeded"
    )
    assert reused == succeeded_before


def test_recover_errors(ws) -> None:
    ws.cli("run", "greet")
    result = ws.cli("recover", "r1")
    assert (result.code, result.err) == (
        2,
        "error: run r1 succeeded: nothing to recover (hint: 'flyte-decl rerun r1' runs it again)\n",
    )
    store = ws.store()
    # As if this (live) process were still running r1.
    store.conn.execute(
        "UPDATE runs SET status = 'running', pid = ?, pid_started_at = ? WHERE id = 'r1'",
        (os.getpid(), psutil.Process().create_time()),
    )
    store.close()
    result = ws.cli("recover", "r1")
    assert (result.code, result.err) == (
        2,
        f"error: run r1 is still running (runner pid {os.getpid()}) (hint: wait for it, or stop it with "
        f"'kill {os.getpid()}' first)\n",
    )


def test_ctrl_c_ends_the_run_aborted_in_the_store(ws) -> None:
    ws.touch("block-1")
    runner = ws.spawn("run", "fan", "--n", "2")
    ws.wait_for(lambda: (ws.root / "blocked-1").exists(), "piece 1 to block")
    # Piece 0 runs beside piece 1: on a busy machine it may end after piece 1 blocks.
    ws.wait_for(lambda: "succeeded" in {a["phase"] for a in _actions(ws, "r1")}, "piece 0 to succeed")
    runner.send_signal(signal.SIGINT)
    assert runner.wait(timeout=30) == 130
    (run,) = json.loads(ws.cli("runs", "list", "--format", "json").out)
    assert (run["status"], run["message"]) == ("aborted", "run aborted")
    assert sorted(a["phase"] for a in _actions(ws, "r1")) == ["aborted", "aborted", "succeeded"]
