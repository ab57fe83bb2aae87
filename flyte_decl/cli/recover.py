"""`flyte-decl recover RUN`: finish a run that failed or was aborted, re-running only what did not succeed.

Every action of the new run that calls a task with the same inputs as an action that succeeded in
RUN reuses that action's recorded outputs (it shows as `cached`); the rest runs again. The config is
RUN's snapshot unless `--current-config` (e.g. after raising a memory limit).

flyte-decl recover r12
flyte-decl recover last --current-config
"""

from __future__ import annotations

import click

from flyte_decl.cli.history import open_store, replay_options
from flyte_decl.cli.options import verbosity_options
from flyte_decl.cli.rerun import replay, reuse_lines
from flyte_decl.cli.run import enter_systemd_scope, execute
from flyte_decl.problems import UsageError
from flyte_decl.render.run import QUIET
from flyte_decl.store.store import RUNNING


@click.command()
@replay_options
@verbosity_options
def recover(
    run: str, config: str | None, current_config: bool, overwrite_cache: bool, as_json: bool, verbosity: int
) -> int:
    """Re-run RUN (an id like r12, or `last`), reusing the outputs of its actions that succeeded."""
    enter_systemd_scope()  # before the recorded config is loaded and its modules imported
    store = open_store(config)
    try:
        found = store.run(run)
        if found.status == "succeeded":
            raise UsageError(
                f"run {found.id} succeeded: nothing to recover (hint: 'flyte-decl rerun {found.id}' runs it again)"
            )
        if found.status == RUNNING:
            raise UsageError(
                f"run {found.id} is still running (runner pid {found.pid}) "
                f"(hint: wait for it, or stop it with 'kill {found.pid}' first)"
            )
        prepared, inputs, request = replay(store, found, current_config=current_config)
    finally:
        store.close()
    if verbosity > QUIET:
        click.echo("\n".join(reuse_lines(found, request, current_config=current_config)), err=True)
    return execute(prepared, inputs, request, as_json=as_json, overwrite_cache=overwrite_cache,
                   origin="recover", source_run=found.id, recover_from=found.id, verbosity=verbosity)  # fmt: skip
