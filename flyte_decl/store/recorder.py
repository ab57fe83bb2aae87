"""From a running LocalRunner to the store: each phase change is written as it happens.

Data flows one way: the runner hands out events and, before queueing an action, asks `reuse` for
recorded outputs; it never reads the store. Each event is one short transaction, so a runner killed
at any moment leaves every attempt it reported on disk (and the next command marks the rest aborted).

Example::

    recorder = Recorder.start(store, prepared, inputs, request)
    runner = prepared.runner(on_event=recorder.on_event, log_dir=recorder.log_dir, reuse=recorder.reuse)
    result = recorder.finish(runner.run(prepared.task, inputs, env=prepared.env))
    result.run_id                                  # "r12"
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import json
import os
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flyte_decl._task import TaskTemplate
from flyte_decl.config.imports import import_function
from flyte_decl.runtime.records import ActionEvent, ReuseHit, RunResult
from flyte_decl.runtime.wire import dump_payload
from flyte_decl.session import PreparedRun
from flyte_decl.spec import RunConfig, TaskSpec
from flyte_decl.store.store import AttemptRow, Store, StoredRun, digest_of

MASK = "****"
CACHING = ("auto", "override")  # `override`: always run, and record the outputs for later hits


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
    ) -> RunRequest:
        """The request of `flyte-decl run TARGET PARAMS...` (a script target keeps its task variable)."""
        words = [str(Path(target).resolve()), params[0]] if target.endswith(".py") and params else [target]
        return cls(words, dict(texts), list(profiles), list(sets), queue, dict(env))

    def masked(self, secrets: list[str]) -> dict[str, Any]:
        """As stored: values of declared secrets never reach the store (config texts hold `${VAR}`)."""
        data = dataclasses.asdict(self)
        data["env"] = {name: _mask(value, secrets) for name, value in self.env.items()}
        data["sets"] = [_mask(item, secrets) for item in self.sets]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRequest:
        return cls(**data)

    @property
    def env_items(self) -> list[str]:
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
    ) -> None:
        self.store = store
        self.run = run
        self.config = config
        self.overwrite_cache = overwrite_cache
        self.recover_from = recover_from
        self.secrets = _secret_values(config)
        self.error: Exception | None = None  # the first failed write; the run goes on without history
        self._pending: list[ActionEvent] = []
        self._busy = False
        self._specs: dict[str, tuple[str, str]] = {}
        self._sources: dict[str, str | None] = {}
        self._root_outputs: bytes | None = None

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
        secrets = _secret_values(prepared.config)
        run = store.create_run(
            task=prepared.task,
            environment=prepared.spec.environment,
            snapshot=request.masked(secrets),
            inputs=_keepable(dump_payload(inputs), secrets),
            inputs_json=_masked_json(inputs, secrets),
            origin=origin,
            source_run=source_run,
        )
        return cls(store, run, prepared.config, overwrite_cache=overwrite_cache, recover_from=recover_from)

    @property
    def log_dir(self) -> Path:
        return self.run.log_dir

    # -- for the runner ---------------------------------------------------------------------------

    def on_event(self, event: ActionEvent) -> None:
        """Write a phase change (lines are in the log files already)."""
        if event.line is not None or event.record is None:
            return
        if event.parent is None and event.outputs is not None:
            self._root_outputs = _keepable(event.outputs, self.secrets)
        self._pending.append(event)
        if not self._busy:
            with self._exclusive():
                pass

    def reuse(self, spec: TaskSpec, inputs: bytes) -> ReuseHit | None:
        """Outputs recorded for this task and inputs: from the run being recovered, else the cache."""
        caching = spec.cache == "auto" and not self.overwrite_cache
        if self.recover_from is None and not caching:
            return None
        with self._exclusive():
            digest = digest_of(inputs)
            found = self.store.succeeded(self.recover_from, spec.name, digest) if self.recover_from else None
            if found is None and caching:
                key = self._cache_key(spec, digest)
                found = self.store.cached(key) if key else None
            if found is None:
                return None
            return ReuseHit(self.store.payload(found.digest), found.source)

    # -- the end ----------------------------------------------------------------------------------

    def finish(self, result: RunResult) -> RunResult:
        """Record how the run ended; the result carries the store's run id from here on."""
        with self._exclusive():
            error = result.error
            self.store.finish_run(
                self.run.id,
                status=result.status.value,
                kind=error.kind.value if error else None,
                message=_mask(error.message, self.secrets) if error else "",
                outputs=self._root_outputs,
                outputs_json=_masked_json(result.outputs, self.secrets),
                mechanisms=result.mechanisms,
            )
        return dataclasses.replace(result, run_id=self.run.id)

    def abandon(self, reason: str) -> None:
        """The runner failed outright: the run ends `aborted` with the reason."""
        with contextlib.suppress(sqlite3.Error):
            self.store.finish_run(self.run.id, status="aborted", kind=None, message=reason, outputs=None,
                                  outputs_json=None, mechanisms={})  # fmt: skip

    # -- inside -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Use the connection alone, then write what arrived meanwhile.

        A Ctrl-C handler aborts the run from inside whatever the main thread was doing, possibly a
        write of ours: its events wait in `_pending` until the connection is free.
        """
        busy, self._busy = self._busy, True
        try:
            yield
        finally:
            try:
                while not busy and self._pending and self.error is None:
                    batch, self._pending = self._pending, []
                    self.store.record_attempts(self.run.id, [self._row(event) for event in batch])
            except sqlite3.Error as exc:
                self.error = exc
                print(f"warning: run history of {self.run.id} is incomplete: {exc}", file=sys.stderr)
            finally:
                self._busy = busy

    def _row(self, event: ActionEvent) -> AttemptRow:
        record = event.record
        assert record is not None
        spec = self.config.tasks.get(record.task)
        environment = spec.environment if spec else record.task.partition(".")[0]
        row = AttemptRow(record, environment, spec=self._spec(spec) if spec else None)
        inputs = _keepable(event.inputs, self.secrets)
        if inputs is not None:
            row.inputs_digest = digest_of(inputs)
            row.payloads.append((row.inputs_digest, inputs))
            if spec is not None and spec.cache in CACHING:
                row.cache_key = self._cache_key(spec, row.inputs_digest)
        outputs = _keepable(event.outputs, self.secrets)
        if outputs is not None:
            row.outputs_digest = digest_of(outputs)
            row.payloads.append((row.outputs_digest, outputs))
        if event.phase.final:
            row.samples = record.samples
        return row

    def _spec(self, spec: TaskSpec) -> tuple[str, str]:
        if spec.name not in self._specs:
            data = dataclasses.asdict(spec)
            data["root_dir"] = str(spec.root_dir)
            data["env_vars"] = {name: _mask(value, self.secrets) for name, value in spec.env_vars.items()}
            text = json.dumps(data, sort_keys=True, default=str)
            self._specs[spec.name] = (digest_of(text.encode()), text)
        return self._specs[spec.name]

    def _cache_key(self, spec: TaskSpec, inputs_digest: str) -> str | None:
        """Task, a hash of its function's source, and the inputs; None when the source is unreadable."""
        if spec.name not in self._sources:
            self._sources[spec.name] = _source_digest(spec)
        source = self._sources[spec.name]
        if source is None:
            return None
        return digest_of(f"{spec.name}\0{source}\0{inputs_digest}".encode())


def _source_digest(spec: TaskSpec) -> str | None:
    try:
        function = import_function(spec.fn, spec.root_dir)
        if isinstance(function, TaskTemplate):
            function = function.func
        source = inspect.getsource(function)
    except Exception:  # not importable here, or built without source: that task is not cached
        print(f"warning: {spec.name} is not cached: the source of {spec.fn} cannot be read", file=sys.stderr)
        return None
    return hashlib.sha256(source.encode()).hexdigest()


def _keepable(payload: bytes | None, secrets: list[str]) -> bytes | None:
    """The payload, unless a secret value is in it: then it is not kept (and cannot be reused)."""
    if payload is None or any(secret.encode() in payload for secret in secrets):
        return None
    return payload


def _secret_values(config: RunConfig) -> list[str]:
    names = {name for spec in config.tasks.values() for name in spec.secrets}
    return sorted({os.environ[name] for name in names if os.environ.get(name)}, key=len, reverse=True)


def _mask(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def _masked_json(value: Any, secrets: list[str]) -> Any:
    """The value as JSON (its repr when JSON cannot carry it), with secret values masked."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = json.dumps(repr(value))
    if secrets:
        masked = _mask(text, secrets)
        with contextlib.suppress(ValueError):
            return json.loads(masked)
        return MASK
    return json.loads(text)
