"""The store on its own (real SQLite): telling dead runners from live ones, and the schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flyte_decl.runtime.records import ActionRecord, Phase
from flyte_decl.store.schema import SCHEMA_VERSION
from flyte_decl.store.store import RUNNING, AttemptRow, Store


def _start(store: Store) -> str:
    run = store.create_run(task="e.t", environment="e", snapshot={}, inputs=b"x", inputs_json={})
    record = ActionRecord(
        "a1", None, "e.t", 0, 1, "default", {}, queued_at=run.created_at, phase=Phase.RUNNING
    )
    store.record_attempts(run.id, [AttemptRow(record, "e")])
    return run.id


def test_only_runs_whose_runner_is_gone_are_settled(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    live, reused, exited, elsewhere = (_start(store) for _ in range(4))
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    store.conn.execute("UPDATE runs SET pid_started_at = pid_started_at - 100 WHERE id = ?", (reused,))
    store.conn.execute("UPDATE runs SET pid = ? WHERE id = ?", (int(finished.stdout), exited))
    store.conn.execute("UPDATE runs SET host = 'another-host', pid = 1 WHERE id = ?", (elsewhere,))

    assert sorted(store.settle_dead_runs()) == sorted([reused, exited])
    assert {run.id: run.status for run in store.runs()} == {
        live: RUNNING,  # this process: alive, same start time
        reused: "aborted",  # same pid, another process (start time differs)
        exited: "aborted",
        elsewhere: RUNNING,  # another host's runner cannot be checked from here
    }
    (action,) = store.actions(exited)
    assert (action.phase, action.message) == (
        "aborted",
        f"the runner (pid {int(finished.stdout)}) died before the run ended",
    )
    assert action.ended_at is not None
    assert store.settle_dead_runs() == []


def test_a_new_store_is_migrated_once_to_the_current_schema(tmp_path: Path) -> None:
    first = Store.open(tmp_path)
    again = Store.open(tmp_path)
    for store in (first, again):
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {name for (name,) in first.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "actions", "samples", "payloads", "specs"} <= tables


def test_an_interrupt_after_the_transaction_ended_stays_an_interrupt(tmp_path: Path) -> None:
    """Ctrl-C right behind a COMMIT: no ROLLBACK error ("no transaction is active") replaces it."""
    store = Store.open(tmp_path)
    run = _start(store)

    with pytest.raises(KeyboardInterrupt), store.transaction() as conn:
        conn.execute("UPDATE runs SET message = 'kept' WHERE id = ?", (run,))
        conn.execute("COMMIT")
        raise KeyboardInterrupt

    assert store.run(run).message == "kept"
