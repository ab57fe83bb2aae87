"""Which recorded runs to remove, and removing them: rows, samples, payloads, specs and files.

`flyte-decl runs prune` and `runs delete` call `remove` directly; the config's `retention:`
setting is applied after each run. A run is removed whole (its rows, its log folder and data
folder under the home folder, the payloads and specs only it referred to), then the space is
given back to the file system. Running runs are never removed. Like `docker system prune` and
`nextflow clean`, pruning says what it removed.

    policy = Retention(keep=50, older_than=30 * 86400, statuses=("failed",))
    removed = remove(store, select(store, policy))
    removed.runs            # ["r1", "r2"]
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flyte_decl.quantity import parse_duration
from flyte_decl.store.store import RUNNING, Store

# Folders under the home folder that hold one sub-folder per run.
RUN_FOLDERS = ("logs", "data")


@dataclass(frozen=True)
class Retention:
    """Runs to remove: those past the newest `keep`, AND started over `older_than` seconds ago, AND in
    one of `statuses`; a criterion left unset does not restrict. With none set, nothing is removed.
    """

    keep: int | None = None
    older_than: float | None = None
    statuses: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return self.keep is not None or self.older_than is not None or bool(self.statuses)

    @classmethod
    def from_config(cls, data: Mapping[str, Any] | None) -> Retention:
        """From the config's (validated) `retention:` mapping: keep, older_than, status."""
        data = data or {}
        older = data.get("older_than")
        return cls(
            data.get("keep"),
            float(parse_duration(older)) if older is not None else None,
            tuple(data.get("status") or ()),
        )


@dataclass
class Removed:
    """What a prune or delete removed, and the store's size on disk before and after."""

    runs: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    file_bytes: int = 0
    store_before: int = 0
    store_after: int = 0


def select(
    store: Store, policy: Retention, *, now: float | None = None, spare: str | None = None
) -> list[str]:
    """Ids of the finished runs the policy removes, oldest first; never `spare` (the run just made)."""
    if not policy.active:
        return []
    now = time.time() if now is None else now
    newest_first = store.conn.execute("SELECT id, status, created_at FROM runs ORDER BY seq DESC").fetchall()
    chosen = []
    for position, (run, status, created) in enumerate(newest_first):
        if status == RUNNING or run == spare:
            continue
        if policy.keep is not None and position < policy.keep:
            continue
        if policy.older_than is not None and created > now - policy.older_than:
            continue
        if policy.statuses and status not in policy.statuses:
            continue
        chosen.append(run)
    return chosen[::-1]


def remove(store: Store, run_ids: Sequence[str], *, vacuum: bool | None = True) -> Removed:
    """Remove these runs whole (rows, then their folders), then give the space back.

    `vacuum=None` rewrites the file only when a quarter of it is free pages (after each run).
    """
    removed = Removed(store_before=store.size())
    existing = {r for (r,) in store.conn.execute("SELECT id FROM runs WHERE status != ?", (RUNNING,))}
    removed.runs = [run for run in run_ids if run in existing]
    if removed.runs:
        removed.rows = store.delete_runs(removed.runs)
        for run in removed.runs:
            for folder in RUN_FOLDERS:
                removed.file_bytes += _remove_tree(store.home / folder / run)
        if vacuum is None:
            free, pages = (
                store.conn.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("freelist_count", "page_count")
            )
            vacuum = free * 4 >= pages
        store.reclaim(vacuum=vacuum)
    removed.store_after = store.size()
    return removed


def apply_retention(store: Store, config: Mapping[str, Any] | None, just_made: str) -> Removed | None:
    """After a run: the config's `retention:` policy, sparing the run just made; None without a policy."""
    policy = Retention.from_config(config)
    if not policy.active:
        return None
    return remove(store, select(store, policy, spare=just_made), vacuum=None)


def _remove_tree(path: Path) -> int:
    """Delete a folder, returning the bytes its files held; a folder that is gone counts 0."""
    if not path.is_dir():
        return 0
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    shutil.rmtree(path, ignore_errors=True)
    return size
