"""`flyte-decl run TASK [--PARAM VALUE]...`: run a task, every call an isolated, limit-enforced action.

flyte-decl run hello_wf --data hi
flyte-decl run examples/flyte_code/hello.py main --n 4     # a Flyte-style program, like `flyte run`
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import click

from flyte_decl import masking
from flyte_decl.backends.choice import AddressWithoutRay, BackendChoice, choose_backend
from flyte_decl.backends.ray import RayCluster, import_ray
from flyte_decl.cli.options import config_options, verbosity_options
from flyte_decl.cli.params import task_command
from flyte_decl.config.load import load
from flyte_decl.plan import plan_run
from flyte_decl.problems import FlyteDeclError, UsageError
from flyte_decl.render.history import render_removed, table
from flyte_decl.render.plan import render_plan
from flyte_decl.render.run import NORMAL, QUIET, RunView, render_result
from flyte_decl.runtime.cgroup2 import exec_in_systemd_scope
from flyte_decl.runtime.limits import detect_mechanisms, systemd_scope_for_run
from flyte_decl.runtime.records import ActionEvent, Phase, RunResult
from flyte_decl.session import PreparedRun, home_dir, prepare_run
from flyte_decl.store.recorder import Recorder, RunRequest
from flyte_decl.store.retention import apply_retention
from flyte_decl.store.store import Store


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
)
@click.argument("target", required=False)
@config_options
@click.option("--queue", default=None, help="Queue of the root task (as in Flyte, children keep their own).")
@click.option(
    "--set", "sets", multiple=True, metavar="PATH=VALUE", help="Run-level setting of the root task."
)
@click.option(
    "-e", "--env", "env_items", multiple=True, metavar="KEY=VALUE", help="Env var for every action."
)
@click.option(
    "--backend",
    type=click.Choice(["local", "ray"]),
    default=None,
    help="Where actions run: this machine, or a Ray cluster (pip install 'flyte-decl[ray]'); "
    "default: the config's run.backend, else local.",
)
@click.option(
    "--address",
    default=None,
    metavar="ADDRESS",
    help="Ray cluster to run on (--backend ray); default: the config's run.address, else RAY_ADDRESS, "
    "else a Ray instance started for the run.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: run, status, outputs, actions.")
@click.option(
    "--dry-run", is_flag=True, help="Check and print what would run, with which limits; start nothing."
)
@click.option("--overwrite-cache", is_flag=True, help="Run cached tasks even on a hit; record anew.")
@verbosity_options
@click.option("--local", is_flag=True, help="Accepted as `flyte run --local` takes it: every run is local.")
@click.option("-h", "--help", "show_help", is_flag=True, help="Show this help, or a task's parameters.")
@click.pass_context
def run(
    ctx: click.Context,
    target: str | None,
    configs: tuple[str, ...],
    profiles: tuple[str, ...],
    queue: str | None,
    sets: tuple[str, ...],
    env_items: tuple[str, ...],
    backend: str | None,
    address: str | None,
    as_json: bool,
    dry_run: bool,
    overwrite_cache: bool,
    verbosity: int,
    local: bool,
    show_help: bool,
) -> int:
    """Run TASK (ENV.TASK or a unique short name), or TASK in a Python file (FILE.py TASK).

    Task parameters come from the function's signature: --data hi --lt '[1,2]'. Before anything
    starts, every task's module is imported (running its top-level code) and every binding and
    declared secret is checked.
    """
    if target is None:
        if show_help:
            click.echo(ctx.get_help())
            return 0
        return list_runnable(configs, profiles)
    extras = list(ctx.args)
    if address is not None and backend == "local":
        raise UsageError(ADDRESS_WITHOUT_RAY)
    if backend == "ray":
        import_ray()  # one line saying how to install the extra, before anything is imported
    if not dry_run and not show_help:
        enter_systemd_scope()  # before the user's modules are imported: their top level runs once
    snapshot: dict[str, str] = {}
    prepared = prepare_run(target, extras, configs=configs, profiles=profiles, sets=sets, queue=queue,
                           env_items=env_items, snapshot=snapshot, check=not dry_run)  # fmt: skip
    backend_for(prepared, backend, address)  # the config's run.backend, checked before anything starts
    command = task_command(prepared.task, prepared.function, lambda inputs: inputs)
    if show_help:
        click.echo(command.get_help(click.Context(command, info_name=f"flyte-decl run {prepared.task}")))
        return 0
    inputs = command.main(
        args=prepared.params, prog_name=f"flyte-decl run {prepared.task}", standalone_mode=False
    )
    if dry_run:
        return dry(prepared, as_json=as_json)
    request = RunRequest.of(target, extras, snapshot, profiles, sets, queue, prepared.env, configs)
    request.backend, request.address = backend, address
    return execute(prepared, inputs, request, as_json=as_json, overwrite_cache=overwrite_cache,
                   verbosity=verbosity)  # fmt: skip


ADDRESS_WITHOUT_RAY = (
    "--address is the Ray cluster's address; it needs --backend ray (or run: {backend: ray} in the config)"
)


def backend_for(prepared: PreparedRun, backend: str | None, address: str | None) -> BackendChoice:
    """The run's backend: the flags, else the config's `run:` section, else local (`choose_backend`).

    Raises UsageError (exit 2) for `--address` on a run that is not on Ray, and with the install
    line when the backend is Ray and the `ray` extra is missing.
    """
    try:
        choice = choose_backend(prepared.resolved.document, backend, address)
    except AddressWithoutRay:
        raise UsageError(ADDRESS_WITHOUT_RAY) from None
    if choice.name == "ray":
        import_ray()
    return choice


def list_runnable(configs: tuple[str, ...], profiles: tuple[str, ...]) -> int:
    """`flyte-decl run` alone: the tasks it can run, with their parameters; exit 2 as for a usage error."""
    try:
        resolved = load(list(configs) or None, profile=profiles)
    except FlyteDeclError:
        raise UsageError(
            "run needs a task: flyte-decl run TASK [--PARAM VALUE]... (see 'flyte-decl run --help')"
        ) from None
    click.echo("run needs a task: flyte-decl run TASK [--PARAM VALUE]...; the tasks here:", err=True)
    click.echo(
        table(["TASK", "FN", "ENVIRONMENT"], [[t.name, t.fn, t.environment] for t in resolved.tasks.values()])
    )
    return 2


def dry(prepared: PreparedRun, *, as_json: bool) -> int:
    """`run TASK --dry-run`: print the plan and its problems; 1 if the run could not start as declared."""
    plan = plan_run(prepared, detect_mechanisms())
    if as_json:
        click.echo(json.dumps(plan.to_json(), indent=2))
    else:
        click.echo(render_plan(plan))
    for problem in plan.problems:
        click.echo(str(problem), err=True)
    return 1 if plan.problems else 0


def execute(
    prepared: PreparedRun,
    inputs: dict[str, Any],
    request: RunRequest,
    *,
    as_json: bool,
    overwrite_cache: bool = False,
    origin: str = "run",
    source_run: str | None = None,
    recover_from: str | None = None,
    verbosity: int = NORMAL,
) -> int:
    """Run a prepared task, recorded in the run store; shared by `run`, `rerun` and `recover`.

    The backend is `request.backend` (the `--backend` flag), else the config's `run.backend`, else
    local; "ray" runs the actions on the Ray cluster at `request.address`, else the config's
    `run.address` (see `flyte_decl.backends.ray`).
    """
    choice = backend_for(prepared, request.backend, request.address)
    request.used_backend, request.used_address = choice.name, choice.address
    store = Store.open(home_dir(prepared.spec.root_dir))
    recorder = Recorder.start(store, prepared, inputs, request, origin=origin, source_run=source_run,
                              overwrite_cache=overwrite_cache, recover_from=recover_from)  # fmt: skip
    quiet = as_json or verbosity == QUIET
    view = RunView(
        sys.stderr, live=sys.stderr.isatty() and not as_json, run_id=recorder.run.id, verbosity=verbosity
    )

    def on_event(event: ActionEvent) -> None:
        recorder.on_event(event)
        view.on_event(event)

    started = time.monotonic()
    cluster = None
    try:
        cluster = RayCluster(choice.address) if choice.name == "ray" else None
        runner = prepared.runner(on_event=on_event, log_dir=recorder.log_dir, reuse=recorder.reuse,
                                 on_answer=recorder.on_answer,
                                 backend=cluster.backend if cluster else None)  # fmt: skip
        if not quiet:
            header = prepared.header(runner.mechanisms).removeprefix("run ")
            if cluster is not None:  # the limits hold on each node, by what that node has
                header += f"; {cluster.describe()}" + (f" {choice.describe()}" if choice.describe() else "")
            click.echo(f"run {recorder.run.id}: {header}", err=True)
            click.echo(f"config: {recorder.run.sources.describe()}", err=True)
        with view, _aborting_on_signals(runner.abort) as interrupted:
            result = runner.run(prepared.task, inputs, env=prepared.env, short_name=prepared.short_name)
        result = recorder.finish(result)
        removed = apply_retention(store, prepared.resolved.document.data.get("retention"), recorder.run.id)
        if removed is not None and removed.runs and not quiet:
            click.echo(f"retention: {render_removed(removed)}", err=True)
    except BaseException as exc:
        recorder.abandon(f"the runner failed: {type(exc).__name__}: {exc}")
        raise
    finally:
        if cluster is not None:
            cluster.close()
        store.close()
    config = recorder.run.sources.to_json()
    return _finish(result, config, as_json, interrupted[0], time.monotonic() - started, verbosity)


def enter_systemd_scope() -> None:
    """On cgroup v2 without a subtree of our own, re-run this very command in a delegated systemd scope.

    Called by `run`, `rerun` and `recover` before they load the config or import any of the user's
    modules: the decision needs only this machine's cgroups, and the exec starts the program anew.
    """
    if os.path.basename(sys.argv[0]) not in ("flyte-decl", "__main__.py"):
        return  # called from Python (tests, the API), not as the program: nothing to re-execute
    command = systemd_scope_for_run(list(sys.orig_argv))
    if command is not None:
        exec_in_systemd_scope(command)


def _finish(
    result: RunResult,
    config: dict[str, Any],
    as_json: bool,
    interrupted: bool,
    seconds: float,
    verbosity: int,
) -> int:
    masker = masking.current()  # each string masked before it is encoded (the console masks the rest)
    if as_json:
        click.echo(json.dumps(masker.deep({**result.to_json(), "config": config})))
    else:
        out, err = render_result(dataclasses.replace(result, outputs=masker.deep(result.outputs)), seconds)
        if out:
            click.echo(out)
        if verbosity > QUIET or result.status is not Phase.SUCCEEDED:
            click.echo(err, err=True)
    if interrupted or result.status is Phase.ABORTED:
        return 130
    return 0 if result.status is Phase.SUCCEEDED else 1


@contextmanager
def _aborting_on_signals(abort: Any) -> Iterator[list[bool]]:
    """Ctrl-C and SIGTERM abort the run (every action tree is killed) instead of killing the runner."""
    interrupted = [False]

    def handler(signum: int, frame: FrameType | None) -> None:
        interrupted[0] = True
        abort()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield interrupted
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
