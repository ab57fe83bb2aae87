"""`flyte-decl rerun RUN`: run a recorded run's task again with the same inputs.

By default the config is the run's snapshot (the texts it was resolved from, whatever the files say
now); `--current-config` reads the files as they are today. The code is always today's.

flyte-decl rerun r12
flyte-decl rerun last --current-config --json
"""

from __future__ import annotations

from typing import Any

import click

from flyte_decl.cli.history import open_store, replay_options
from flyte_decl.cli.run import execute
from flyte_decl.problems import UsageError
from flyte_decl.runtime.wire import load_payload
from flyte_decl.session import PreparedRun, prepare_run
from flyte_decl.store.recorder import RunRequest
from flyte_decl.store.store import Store, StoredRun


@click.command()
@replay_options
def rerun(run: str, config: str | None, current_config: bool, overwrite_cache: bool, as_json: bool) -> int:
    """Run RUN's task again (RUN: an id like r12, or `last`) with the same inputs and config."""
    store = open_store(config)
    try:
        found = store.run(run)
        prepared, inputs, request = replay(store, found, current_config=current_config)
    finally:
        store.close()
    return execute(prepared, inputs, request, as_json=as_json, overwrite_cache=overwrite_cache, origin="rerun",
                   source_run=found.id)  # fmt: skip


def replay(
    store: Store, run: StoredRun, *, current_config: bool
) -> tuple[PreparedRun, dict[str, Any], RunRequest]:
    """The recorded run prepared again: its target, config (snapshot or current), flags and inputs."""
    request = RunRequest.from_json(run.snapshot)
    texts = {} if current_config else dict(request.texts)
    target, *params = request.target
    prepared = prepare_run(target, params, configs=list(request.texts), profiles=request.profiles, sets=request.sets,
                           queue=request.queue, env_items=request.env_items, snapshot=texts)  # fmt: skip
    if run.inputs_digest is None:
        raise UsageError(
            f"run {run.id} cannot be run again: its inputs held a secret value and were not kept "
            "(hint: start it anew with 'flyte-decl run')"
        )
    inputs: dict[str, Any] = load_payload(store.payload(run.inputs_digest))
    return prepared, inputs, RunRequest(request.target, texts, request.profiles, request.sets, request.queue,
                                        request.env)  # fmt: skip
