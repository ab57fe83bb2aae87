"""What the run-history commands (`runs`, `logs`, `rerun`, `recover`, `report`) share: finding the store.

The store is `.flyte-decl/` beside the config (`-c PATH`, else the current folder's), or
$FLYTE_DECL_HOME when set, exactly where `flyte-decl run` records.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from flyte_decl import masking
from flyte_decl.session import home_dir
from flyte_decl.store.store import Store, StoredAction, StoredRun

F = TypeVar("F", bound=Callable[..., Any])


def replay_options(func: F) -> F:
    """RUN, -c/--config, --current-config, --overwrite-cache and --json: what rerun and recover share."""
    func = click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON object: run, status, outputs, actions."
    )(func)
    func = click.option(
        "--overwrite-cache", is_flag=True, help="Run cached tasks even on a hit; record anew."
    )(func)
    func = click.option(
        "--current-config", is_flag=True, help="Use the config files as they are now, not the run's snapshot."
    )(func)
    return click.argument("run", metavar="RUN")(store_option(func))


def store_option(func: F) -> F:
    """-c/--config PATH: use the run store beside this config file."""
    return click.option(
        "-c",
        "--config",
        "config",
        type=click.Path(dir_okay=False),
        metavar="PATH",
        default=None,
        help="Use the runs of this config (kept beside it). Default: the current folder's.",
    )(func)


def run_actions(store: Store, run: StoredRun) -> list[StoredAction]:
    """The run's action attempts; what the command prints masks the secrets their specs declare."""
    actions = store.actions(run.id)
    masking.declare(masking.secret_names(None, [action.spec for action in actions]))
    return actions


def open_store(config: str | None) -> Store:
    """The store `flyte-decl run` records into for this config; a usage error if nothing was recorded."""
    root = Path(config).resolve().parent if config else Path.cwd()
    return Store.open(home_dir(root), create=False)
