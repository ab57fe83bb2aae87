"""The run store's tables and their migrations; `PRAGMA user_version` is the schema version.

Each migration is one script run in the transaction that moves the version up by one, so a store
is always at exactly one version, and two processes opening an old store at once migrate it once.

Example::

    conn = sqlite3.connect(".flyte-decl/runs.db", isolation_level=None)
    migrate(conn)         # -> SCHEMA_VERSION
"""

from __future__ import annotations

import sqlite3

from flyte_decl.problems import UsageError

MIGRATIONS: list[str] = [
    # 1: runs, action attempts, their resource samples, payloads by digest and resolved specs by digest.
    """
    CREATE TABLE runs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,               -- "r12"
        task TEXT NOT NULL,                    -- full name of the root task
        environment TEXT NOT NULL,
        status TEXT NOT NULL,                  -- running, then the root's final phase
        kind TEXT,                             -- failure kind of the root, if it failed
        message TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        ended_at REAL,
        host TEXT NOT NULL,                    -- where the runner runs
        pid INTEGER NOT NULL,                  -- the runner, with its start time: tells a dead runner
        pid_started_at REAL NOT NULL,          -- from a live one whose pid was reused
        origin TEXT NOT NULL DEFAULT 'run',    -- run | rerun | recover
        source_run TEXT,                       -- what a rerun or recover started from
        inputs_digest TEXT,
        inputs_json TEXT,
        outputs_digest TEXT,
        outputs_json TEXT,
        snapshot TEXT NOT NULL,                -- JSON: target, config texts, profiles, sets, queue, env
        log_dir TEXT NOT NULL,
        mechanisms TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX runs_by_status ON runs (status);
    CREATE INDEX runs_by_task ON runs (task);
    CREATE INDEX runs_by_created ON runs (created_at);

    CREATE TABLE actions (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        action TEXT NOT NULL,                  -- "a3", unique in its run
        attempt INTEGER NOT NULL,
        parent TEXT,
        task TEXT NOT NULL,
        environment TEXT NOT NULL,
        idx INTEGER NOT NULL,                  -- env2.square[idx]
        queue TEXT NOT NULL,
        spec_digest TEXT REFERENCES specs (digest),
        limits TEXT NOT NULL,                  -- JSON: cpu, memory, timeout, max_inline_io_bytes applied
        phase TEXT NOT NULL,
        kind TEXT,
        message TEXT NOT NULL DEFAULT '',
        traceback TEXT NOT NULL DEFAULT '',
        queued_at REAL NOT NULL,
        started_at REAL,
        ended_at REAL,
        pid INTEGER,
        exit_code INTEGER,
        signal INTEGER,
        peak_memory INTEGER,
        cpu_seconds REAL,
        log_path TEXT,
        inputs_digest TEXT,
        outputs_digest TEXT,
        cache_key TEXT,                        -- set for tasks with cache: auto or override
        PRIMARY KEY (run_id, action, attempt)
    ) WITHOUT ROWID;
    CREATE INDEX actions_by_cache_key ON actions (cache_key, ended_at) WHERE cache_key IS NOT NULL;
    CREATE INDEX actions_by_inputs ON actions (run_id, task, inputs_digest);

    CREATE TABLE samples (
        run_id TEXT NOT NULL,
        action TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        time REAL NOT NULL,                    -- epoch seconds
        rss INTEGER NOT NULL,                  -- bytes, whole process tree
        cpu REAL NOT NULL,                     -- cumulative CPU seconds
        FOREIGN KEY (run_id, action, attempt) REFERENCES actions (run_id, action, attempt) ON DELETE CASCADE
    );
    CREATE INDEX samples_by_attempt ON samples (run_id, action, attempt, time);

    CREATE TABLE payloads (
        digest TEXT PRIMARY KEY,               -- sha256 of data
        size INTEGER NOT NULL,
        data BLOB NOT NULL                     -- serialized inputs or outputs, as they crossed processes
    );

    CREATE TABLE specs (
        digest TEXT PRIMARY KEY,
        spec TEXT NOT NULL                     -- JSON of the resolved TaskSpec; secrets by name only
    );
    """,
    # 2: an attempt's samples as one packed series (see store.series) instead of a row each: 6 to 12
    # bytes a sample instead of about 66 with its index. Older rows in `samples` are still read.
    """
    CREATE TABLE series (
        run_id TEXT NOT NULL,
        action TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        count INTEGER NOT NULL,                -- samples in data
        data BLOB NOT NULL,                    -- zlib of delta-encoded (time us, rss bytes, cpu us)
        PRIMARY KEY (run_id, action, attempt),
        FOREIGN KEY (run_id, action, attempt) REFERENCES actions (run_id, action, attempt) ON DELETE CASCADE
    ) WITHOUT ROWID;
    """,
    # 3: an action's display labels (Flyte's `flyte.group` and `short_name`); NULL in older rows.
    """
    ALTER TABLE actions ADD COLUMN group_name TEXT;
    ALTER TABLE actions ADD COLUMN short_name TEXT;
    """,
    # 4: the machine an attempt ran on, on a backend with several (the Ray node id); NULL locally.
    """
    ALTER TABLE actions ADD COLUMN node TEXT;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the store's schema to SCHEMA_VERSION; a store from a newer flyte-decl is a usage error."""
    version = _version(conn)
    if version == SCHEMA_VERSION:
        return version
    conn.execute("BEGIN IMMEDIATE")  # one migrating process at a time; the others see its result
    try:
        version = _version(conn)
        if version > SCHEMA_VERSION:
            raise UsageError(
                f"the run store is at schema version {version}, newer than this flyte-decl's "
                f"{SCHEMA_VERSION} (hint: upgrade flyte-decl, or set FLYTE_DECL_HOME to another folder)"
            )
        for number in range(version, SCHEMA_VERSION):
            for statement in _statements(MIGRATIONS[number]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number + 1}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # not after the COMMIT (Ctrl-C may land right behind it)
            conn.execute("ROLLBACK")
        raise
    return SCHEMA_VERSION


def _version(conn: sqlite3.Connection) -> int:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


def _statements(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit the migration's transaction)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line.split("--", 1)[0].rstrip() + "\n" if "--" in line else line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return [statement for statement in statements if statement]
