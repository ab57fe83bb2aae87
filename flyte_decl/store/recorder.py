"""From a running LocalRunner to the store: each phase change is written as it happens.

Data flows one way: the runner hands out events and, before queueing an action, asks `reuse` for
recorded outputs; it never reads the store. A writer thread commits the events every 100 ms in one
transaction, so a runner killed at any moment leaves a consistent store holding all but its last
moments (and the next command marks the run and its unfinished actions aborted).

Example::

    recorder = Recorder.start(store, prepared, inputs, request)
    runner = prepared.runner(on_event=recorder.on_event, log_dir=recorder.log_dir, reuse=recorder.reuse,
                             on_answer=recorder.on_answer)
    result = recorder.finish(runner.run(prepared.task, inputs, env=prepared.env))
    result.run_id                                  # "r12"
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sqlite3
import sys
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flyte_decl._cache import Cache, VersionParameters, bound_inputs
from flyte_decl._cache import cache_key as key_of
from flyte_decl._task import TaskTemplate
from flyte_decl.config.imports import import_function
from flyte_decl.masking import Masker
from flyte_decl.runtime.records import ActionEvent, ActionRecord, Phase, ReuseHit, RunResult
from flyte_decl.runtime.wire import dump_payload, load_payload
from flyte_decl.session import PreparedRun
from flyte_decl.spec import CacheOptions, RunConfig, TaskSpec
from flyte_decl.store.store import AttemptRow, Store, StoredRun, digest_of

CACHING = ("auto", "override")  # look up, and record outputs under, the cache key
WRITE_INTERVAL = 0.1  # seconds between the writer's batches


@dataclass
class RunRequest:
    """What was asked for, enough to run it again: the target, the config texts and run-level flags.

    `texts` maps each config file read (absolute path, in overlay order) to its text as read.
    """

    target: list[str]  # ["hello_wf"], or ["/abs/path/hello.py", "main"]
    texts: dict[str, str] = field(default_factory=dict)
    profiles: list[str] = field(default_factory=list)
    sets: list[str] = field(default_factory=list)
    queue: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    configs: list[str] = field(default_factory=list)  # the -c paths (absolute), a subset of `texts`
    backend: str | None = None  # --backend as given (a rerun reuses it); None: the config's run.backend
    address: str | None = None  # --address as given
    # What the run ran on, whoever chose it (the flag, the config's `run:` section, the default).
    used_backend: str = "local"
    used_address: str | None = None

    @classmethod
    def of(
        cls,
        target: str,
        params: list[str],
        texts: dict[str, str],
        profiles: tuple[str, ...] | list[str],
        sets: tuple[str, ...] | list[str],
        queue: str | None,
        env: dict[str, str],
        configs: tuple[str, ...] | list[str] = (),
    ) -> RunRequest:
        """The request of `flyte-decl run TARGET PARAMS...` (a script target keeps its task variable)."""
        words = [str(Path(target).resolve()), params[0]] if target.endswith(".py") and params else [target]
        overlays = [str(Path(path).resolve()) for path in configs]
        return cls(words, dict(texts), list(profiles), list(sets), queue, dict(env), overlays)

    def masked(self, masker: Masker) -> dict[str, Any]:
        """As stored: values of declared secrets never reach the store (config texts hold `${VAR}`;
        one that holds a secret value as written is stored masked, like `-e` and `--set` values)."""
        data = dataclasses.asdict(self)
        data["texts"] = {path: masker.text(text) for path, text in self.texts.items()}
        data["env"] = {name: masker.text(value) for name, value in self.env.items()}
        data["sets"] = [masker.text(item) for item in self.sets]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRequest:
        """The request as stored with a run (`masked` output)."""
        return cls(**data)

    @property
    def env_items(self) -> list[str]:
        """The run-level environment as `-e KEY=VALUE` items."""
        return [f"{name}={value}" for name, value in self.env.items()]


class Recorder:
    """Records one run: `on_event` and `reuse` for the runner, `finish` with its result."""

    def __init__(
        self,
        store: Store,
        run: StoredRun,
        config: RunConfig,
        *,
        overwrite_cache: bool = False,
        recover_from: str | None = None,
        run_env: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.run = run
        self.config = config
        self.overwrite_cache = overwrite_cache
        self.recover_from = recover_from
        self.masker = _masker(config, run_env or {})
        self.error: Exception | None = None  # the first failed write; the run goes on without history
        self._specs: dict[str, tuple[str, str]] = {}
        self._written_specs: set[str] = set()  # by the writer thread, which alone reads this
        self._versions: dict[tuple[str, CacheOptions], str | None] = {}
        self._action_keys: dict[str, str | None] = {}  # action id -> its cache key
        self._fresh: dict[str, ReuseHit] = {}  # cache key -> outputs recorded by this run
        self._last_key: tuple[bytes | None, tuple[str, CacheOptions] | None, str | None] = (None, None, None)
        self._root_outputs: bytes | None = None
        # (event, cache key) waiting for the writer; deque.append is safe even in a signal handler.
        self._events: deque[tuple[ActionEvent, str | None]] = deque()
        self._stop = threading.Event()
        self._writer = threading.Thread(
            target=self._write, args=(Store.open(store.home),), name=f"record-{run.id}", daemon=True
        )
        self._writer.start()

    @classmethod
    def start(
        cls,
        store: Store,
        prepared: PreparedRun,
        inputs: dict[str, Any],
        request: RunRequest,
        *,
        origin: str = "run",
        source_run: str | None = None,
        overwrite_cache: bool = False,
        recover_from: str | None = None,
    ) -> Recorder:
        """Record the start of a run of `prepared` with these inputs; the run gets its id here."""
        masker = _masker(prepared.config, prepared.env)
        run = store.create_run(
            task=prepared.task,
            environment=prepared.spec.environment,
            snapshot=request.masked(masker),
            inputs=_keepable(dump_payload(inputs), masker),
            inputs_json=masker.value(inputs),
            origin=origin,
            source_run=source_run,
        )
        return cls(store, run, prepared.config, overwrite_cache=overwrite_cache, recover_from=recover_from,
                   run_env=prepared.env)  # fmt: skip

    @property
    def log_dir(self) -> Path:
        """Where the runner writes this run's logs: `.flyte-decl/logs/RUN`."""
        return self.run.log_dir

    # -- for the runner ---------------------------------------------------------------------------

    def on_event(self, event: ActionEvent) -> None:
        """Queue a phase change for the writer (lines are in the log files already)."""
        if event.line is not None or event.record is None:
            return
        if event.parent is None and event.outputs is not None:
            self._root_outputs = _keepable(event.outputs, self.masker)
        key = None
        spec = self.config.tasks.get(event.task)
        if event.inputs is not None and spec is not None and spec.cache in CACHING:
            key = self._cache_key(spec, event.inputs)  # here: it may import the task's module
            self._action_keys[event.action] = key
        self._events.append((event, key))

    def on_answer(self, action: str, outputs: bytes) -> None:
        """A child's outputs reached its caller: later calls of this run with its cache key reuse them
        at once (its final event, and the writer's commit, come later)."""
        key = self._action_keys.get(action)
        kept = _keepable(outputs, self.masker)
        if key is not None and kept is not None:
            self._fresh[key] = ReuseHit(kept, f"{self.run.id}/{action}")

    def reuse(self, spec: TaskSpec, inputs: bytes) -> ReuseHit | None:
        """Outputs recorded for this task and inputs: from the run being recovered, else the cache."""
        caching = spec.cache in CACHING and not self.overwrite_cache
        if self.recover_from is None and not caching:
            return None
        found = (
            self.store.succeeded(self.recover_from, spec.name, digest_of(inputs))
            if self.recover_from
            else None
        )
        if found is None and caching:
            key = self._cache_key(spec, inputs)
            if key is None:
                return None
            if key in self._fresh:
                return self._fresh[key]
            found = self.store.cached(key, spec.cache_options.max_age)
        if found is None:
            return None
        return ReuseHit(self.store.payload(found.digest), found.source)

    # -- the end ----------------------------------------------------------------------------------

    def finish(self, result: RunResult) -> RunResult:
        """Record how the run ended; the result carries the store's run id from here on."""
        self._drain()
        error = result.error
        self.store.finish_run(
            self.run.id,
            status=result.status.value,
            kind=error.kind.value if error else None,
            message=self.masker.text(error.message if error else _abort_reason(result)),
            outputs=self._root_outputs,
            outputs_json=self.masker.value(result.outputs),
            mechanisms=result.mechanisms,
        )
        return dataclasses.replace(result, run_id=self.run.id)

    def abandon(self, reason: str) -> None:
        """The runner failed outright: the run ends `aborted` with the reason."""
        self._drain()
        with contextlib.suppress(sqlite3.Error):
            self.store.finish_run(self.run.id, status="aborted", kind=None, message=self.masker.text(reason),
                                  outputs=None, outputs_json=None, mechanisms={})  # fmt: skip

    # -- inside -----------------------------------------------------------------------------------

    def _write(self, store: Store) -> None:
        """The writer thread: every WRITE_INTERVAL, what the runner reported since, in one transaction.

        Batching keeps the runner's loop free of disk writes; a runner killed meanwhile loses at most
        the last interval's events, and the store stays consistent (each batch is all or nothing).
        """
        try:
            while True:
                stopping = self._stop.is_set()
                batch = [self._events.popleft() for _ in range(len(self._events))]
                if batch and self.error is None:
                    try:
                        store.record_attempts(self.run.id, self._rows(batch))
                    except sqlite3.Error as exc:
                        self.error = exc
                        print(f"warning: run history of {self.run.id} is incomplete: {exc}", file=sys.stderr)
                if stopping:
                    return
                self._stop.wait(WRITE_INTERVAL)
        finally:
            store.close()

    def _drain(self) -> None:
        """Wait until the writer has written every event and stopped."""
        self._stop.set()
        self._writer.join()

    def _rows(self, batch: list[tuple[ActionEvent, str | None]]) -> list[AttemptRow]:
        """One row per attempt in the batch: its latest state, and the payloads of all its events."""
        rows: dict[tuple[str, int], AttemptRow] = {}
        for event, cache_key in batch:
            record = event.record
            assert record is not None
            row = rows.get((record.id, record.attempt))
            if row is None:
                row = rows[record.id, record.attempt] = self._new_row(record)
            # Queued, running, then final: the latest wins (the runner masked its texts; so again here).
            row.record = (
                dataclasses.replace(
                    record,
                    message=self.masker.text(record.message),
                    traceback=self.masker.text(record.traceback),
                )
                if self.masker
                else record
            )
            inputs = _keepable(event.inputs, self.masker)
            if inputs is not None:
                row.inputs_digest = digest_of(inputs)
                row.payloads.append((row.inputs_digest, inputs))
                row.cache_key = cache_key
            outputs = _keepable(event.outputs, self.masker)
            if outputs is not None:
                row.outputs_digest = digest_of(outputs)
                row.payloads.append((row.outputs_digest, outputs))
            if event.phase.final:
                row.samples = record.samples
        return list(rows.values())

    def _new_row(self, record: ActionRecord) -> AttemptRow:
        spec = self.config.tasks.get(record.task)
        row = AttemptRow(record, spec.environment if spec else record.task.partition(".")[0])
        if spec is not None:
            row.spec_digest, text = self._spec(spec)
            if row.spec_digest not in self._written_specs:
                row.spec_json = text
                self._written_specs.add(row.spec_digest)
        return row

    def _spec(self, spec: TaskSpec) -> tuple[str, str]:
        if spec.name not in self._specs:
            data = dataclasses.asdict(spec)
            data["root_dir"] = str(spec.root_dir)
            # Any field may hold a secret value (through `${VAR}` or `--set`), JSON-escaped here.
            text = self.masker.text(json.dumps(data, sort_keys=True, default=str))
            self._specs[spec.name] = (digest_of(text.encode()), text)
        return self._specs[spec.name]

    def _cache_key(self, spec: TaskSpec, inputs: bytes) -> str | None:
        """The cache key of a call (`flyte_decl._cache`); None when the task's source is unreadable."""
        options = spec.cache_options
        last_inputs, last_task, key = self._last_key
        if last_inputs is inputs and last_task == (spec.name, options):
            return key  # `reuse` asks right after `on_event` saw the same call queued
        if (spec.name, options) not in self._versions:
            self._versions[spec.name, options] = _cache_version(spec)
        version = self._versions[spec.name, options]
        if version is not None:
            key = key_of(spec.name, version, _named_inputs(spec, inputs), options.ignored_inputs)
        else:
            key = None
        self._last_key = (inputs, (spec.name, options), key)
        return key


def _cache_version(spec: TaskSpec) -> str | None:
    """The task's cache version: its `version_override`, else its policies' hash of the function."""
    options = spec.cache_options
    if options.version_override is not None:
        return options.version_override  # the function need not even import
    try:
        cache = Cache(spec.cache, salt=options.salt)
        return cache.get_version(VersionParameters(func=_function(spec)))
    except Exception:  # not importable here, or built without source: that task is not cached
        print(f"warning: {spec.name} is not cached: the source of {spec.fn} cannot be read", file=sys.stderr)
        return None


def _named_inputs(spec: TaskSpec, inputs: bytes) -> dict[str, Any] | bytes:
    """A call's inputs by parameter name, or its payload as is when they cannot be bound to names."""
    try:
        args, kwargs = load_payload(inputs)
        return bound_inputs(_function(spec), args, kwargs)
    except Exception:  # a payload of classes this process cannot load: key on the bytes
        return inputs


def _function(spec: TaskSpec) -> Any:
    function = import_function(spec.fn, spec.root_dir)
    return function.func if isinstance(function, TaskTemplate) else function


def _abort_reason(result: RunResult) -> str:
    """Why an aborted run stopped (e.g. "run aborted" on Ctrl-C), as its root action says."""
    if result.status is Phase.ABORTED and result.actions:
        return result.actions[0].message
    return ""


def _keepable(payload: bytes | None, masker: Masker) -> bytes | None:
    """The payload, unless a secret value (in any spelling) is in it: then it is not kept (and cannot
    be reused)."""
    if payload is None or masker.holds(payload):
        return None
    return payload


def _masker(config: RunConfig, run_env: Mapping[str, str]) -> Masker:
    """The declared secrets' values, from the environment and the run's own (`-e NAME=value`)."""
    return Masker.of_names(
        {name for spec in config.tasks.values() for name in spec.secrets}, {**os.environ, **run_env}
    )
