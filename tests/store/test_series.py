"""Samples packed per attempt: exact round trip, a few bytes a sample, and stores of schema 1 still read."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from flyte_decl.store.schema import MIGRATIONS, SCHEMA_VERSION, _statements
from flyte_decl.store.series import pack, unpack
from flyte_decl.store.store import Store


def test_pack_round_trips_to_the_microsecond() -> None:
    samples = [(1764000000.123456 + 0.1 * i, 30_000_000 + 4096 * (i % 7), 0.0123 * i) for i in range(1000)]
    back = unpack(pack(samples))
    assert len(back) == 1000
    for (t0, r0, c0), (t1, r1, c1) in zip(samples, back, strict=True):
        assert abs(t0 - t1) < 1e-6 and r0 == r1 and abs(c0 - c1) < 1e-6
    assert len(pack(samples)) < 8 * len(samples)  # a row and an index entry each took about 66 bytes
    assert unpack(pack([])) == []


def test_a_store_of_schema_1_migrates_and_its_samples_still_read(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "runs.db", isolation_level=None)
    for statement in _statements(MIGRATIONS[0]):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO runs (id, task, environment, status, created_at, host, pid, pid_started_at, snapshot,"
        " log_dir) VALUES ('r1', 'e.t', 'e', 'succeeded', 1, 'h', 1, 1, '{}', '')"
    )
    conn.execute(
        "INSERT INTO actions (run_id, action, attempt, task, environment, idx, queue, limits, phase, queued_at)"
        " VALUES ('r1', 'a1', 1, 'e.t', 'e', 0, 'default', '{}', 'succeeded', 1)"
    )
    conn.executemany(
        "INSERT INTO samples (run_id, action, attempt, time, rss, cpu) VALUES ('r1', 'a1', 1, ?, ?, ?)",
        [(1.0, 100, 0.5), (1.1, 200, 0.6)],
    )
    conn.close()
    store = Store.open(tmp_path)
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.samples("r1") == {("a1", 1): [(1.0, 100, 0.5), (1.1, 200, 0.6)]}
    store.close()
