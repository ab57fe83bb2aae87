"""Resolved task specifications: the hand-off from configuration to the runtime.

Everything here is plain, immutable data with runtime units (cores as float, bytes as int,
seconds as float). The config layer produces these; runtimes and backends consume them and
never look back at the document they came from.

Example::

    spec = resolved.tasks["env2.square"]
    spec.memory_limit      # 262144000 (250Mi)
    spec.cpu_limit         # 1.0
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flyte_decl.quantity import MAX_BYTES, MAX_SECONDS

DEFAULT_QUEUE = "default"
DEFAULT_MAX_INLINE_IO_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class OnOOM:
    """How memory grows when an attempt is killed for memory: `factor` x, or `+add` bytes, capped at `max`."""

    factor: float | None = None
    add: int | None = None
    max: int | None = None

    def grow(self, memory: int) -> int:
        grown = int(memory * self.factor) if self.factor else memory + (self.add or 0)
        return min(grown, self.max or MAX_BYTES, MAX_BYTES)


@dataclass(frozen=True)
class RetryPolicy:
    """`count` retries after the first attempt; the n-th retry waits `backoff * 2**(n-1)` seconds."""

    count: int = 0
    backoff: float = 0.0
    on_oom: OnOOM | None = None

    def delay(self, retry_number: int) -> float:
        """Seconds before retry `retry_number` (1-based), at most MAX_SECONDS (24d) however many doublings."""
        if not self.backoff:
            return 0.0
        return min(self.backoff * 2.0 ** min(retry_number - 1, 64), float(MAX_SECONDS))


@dataclass(frozen=True)
class ReusePolicy:
    """Warm workers kept per environment: `replicas` processes, stopped after `idle_ttl` seconds idle."""

    replicas: int = 1
    idle_ttl: float = 30.0
    concurrency: int = 1


@dataclass(frozen=True)
class CacheOptions:
    """What a task's cache key is made of besides its name and inputs (see `flyte_decl._cache`):
    `version_override` (instead of the source hash), `ignored_inputs` (names), `salt`; `max_age`
    (seconds, None: no limit) bounds the age of reused outputs; `serialize` is kept for the export."""

    version_override: str | None = None
    ignored_inputs: tuple[str, ...] = ()
    salt: str = ""
    max_age: float | None = None
    serialize: bool = False


@dataclass(frozen=True)
class TaskSpec:
    """Everything the runtime needs to run one declared task."""

    name: str  # full name, "env2.square"
    environment: str
    task: str
    fn: str  # "pkg.module:func"
    root_dir: Path  # the config file's folder: on sys.path and the working directory
    cpu_request: float | None = None
    cpu_limit: float | None = None
    memory_request: int | None = None
    memory_limit: int | None = None
    gpu: int = 0
    accelerator: str | None = None  # the GPU type of `gpu: A100:1` ("A100"); None: any
    queue: str = DEFAULT_QUEUE
    env_vars: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    timeout: float | None = None  # seconds each attempt may run (Flyte's Timeout.max_runtime)
    max_queued_time: float | None = None  # seconds each attempt may wait for a queue slot or capacity
    deadline: float | None = None  # seconds the whole action may take, first queued to end, retries included
    retries: RetryPolicy = RetryPolicy()
    max_inline_io_bytes: int = DEFAULT_MAX_INLINE_IO_BYTES
    cache: str = "disable"
    cache_options: CacheOptions = CacheOptions()
    reusable: ReusePolicy | None = None
    depends_on: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        return split_fn(self.fn)[0]

    @property
    def attribute(self) -> str:
        return split_fn(self.fn)[1]


@dataclass(frozen=True)
class Capacity:
    """What the local scheduler may hand out; None means this machine's CPUs or memory."""

    cpu: float | None = None
    memory: int | None = None


@dataclass(frozen=True)
class QueueSpec:
    name: str
    concurrency: int | None = None  # None: unlimited
    description: str | None = None


@dataclass(frozen=True)
class RunConfig:
    """All resolved tasks and the run-wide settings of one configuration."""

    tasks: dict[str, TaskSpec]
    queues: dict[str, QueueSpec]
    capacity: Capacity = Capacity()
    # Layer 6: the spec of a task called with `.override(...)` settings (environments.yaml shape),
    # merged field by field over all lower layers. None: overrides are not supported by this config.
    respec: Callable[[str, dict[str, Any]], TaskSpec] | None = field(default=None, compare=False, repr=False)

    def spec_for(self, name: str, call_settings: dict[str, Any] | None = None) -> TaskSpec:
        """The spec of task `name`, with call-site override settings applied when given."""
        if call_settings and self.respec is not None:
            return self.respec(name, call_settings)
        return self.tasks[name]


def split_fn(fn: str) -> tuple[str, str]:
    """Split "pkg.mod:func" or "pkg.mod.func" into (module, attribute path)."""
    if ":" in fn:
        module, _, attr = fn.partition(":")
        return module, attr
    module, _, attr = fn.rpartition(".")
    return module, attr
