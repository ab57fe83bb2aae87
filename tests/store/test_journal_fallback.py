"""A run store where SQLite's WAL does not work: a rollback journal with one notice, or one error line.

On NFS and 9p, switching to WAL succeeds and the first read fails with "disk I/O error": WAL's
index (the ``-shm`` file) must be memory-mapped and shared, and there it cannot be. A ``-shm`` that
is a FIFO fails the same way at the same step (its size cannot be set), on any filesystem and for
any user, so these tests plant one.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flyte_decl.problems import UsageError
from flyte_decl.store.store import STORE_FILE, Store

NOTICE = "notice: SQLite's WAL does not work for the run store"


def _unmappable_index(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    os.mkfifo(home / f"{STORE_FILE}-shm")


def test_wal_fails_as_on_nfs_with_an_unmappable_index(tmp_path: Path) -> None:
    """The failure itself, as SQLite reports it: the mode switch succeeds, the first read fails."""
    _unmappable_index(tmp_path)
    conn = sqlite3.connect(tmp_path / STORE_FILE, isolation_level=None)
    assert conn.execute("PRAGMA journal_mode = WAL").fetchone() == ("wal",)
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    conn.close()


@pytest.mark.parametrize("left_in_wal", [False, True], ids=["new store", "store left in WAL mode"])
def test_the_store_falls_back_to_a_rollback_journal_with_one_notice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], left_in_wal: bool
) -> None:
    home = tmp_path / "home"
    if left_in_wal:  # made where WAL worked, then moved (or mounted) where it does not
        Store.open(home).close()
        (home / f"{STORE_FILE}-shm").unlink(missing_ok=True)
        os.mkfifo(home / f"{STORE_FILE}-shm")
    else:
        _unmappable_index(home)
    capsys.readouterr()

    first = Store.open(home)
    second = Store.open(home)  # as the recorder's own connection does
    run = first.create_run(task="e.t", environment="e", snapshot={}, inputs=b"x", inputs_json={})

    assert second.run(run.id).task == "e.t"
    assert first.conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    first.close()
    second.close()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(NOTICE), err
    assert "rollback journal" in err and "FLYTE_DECL_HOME" in err


def test_a_run_on_such_a_store_succeeds_with_one_notice_and_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text("def hello(n: int) -> int:\n    return n + 1\n")
    (tmp_path / "environments.yaml").write_text(
        textwrap.dedent(
            """
            version: 1
            environments:
              env1:
                tasks:
                  hello: {fn: "tasks:hello"}
            """
        )
    )
    home = tmp_path / "nfs-home"
    _unmappable_index(home)
    env = {**os.environ, "FLYTE_DECL_HOME": str(home)}

    ran = subprocess.run(
        [sys.executable, "-m", "flyte_decl", "run", "hello", "--n", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    listed = subprocess.run(
        [sys.executable, "-m", "flyte_decl", "runs", "list"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "2"
    assert [line for line in ran.stderr.splitlines() if line.startswith("notice:")] == [
        line for line in ran.stderr.splitlines() if NOTICE in line
    ]
    assert sum(NOTICE in line for line in ran.stderr.splitlines()) == 1
    assert "Traceback" not in ran.stderr + listed.stderr
    assert listed.returncode == 0 and "env1.hello" in listed.stdout


def test_a_store_that_cannot_be_opened_fails_with_one_line_naming_flyte_decl_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("not a folder")

    with pytest.raises(UsageError) as raised:
        Store.open(home)

    assert str(raised.value) == (
        f"cannot open the run store {home / STORE_FILE}: [Errno 17] File exists: '{home}' "
        "(hint: check permissions, or set FLYTE_DECL_HOME to a folder on a local disk)"
    )
