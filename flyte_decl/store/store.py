"""The run store: one SQLite file (WAL, else a rollback journal) per home folder with every run, action attempt and sample.

Writers are the processes running tasks (several may run at once: each write is one short
`BEGIN IMMEDIATE` transaction); readers are the history commands. Opening the store also settles
runs whose runner died: a run still `running` whose recorded runner (pid and process start time,
on this host) is gone is marked `aborted`, with its unfinished actions.

Example::

    store = Store.open(Path(".flyte-decl"))
    run = store.run("last")
    [action.label for action in store.actions(run.id)]     # ["env1.hello_wf[0]", ...]
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from flyte_decl.problems import UsageError
from flyte_decl.runtime.records import ActionRecord, Phase, display_label
from flyte_decl.store import ids
from flyte_decl.store.schema import migrate
from flyte_decl.store.series import pack as series_pack
from flyte_decl.store.series import unpack as series_unpack
from flyte_decl.store.sources import ConfigSources

STORE_FILE = "runs.db"
BUSY_TIMEOUT = 30.0  # seconds a writer waits for another process's transaction
RUNNING = "running"  # a run's status until its root action's final phase is known
_UNFINISHED = (Phase.QUEUED.value, Phase.RUNNING.value)


@dataclass
class StoredRun:
    """One run as recorded."""

    id: str
    task: str
    environment: str
    status: str
    kind: str | None
    message: str
    created_at: float
    ended_at: float | None
    host: str
    pid: int
    origin: str
    source_run: str | None
    inputs_digest: str | None
    inputs_json: Any
    outputs_digest: str | None
    outputs_json: Any
    snapshot: dict[str, Any]
    log_dir: Path
    mechanisms: dict[str, str]

    @property
    def duration(self) -> float | None:
        """Seconds from start to end; None while it runs."""
        return self.ended_at - self.created_at if self.ended_at is not None else None

    def to_json(self) -> dict[str, Any]:
        """The run as `runs list --format json` shows it (no config texts)."""
        return {
            "run": self.id,
            "task": self.task,
            "environment": self.environment,
            "status": self.status,
            "kind": self.kind,
            "message": self.message,
            "created_at": self.created_at,
            "ended_at": self.ended_at,
            "duration": self.duration,
            "origin": self.origin,
            "source_run": self.source_run,
            "inputs": self.inputs_json,
            "outputs": self.outputs_json,
            "host": self.host,
            "pid": self.pid,
            "log_dir": str(self.log_dir),
            "config": self.sources.to_json(),
        }

    @property
    def sources(self) -> ConfigSources:
        """The config files (with hashes), profiles, overlays and flags this run was resolved from."""
        return ConfigSources.from_snapshot(self.snapshot)


@dataclass
class StoredAction:
    """One attempt of one action as recorded; `samples` are filled in by `Store.samples`."""

    run_id: str
    id: str
    attempt: int
    parent: str | None
    task: str
    environment: str
    index: int
    queue: str
    limits: dict[str, Any]
    phase: str
    kind: str | None
    message: str
    traceback: str
    queued_at: float
    started_at: float | None
    ended_at: float | None
    pid: int | None
    exit_code: int | None
    signal: int | None
    peak_memory: int | None
    cpu_seconds: float | None
    log_path: Path | None
    inputs_digest: str | None
    outputs_digest: str | None
    cache_key: str | None
    spec: dict[str, Any] | None
    group: str | None = None  # the `flyte.group` its caller started it in
    short_name: str | None = None  # Flyte's `short_name`, when it is not the function's name
    node: str | None = None  # the machine it ran on, on a backend with several (Ray's node id)
    samples: list[tuple[float, int, float]] = field(default_factory=list)

    @property
    def label(self) -> str:
        """`env2.square[3]`: the task and its ordinal among the run's calls of it."""
        return f"{self.task}[{self.index}]"

    @property
    def display(self) -> str:
        """The label with its group and short name (`records.display_label`), as output shows it."""
        return display_label(self.label, self.group, self.short_name)

    @property
    def duration(self) -> float | None:
        """Seconds the attempt ran; None if it never started or has not ended."""
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at

    def to_json(self) -> dict[str, Any]:
        """The attempt as `runs show --format json` shows it (samples are for the report)."""
        return {
            "id": self.id,
            "attempt": self.attempt,
            "parent": self.parent,
            "task": self.task,
            "environment": self.environment,
            "label": self.label,
            "group": self.group,
            "short_name": self.short_name,
            "queue": self.queue,
            "phase": self.phase,
            "kind": self.kind,
            "message": self.message,
            "traceback": self.traceback,
            "queued_at": self.queued_at,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration": self.duration,
            "pid": self.pid,
            "node": self.node,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "peak_memory": self.peak_memory,
            "cpu_seconds": self.cpu_seconds,
            "limits": self.limits,
            "log_path": str(self.log_path) if self.log_path else None,
            "cache_key": self.cache_key,
            "spec": self.spec,
        }


@dataclass(frozen=True)
class Found:
    """Outputs recorded for an action: the payload's digest and where it was recorded."""

    digest: str
    run_id: str
    action: str

    @property
    def source(self) -> str:
        """`r3/a2`: the run and action that recorded these outputs."""
        return f"{self.run_id}/{self.action}"


def digest_of(data: bytes) -> str:
    """The content address of a payload or spec."""
    return hashlib.sha256(data).hexdigest()


class Store:
    """The run history in `home/runs.db`; one connection, used by one thread at a time."""

    def __init__(self, home: Path, conn: sqlite3.Connection) -> None:
        self.home = home
        self.conn = conn
        self.host = socket.gethostname()

    @classmethod
    def open(cls, home: Path, *, create: bool = True) -> Store:
        """Open (or, with `create`, create) the store and settle runs whose runner died."""
        path = home / STORE_FILE
        if not create and not path.exists():
            raise UsageError(
                f"no runs recorded in {home} (hint: start one with 'flyte-decl run TASK'; runs are kept "
                "in .flyte-decl/ beside the config, or in $FLYTE_DECL_HOME)"
            )
        try:
            home.mkdir(parents=True, exist_ok=True)
            conn = _connect(path)
            conn.execute("PRAGMA foreign_keys = ON")
            migrate(conn)
        except (OSError, sqlite3.Error) as exc:
            raise UsageError(
                f"cannot open the run store {path}: {exc} (hint: check permissions, or set FLYTE_DECL_HOME "
                "to a folder on a local disk)"
            ) from None
        store = cls(home, conn)
        store.settle_dead_runs()
        return store

    def close(self) -> None:
        """Close the connection (the file stays)."""
        self.conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding the write lock from its start (no upgrade deadlocks)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            if self.conn.in_transaction:  # a statement's failure may have ended it already
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- writing --------------------------------------------------------------------------------

    def create_run(
        self,
        *,
        task: str,
        environment: str,
        snapshot: dict[str, Any],
        inputs: bytes | None,
        inputs_json: Any,
        origin: str = "run",
        source_run: str | None = None,
    ) -> StoredRun:
        """Record a run that starts now in this process; allocates its id and its log folder.

        `inputs` is None when they are not to be kept (they hold a secret value).
        """
        now = time.time()
        pid = os.getpid()
        started = _process_start(pid) or now
        inputs_digest = digest_of(inputs) if inputs is not None else None
        with self.transaction() as conn:
            if inputs_digest is not None and inputs is not None:
                self._put_payload(inputs_digest, inputs)
            cursor = conn.execute(
                "INSERT INTO runs (id, task, environment, status, created_at, host, pid, pid_started_at,"
                " origin, source_run, inputs_digest, inputs_json, snapshot, log_dir)"
                " VALUES ('', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '')",
                (task, environment, RUNNING, now, self.host, pid, started, origin, source_run,
                 inputs_digest, json.dumps(inputs_json), json.dumps(snapshot)),
            )  # fmt: skip
            seq = cursor.lastrowid
            assert seq is not None
            run = ids.run_id(seq)
            log_dir = self.home / "logs" / run
            conn.execute("UPDATE runs SET id = ?, log_dir = ? WHERE seq = ?", (run, str(log_dir), seq))
        return self.run(run)

    def record_attempts(self, run_id: str, rows: Sequence[AttemptRow]) -> None:
        """Insert or update action attempts, with their payloads and samples, in one transaction."""
        payloads = {digest: data for row in rows for digest, data in row.payloads}
        specs = {(row.spec_digest, row.spec_json) for row in rows if row.spec_json is not None}
        series = [
            (run_id, row.record.id, row.record.attempt, len(row.samples), series_pack(row.samples))
            for row in rows
            if row.samples
        ]
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO payloads (digest, size, data) VALUES (?, ?, ?)",
                [(digest, len(data), data) for digest, data in payloads.items()],
            )
            conn.executemany("INSERT OR IGNORE INTO specs (digest, spec) VALUES (?, ?)", specs)
            conn.executemany(_UPSERT_ATTEMPT, [(run_id, *row.values) for row in rows])
            conn.executemany(
                "INSERT OR REPLACE INTO series (run_id, action, attempt, count, data) VALUES (?, ?, ?, ?, ?)",
                series,
            )

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        kind: str | None,
        message: str,
        outputs: bytes | None,
        outputs_json: Any,
        mechanisms: dict[str, str],
    ) -> None:
        """Record how a run ended."""
        digest = digest_of(outputs) if outputs is not None else None
        with self.transaction() as conn:
            if digest is not None and outputs is not None:
                self._put_payload(digest, outputs)
            conn.execute(
                "UPDATE runs SET status = ?, kind = ?, message = ?, ended_at = ?, outputs_digest = ?,"
                " outputs_json = ?, mechanisms = ? WHERE id = ?",
                (status, kind, message, time.time(), digest, json.dumps(outputs_json), json.dumps(mechanisms),
                 run_id),
            )  # fmt: skip

    def settle_dead_runs(self) -> list[str]:
        """Mark `aborted` each run of this host whose runner is gone, and its unfinished actions."""
        rows = self.conn.execute(
            "SELECT id, pid, pid_started_at FROM runs WHERE status = ? AND host = ?", (RUNNING, self.host)
        ).fetchall()
        dead = [(run, pid) for run, pid, started in rows if not _alive(pid, started)]
        for run, pid in dead:
            message = f"the runner (pid {pid}) died before the run ended"
            with self.transaction() as conn:
                if conn.execute("SELECT status FROM runs WHERE id = ?", (run,)).fetchone()[0] != RUNNING:
                    continue  # settled by another process meanwhile
                last = conn.execute(
                    "SELECT MAX(MAX(queued_at), MAX(COALESCE(started_at, 0)), MAX(COALESCE(ended_at, 0)))"
                    " FROM actions WHERE run_id = ?",
                    (run,),
                ).fetchone()[0]
                ended = last or conn.execute("SELECT created_at FROM runs WHERE id = ?", (run,)).fetchone()[0]
                conn.execute(
                    "UPDATE actions SET phase = ?, message = ?, ended_at = COALESCE(ended_at, ?)"
                    " WHERE run_id = ? AND phase IN (?, ?)",
                    (Phase.ABORTED.value, message, ended, run, *_UNFINISHED),
                )
                conn.execute(
                    "UPDATE runs SET status = ?, message = ?, ended_at = ? WHERE id = ?",
                    (Phase.ABORTED.value, message, ended, run),
                )
        return [run for run, _ in dead]

    def delete_runs(self, run_ids: Sequence[str]) -> dict[str, int]:
        """Remove runs with their attempts and samples, then every payload and spec no run refers to.

        One transaction: a reader sees the runs whole or not at all. Returns how many rows of each
        kind went. Runs still `running` are never removed (their runner writes on).
        """
        removed = {"runs": 0, "actions": 0, "samples": 0, "payloads": 0, "specs": 0}
        with self.transaction() as conn:
            for start in range(0, len(run_ids), 500):
                chunk = list(run_ids[start : start + 500])
                marks = ", ".join("?" * len(chunk))
                chunk = [r for (r,) in conn.execute(
                    f"SELECT id FROM runs WHERE id IN ({marks}) AND status != ?", (*chunk, RUNNING))]  # fmt: skip
                marks = ", ".join("?" * len(chunk))
                removed["samples"] += conn.execute(
                    f"SELECT COALESCE(SUM(count), 0) FROM series WHERE run_id IN ({marks})", chunk
                ).fetchone()[0]
                for table, column in (("samples", "run_id"), ("series", "run_id"), ("actions", "run_id"),
                                      ("runs", "id")):  # fmt: skip
                    cursor = conn.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", chunk)
                    removed[table] = removed.get(table, 0) + cursor.rowcount
            removed["payloads"] = conn.execute(
                "DELETE FROM payloads WHERE digest NOT IN (SELECT inputs_digest FROM actions WHERE inputs_digest"
                " IS NOT NULL UNION SELECT outputs_digest FROM actions WHERE outputs_digest IS NOT NULL"
                " UNION SELECT inputs_digest FROM runs WHERE inputs_digest IS NOT NULL"
                " UNION SELECT outputs_digest FROM runs WHERE outputs_digest IS NOT NULL)"
            ).rowcount
            removed["specs"] = conn.execute(
                "DELETE FROM specs WHERE digest NOT IN"
                " (SELECT spec_digest FROM actions WHERE spec_digest IS NOT NULL)"
            ).rowcount
        return removed

    def reclaim(self, *, vacuum: bool = True) -> None:
        """Give freed pages back to the file system: checkpoint the WAL, then VACUUM.

        VACUUM needs the file to itself for a moment; while another process reads or writes, it is
        skipped (the pages stay free for new rows), and the WAL is truncated as far as it can be.
        """
        if vacuum:
            with contextlib.suppress(sqlite3.OperationalError):
                self.conn.execute("VACUUM")
        with contextlib.suppress(sqlite3.OperationalError):
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def size(self) -> int:
        """Bytes on disk of the store file and its WAL."""
        files = [self.home / STORE_FILE, self.home / f"{STORE_FILE}-wal"]
        return sum(path.stat().st_size for path in files if path.exists())

    def _put_payload(self, digest: str, data: bytes) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO payloads (digest, size, data) VALUES (?, ?, ?)", (digest, len(data), data)
        )

    # -- reading --------------------------------------------------------------------------------

    def runs(
        self,
        *,
        status: Sequence[str] = (),
        task: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[StoredRun]:
        """Runs, newest first; `task` matches the full name or the short name."""
        where: list[str] = []
        args: list[Any] = []
        if status:
            where.append(f"status IN ({', '.join('?' * len(status))})")
            args += list(status)
        if task:
            where.append("(task = ? OR task LIKE ?)")
            args += [task, f"%.{task}"]
        if since is not None:
            where.append("created_at >= ?")
            args.append(since)
        if until is not None:
            where.append("created_at < ?")
            args.append(until)
        sql = f"SELECT {_RUN_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_run(row) for row in self.conn.execute(sql, args)]

    def run(self, ref: str) -> StoredRun:
        """The run with id `ref` (or `last`); a usage error with a did-you-mean otherwise."""
        if ref == ids.LAST:
            row = self.conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY seq DESC LIMIT 1").fetchone()
        else:
            row = self.conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (ref,)).fetchone()
        if row is None:
            recent = [r for (r,) in self.conn.execute("SELECT id FROM runs ORDER BY seq DESC LIMIT 50")]
            raise ids.unknown_run(ref, recent, str(self.home))
        return _run(row)

    def actions(self, run_id: str) -> list[StoredAction]:
        """Every attempt of every action of a run, in the order they were queued."""
        rows = self.conn.execute(
            f"SELECT {_ACTION_COLUMNS} FROM actions LEFT JOIN specs ON specs.digest = actions.spec_digest"
            " WHERE run_id = ? ORDER BY CAST(SUBSTR(action, 2) AS INTEGER), attempt",
            (run_id,),
        )
        return [_action(row) for row in rows]

    def phase_counts(self, run_ids: Sequence[str]) -> dict[str, Counter[str]]:
        """For each run, how many of its actions ended (or are) in each phase, by their latest attempt."""
        out: dict[str, Counter[str]] = {run: Counter() for run in run_ids}
        for start in range(0, len(run_ids), 500):
            chunk = list(run_ids[start : start + 500])
            rows = self.conn.execute(
                "SELECT run_id, phase, COUNT(*) FROM actions AS a WHERE run_id IN"
                f" ({', '.join('?' * len(chunk))}) AND attempt = (SELECT MAX(attempt) FROM actions AS b"
                " WHERE b.run_id = a.run_id AND b.action = a.action) GROUP BY run_id, phase",
                chunk,
            )
            for run, phase, count in rows:
                out[run][phase] = count
        return out

    def samples(self, run_id: str) -> dict[tuple[str, int], list[tuple[float, int, float]]]:
        """(action, attempt) -> its resource samples (time, RSS bytes, cumulative CPU seconds)."""
        out: dict[tuple[str, int], list[tuple[float, int, float]]] = {}
        rows = self.conn.execute(
            "SELECT action, attempt, time, rss, cpu FROM samples WHERE run_id = ? ORDER BY time", (run_id,)
        )
        for action, attempt, at, rss, cpu in rows:  # recorded before the `series` table
            out.setdefault((action, attempt), []).append((at, rss, cpu))
        for action, attempt, data in self.conn.execute(
            "SELECT action, attempt, data FROM series WHERE run_id = ?", (run_id,)
        ):
            out[action, attempt] = series_unpack(data)
        return out

    def payload(self, digest: str) -> bytes:
        """A recorded payload by its digest."""
        row = self.conn.execute("SELECT data FROM payloads WHERE digest = ?", (digest,)).fetchone()
        if row is None:
            raise UsageError(f"payload {digest[:12]} is missing from the run store {self.home}")
        data: bytes = row[0]
        return data

    def cached(self, cache_key: str, max_age: float | None = None) -> Found | None:
        """The newest outputs recorded under a cache key: by an action that ran, or one that reused them
        (so the cache outlives a pruned run as long as a kept run holds its outputs).

        With `max_age` (seconds), only outputs of an action that ran and ended within it count.
        """
        succeeded, cached = Phase.SUCCEEDED.value, Phase.CACHED.value
        # A reuse does not make outputs younger: with max_age, only actions that ran count.
        reused = cached if max_age is None else succeeded
        since = time.time() - max_age if max_age is not None else 0.0
        row = self.conn.execute(
            "SELECT outputs_digest, run_id, action FROM actions WHERE cache_key = ? AND phase IN (?, ?)"
            " AND outputs_digest IS NOT NULL AND ended_at >= ? ORDER BY phase = ? DESC, ended_at DESC LIMIT 1",
            (cache_key, succeeded, reused, since, succeeded),
        ).fetchone()
        return Found(*row) if row else None

    def succeeded(self, run_id: str, task: str, inputs_digest: str) -> Found | None:
        """Outputs of an action of `run_id` that succeeded (or was cached) for this task and these inputs."""
        row = self.conn.execute(
            "SELECT outputs_digest, run_id, action FROM actions WHERE run_id = ? AND task = ?"
            " AND inputs_digest = ? AND phase IN (?, ?) AND outputs_digest IS NOT NULL LIMIT 1",
            (run_id, task, inputs_digest, Phase.SUCCEEDED.value, Phase.CACHED.value),
        ).fetchone()
        return Found(*row) if row else None


@dataclass
class AttemptRow:
    """An action attempt ready to write: the record plus what the recorder knows beside it."""

    record: ActionRecord
    environment: str
    spec_digest: str | None = None
    spec_json: str | None = None  # the spec itself, when the store may not have it yet
    inputs_digest: str | None = None
    outputs_digest: str | None = None
    cache_key: str | None = None
    payloads: list[tuple[str, bytes]] = field(default_factory=list)
    samples: list[tuple[float, int, float]] = field(default_factory=list)

    @property
    def values(self) -> tuple[Any, ...]:
        """The row's columns after run_id, in `_UPSERT_ATTEMPT`'s order."""
        record = self.record
        return (
            record.id, record.attempt, record.parent, record.task, self.environment, record.index,
            record.queue, self.spec_digest, json.dumps(record.limits), record.phase.value,
            record.kind.value if record.kind else None, record.message, record.traceback, record.queued_at,
            record.started_at, record.ended_at, record.pid, record.exit_code, record.signal,
            record.peak_memory, record.cpu_seconds, str(record.log_path) if record.log_path else None,
            self.inputs_digest, self.outputs_digest, self.cache_key, record.group, record.short_name,
            record.node,
        )  # fmt: skip


_UPSERT_ATTEMPT = """
INSERT INTO actions (run_id, action, attempt, parent, task, environment, idx, queue, spec_digest, limits,
    phase, kind, message, traceback, queued_at, started_at, ended_at, pid, exit_code, signal, peak_memory,
    cpu_seconds, log_path, inputs_digest, outputs_digest, cache_key, group_name, short_name, node)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (run_id, action, attempt) DO UPDATE SET
    limits = excluded.limits, phase = excluded.phase, kind = excluded.kind, message = excluded.message,
    traceback = excluded.traceback, started_at = excluded.started_at, ended_at = excluded.ended_at,
    pid = excluded.pid, node = excluded.node, exit_code = excluded.exit_code, signal = excluded.signal,
    peak_memory = excluded.peak_memory, cpu_seconds = excluded.cpu_seconds, log_path = excluded.log_path,
    spec_digest = COALESCE(excluded.spec_digest, spec_digest),
    inputs_digest = COALESCE(excluded.inputs_digest, inputs_digest),
    outputs_digest = COALESCE(excluded.outputs_digest, outputs_digest),
    cache_key = COALESCE(excluded.cache_key, cache_key)
"""

_RUN_COLUMNS = (
    "id, task, environment, status, kind, message, created_at, ended_at, host, pid, origin, source_run,"
    " inputs_digest, inputs_json, outputs_digest, outputs_json, snapshot, log_dir, mechanisms"
)

_ACTION_COLUMNS = (
    "run_id, action, attempt, parent, task, environment, idx, queue, limits, phase, kind, message,"
    " traceback, queued_at, started_at, ended_at, pid, exit_code, signal, peak_memory, cpu_seconds,"
    " log_path, inputs_digest, outputs_digest, cache_key, specs.spec, group_name, short_name, node"
)


def _run(row: tuple[Any, ...]) -> StoredRun:
    (run, task, environment, status, kind, message, created, ended, host, pid, origin, source,
     inputs_digest, inputs_json, outputs_digest, outputs_json, snapshot, log_dir, mechanisms) = row  # fmt: skip
    return StoredRun(
        run, task, environment, status, kind, message, created, ended, host, pid, origin, source,
        inputs_digest, _json(inputs_json), outputs_digest, _json(outputs_json), json.loads(snapshot),
        Path(log_dir), json.loads(mechanisms),
    )  # fmt: skip


def _action(row: tuple[Any, ...]) -> StoredAction:
    values = list(row)
    values[8] = json.loads(values[8])  # limits
    values[21] = Path(values[21]) if values[21] else None  # log path
    values[25] = json.loads(values[25]) if values[25] else None  # spec
    return StoredAction(*values)


def _json(text: str | None) -> Any:
    return json.loads(text) if text is not None else None


# Stores found on a filesystem where WAL does not work, in this process: tried and noticed once.
_ROLLBACK_JOURNAL: set[Path] = set()


def _connect(path: Path) -> sqlite3.Connection:
    """A connection in WAL mode or, where WAL does not work, with a rollback journal (one notice).

    WAL needs its ``-shm`` index memory-mapped and shared between processes, which NFS, 9p and some
    FUSE filesystems cannot do: switching to WAL still succeeds there, and the first read fails
    with "disk I/O error". Such a store is converted to a rollback journal (journal_mode=DELETE,
    SQLite's own default): concurrent runs then wait for each other's writes instead of reading
    beside them. Raises sqlite3.Error or OSError when even that does not work.
    """
    if path in _ROLLBACK_JOURNAL:
        return sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    try:
        _use_wal(conn)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # maps the WAL index
    except sqlite3.OperationalError as exc:
        conn.close()
        if "disk I/O error" not in str(exc):
            raise
    else:
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL: durable across a killed process, fast commits
        return conn
    # A store in WAL mode cannot even be read without the index, except under exclusive locking,
    # where SQLite keeps the index in private memory: convert it so, then reopen it shared.
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")  # before anything reads the file
        conn.execute("PRAGMA journal_mode = DELETE")
    finally:
        conn.close()
    _ROLLBACK_JOURNAL.add(path)
    print(
        f"notice: SQLite's WAL does not work for the run store {path} (disk I/O error: NFS or 9p?); using "
        "a rollback journal (set FLYTE_DECL_HOME to a folder on a local disk for concurrent runs)",
        file=sys.stderr,
    )
    return sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch a new store to WAL; that needs the file to itself and does not wait, so retry meanwhile."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _process_start(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def _alive(pid: int, started_at: float) -> bool:
    """Is the process that started at `started_at` still running as `pid` (not reused, not a zombie)?"""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return abs(process.create_time() - started_at) < 1.0
    except psutil.Error:
        return False
