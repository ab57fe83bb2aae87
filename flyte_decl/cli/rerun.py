"""`flyte-decl rerun RUN`: run a recorded run's task again with the same inputs.

By default the config is the run's snapshot (the texts it was resolved from, whatever the files say
now); `--current-config` reads the files as they are today. The code is always today's.

flyte-decl rerun r12
flyte-decl rerun last --current-config --json
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from flyte_decl import masking
from flyte_decl.cli.history import open_store, replay_options
from flyte_decl.cli.options import verbosity_options
from flyte_decl.cli.run import enter_systemd_scope, execute
from flyte_decl.config.read import display_path
from flyte_decl.problems import UsageError
from flyte_decl.render.run import QUIET
from flyte_decl.runtime.wire import load_payload
from flyte_decl.session import PreparedRun, prepare_run
from flyte_decl.store.recorder import RunRequest
from flyte_decl.store.sources import HASH_CHARS, ConfigSources, digest
from flyte_decl.store.store import Store, StoredRun


@click.command()
@replay_options
@verbosity_options
def rerun(
    run: str, config: str | None, current_config: bool, overwrite_cache: bool, as_json: bool, verbosity: int
) -> int:
    """Run RUN's task again (RUN: an id like r12, or `last`) with the same inputs and config."""
    enter_systemd_scope()  # before the recorded config is loaded and its modules imported
    store = open_store(config)
    try:
        found = store.run(run)
        prepared, inputs, request = replay(store, found, current_config=current_config)
    finally:
        store.close()
    if verbosity > QUIET:
        click.echo("\n".join(reuse_lines(found, request, current_config=current_config)), err=True)
    return execute(prepared, inputs, request, as_json=as_json, overwrite_cache=overwrite_cache, origin="rerun",
                   source_run=found.id, verbosity=verbosity)  # fmt: skip


def reuse_lines(run: StoredRun, request: RunRequest, *, current_config: bool) -> list[str]:
    """What a rerun or recover of `run` takes from it and what it does not, with config hashes."""
    recorded = run.sources
    flags = ", ".join(recorded.flags()) or "no run-level flags"
    if not current_config:
        lines = [
            f"{run.id}'s config snapshot: {', '.join(f.describe() for f in recorded.files) or 'no file'}"
        ]
        for file in recorded.files:
            now = Path(file.path)
            today = digest(now.read_text(encoding="utf-8", errors="replace")) if now.is_file() else None
            if today != file.sha256:
                state = f"sha256:{today[:HASH_CHARS]}" if today else "missing"
                lines.append(
                    f"  (today's {display_path(file.path)} differs: {state}; --current-config reads it)"
                )
        return [f"reusing from {run.id}: {flags}; inputs", *lines]
    current = ConfigSources.from_snapshot({"texts": request.texts, "configs": request.configs})
    was = {file.path: file.sha256 for file in recorded.files}
    files = [
        file.describe() + ("" if was.get(file.path) == file.sha256 else
                           f" (was sha256:{was[file.path][:HASH_CHARS]})" if file.path in was else " (new)")
        for file in current.files
    ]  # fmt: skip
    return [
        f"reusing from {run.id}: {flags}; inputs",
        f"not reusing {run.id}'s config snapshot: today's files {', '.join(files) or 'none'}",
    ]


def replay(
    store: Store, run: StoredRun, *, current_config: bool
) -> tuple[PreparedRun, dict[str, Any], RunRequest]:
    """The recorded run prepared again: its target, config (snapshot or current), flags and inputs."""
    request = RunRequest.from_json(run.snapshot)
    # An `-e NAME=value` whose whole value was a secret was stored masked: today's environment gives it.
    request.env = {name: value for name, value in request.env.items() if value != masking.MASK}
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
                                        request.env, request.configs, request.backend, request.address)  # fmt: skip
