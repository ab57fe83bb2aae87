"""The config file's shape: pydantic models that validate documents and generate the JSON Schema.

The models only check shape and values; resolution works on the raw data (so an absent key and an
explicit `null` stay distinct). `schemas/environments.schema.json` is generated from `Document`
(see `flyte_decl.config.schema`) and a test keeps the checked-in copy equal to it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from flyte_decl.quantity import (
    DURATION_PATTERN,
    MEMORY_PATTERN,
    QUANTITY_PATTERN,
    QuantityError,
    parse_bytes_or_quantity,
    parse_cpu,
    parse_duration,
    parse_memory,
)

FORMAT_VERSION = 1
NAME_PATTERN = r"^[a-z0-9]+([_-][a-z0-9]+)*$"
ENV_VAR_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
GPU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_ ]*(:[1-9][0-9]?)?$"  # an accelerator and a count: 'A100:2'
FN_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*)?$"


def _checked(parse: Any, **kwargs: Any) -> Any:
    def check(value: Any) -> Any:
        try:
            parse(value, **kwargs)
        except QuantityError as exc:
            raise PydanticCustomError(
                "quantity", "{message}", {"message": exc.message, "hint": exc.hint}
            ) from None
        return value

    return AfterValidator(check)


_quantity_string = {"type": "string", "pattern": QUANTITY_PATTERN}
CpuQuantity = Annotated[
    int | float | str,
    _checked(parse_cpu),
    WithJsonSchema(
        {
            "anyOf": [{"type": "number", "minimum": 0}, _quantity_string],
            "description": "Cores: 1, 0.5 or a Kubernetes quantity such as '500m'.",
        }
    ),
]
MemoryQuantity = Annotated[
    int | float | str,  # numbers are accepted here only to be refused with a hint
    _checked(parse_memory),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": MEMORY_PATTERN,
            "description": "Bytes as a Kubernetes quantity: '512Mi', '1.5Gi', '2G'.",
        }
    ),
]
Duration = Annotated[
    int | float | str,
    _checked(parse_duration, timer=True),
    WithJsonSchema(
        {
            "anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": DURATION_PATTERN}],
            "description": "A duration: '30s', '5m', '1h30m', '250ms', or a number of seconds.",
        }
    ),
]
Age = Annotated[
    int | float | str,
    _checked(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": DURATION_PATTERN}],
            "description": "An age, as a duration with no maximum: '30d', '12h', or a number of seconds.",
        }
    ),
]
InlineBytes = Annotated[
    int | str,
    _checked(parse_bytes_or_quantity, field="max_inline_io_bytes"),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer", "minimum": 0}, _quantity_string],
            "description": "A byte count, or a quantity such as '10Mi'.",
        }
    ),
]
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
EnvVarName = Annotated[str, StringConstraints(pattern=ENV_VAR_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _scalar_or_pair(value: Any) -> str:
    return "pair" if isinstance(value, dict) else "scalar"


class CpuPair(_Strict):
    """Separate request and limit: `{request: 500m, limit: 1}`."""

    request: CpuQuantity | None = Field(None, description="What the scheduler reserves.")
    limit: CpuQuantity | None = Field(None, description="The most the task may use, enforced.")


class MemoryPair(_Strict):
    """Separate request and limit: `{request: 200Mi, limit: 250Mi}`."""

    request: MemoryQuantity | None = Field(None, description="What the scheduler reserves.")
    limit: MemoryQuantity | None = Field(None, description="The most the task may use, enforced.")


CpuSetting = Annotated[
    Annotated[CpuQuantity, Tag("scalar")] | Annotated[CpuPair, Tag("pair")],
    Discriminator(_scalar_or_pair),
]
MemorySetting = Annotated[
    Annotated[MemoryQuantity, Tag("scalar")] | Annotated[MemoryPair, Tag("pair")],
    Discriminator(_scalar_or_pair),
]


class Resources(_Strict):
    """Compute resources; a scalar sets request and limit alike, a mapping sets them apart."""

    cpu: CpuSetting | None = Field(None, description="CPU cores: 1, 0.5, '500m', or {request, limit}.")
    memory: MemorySetting | None = Field(None, description="Memory: '250Mi', '1Gi', or {request, limit}.")
    gpu: Annotated[int, Field(ge=0)] | Annotated[str, StringConstraints(pattern=GPU_PATTERN)] | None = Field(
        None, description="GPUs: a count, or an accelerator such as 'A100:2'."
    )
    disk: MemoryQuantity | None = Field(
        None, description="Ephemeral disk, e.g. '10Gi' (exported, not enforced)."
    )
    shm: MemoryQuantity | Literal["auto"] | None = Field(None, description="Shared memory size, or 'auto'.")


class OnOOM(_Strict):
    """Grow memory after an OOM kill: `{memory: 2x, max: 2Gi}` or `{memory: +512Mi}`."""

    memory: Annotated[str, StringConstraints(pattern=r"^(\d+(\.\d+)?x|\+.+)$")] = Field(
        description="'2x' multiplies the memory limit; '+512Mi' adds to it."
    )
    max: MemoryQuantity | None = Field(None, description="Never grow past this.")


class Retries(_Strict):
    """Retry failed attempts: `{count: 3, backoff: 1s, on_oom: {memory: 2x, max: 2Gi}}`."""

    count: Annotated[int, Field(ge=0)] | None = Field(None, description="Retries after the first attempt.")
    backoff: Duration | None = Field(None, description="Wait before the first retry; doubles each time.")
    on_oom: OnOOM | None = Field(None, description="How memory grows when an attempt is OOM-killed.")


class Reusable(_Strict):
    """Warm worker processes kept per environment."""

    replicas: Annotated[int, Field(ge=1)] | None = Field(None, description="How many warm workers.")
    idle_ttl: Duration | None = Field(None, description="Stop a worker after this long idle.")
    concurrency: Annotated[int, Field(ge=1)] | None = Field(None, description="Actions per worker at once.")


class ImageSpec(_Strict):
    """A container image built by Flyte's image builder (`flyte.Image`): a Debian base with a Python
    version, or `base_image`, plus layers. Example: `{python_version: "3.12", pip_packages: [numpy]}`.
    """

    base_image: str | None = Field(
        None, description="Start from this image URI instead of Flyte's Debian base."
    )
    python_version: Annotated[str, StringConstraints(pattern=r"^3\.\d+$")] | None = Field(
        None, description="Python of the Debian base, e.g. '3.12'."
    )
    pip_packages: list[str] | None = Field(None, description="pip requirement strings to install.")
    requirements: str | None = Field(
        None, description="A requirements file, relative to the config's folder."
    )
    apt_packages: list[str] | None = Field(None, description="Debian packages to install.")
    env: dict[EnvVarName, str] | None = Field(None, description="Environment variables baked into the image.")
    name: Name | None = Field(None, description="Name of the built image.")
    registry: str | None = Field(
        None, description="Registry the built image is pushed to, e.g. 'ghcr.io/org'."
    )


CacheBehavior = Literal["auto", "override", "disable"]


class CachePolicy(_Strict):
    """Flyte's `Cache`: `{behavior: override, version_override: v1, ignored_inputs: [note], salt: s}`."""

    behavior: CacheBehavior = Field(description="'auto' or 'override' reuse outputs; 'disable' never does.")
    version_override: str | None = Field(
        None, description="The cache version instead of the hash of the function's source."
    )
    ignored_inputs: list[str] | None = Field(None, description="Input names left out of the cache key.")
    salt: str | None = Field(
        None, description="Mixed into the source-derived version (not into version_override)."
    )
    max_age: Age | None = Field(None, description="Reuse only outputs recorded within this age, e.g. '7d'.")
    serialize: bool | None = Field(
        None, description="Accepted and exported; concurrent equal calls each run."
    )


class TimeoutBounds(_Strict):
    """Flyte's `Timeout`: `{max_runtime: 30s, max_queued_time: 5m, deadline: 1h}`; each optional."""

    max_runtime: Duration | None = Field(None, description="Wall-clock limit of one attempt while it runs.")
    max_queued_time: Duration | None = Field(
        None, description="Longest one attempt may wait for a queue slot or capacity."
    )
    deadline: Duration | None = Field(
        None, description="Limit of the whole action, from first queued to end, across retries."
    )


CacheSetting = Annotated[
    Annotated[CacheBehavior, Tag("scalar")] | Annotated[CachePolicy, Tag("pair")],
    Discriminator(_scalar_or_pair),
]
TimeoutSetting = Annotated[
    Annotated[Duration, Tag("scalar")] | Annotated[TimeoutBounds, Tag("pair")],
    Discriminator(_scalar_or_pair),
]
ImageSetting = Annotated[
    Annotated[str, Tag("scalar")] | Annotated[ImageSpec, Tag("pair")],
    Discriminator(_scalar_or_pair),
]
RetriesSetting = Annotated[
    Annotated[Annotated[int, Field(ge=0)], Tag("scalar")] | Annotated[Retries, Tag("pair")],
    Discriminator(_scalar_or_pair),
]


class Settings(_Strict):
    """Settings that every layer may set: defaults, environments, tasks, overrides."""

    resources: Resources | None = Field(None, description="CPU, memory, GPU, disk and shared memory.")
    queue: Name | None = Field(
        None, description="Locally a concurrency limit; remotely a cluster or partition."
    )
    task_queue: Name | None = Field(None, description="Alias of `queue`.")
    env_vars: dict[EnvVarName, str | None] | None = Field(
        None, description="Environment variables for the task; merged by name, null removes one."
    )
    secrets: list[EnvVarName] | None = Field(
        None, description="Names of secrets read from the runner's environment, masked in all output."
    )
    retries: RetriesSetting | None = Field(None, description="A retry count, or {count, backoff, on_oom}.")
    timeout: TimeoutSetting | None = Field(
        None, description="Wall-clock limit of one attempt, or {max_runtime, max_queued_time, deadline}."
    )
    max_inline_io_bytes: InlineBytes | None = Field(
        None, description="Largest serialized input or output, e.g. '10Mi'."
    )
    cache: CacheSetting | None = Field(
        None,
        description="'auto' reuses outputs for the same code and inputs; or {behavior, version_override, ...}.",
    )
    reusable: Reusable | Literal["off"] | None = Field(None, description="Warm workers, or 'off'.")
    interruptible: bool | None = Field(None, description="May run on spot capacity (exported to Flyte).")
    image: ImageSetting | None = Field(
        None, description="Container image: a URI, or what to build (exported to Flyte; unused locally)."
    )


class Task(Settings):
    """A task: a Python function bound by dotted path, plus settings of its own."""

    fn: Annotated[str, StringConstraints(pattern=FN_PATTERN)] | None = Field(
        None,
        description="The function: 'pkg.module:func' or 'pkg.module.func', relative to the config's folder.",
    )
    description: str | None = Field(None, description="What the task does.")


class Environment(Settings):
    """A task environment: settings shared by its tasks."""

    description: str | None = Field(None, description="What the environment is for.")
    extends: Name | None = Field(None, description="Inherit every setting but tasks from this environment.")
    depends_on: list[Name] | None = Field(None, description="Environments this one needs deployed too.")
    tasks: dict[Name, Task] | None = Field(None, description="Tasks by short name; full name is ENV.TASK.")


class Queue(_Strict):
    """A queue: locally a concurrency limit, remotely a cluster or partition name."""

    concurrency: Annotated[int, Field(ge=1)] | None = Field(None, description="Most actions running at once.")
    description: str | None = Field(None, description="What the queue is.")


class Capacity(_Strict):
    """What the local scheduler may hand out; default: this machine's CPUs and memory."""

    cpu: CpuQuantity | None = Field(None, description="Cores.")
    memory: MemoryQuantity | None = Field(None, description="Bytes, e.g. '8Gi'.")
    gpu: Annotated[int, Field(ge=0)] | None = Field(None, description="GPUs.")


class Retention(_Strict):
    """Recorded runs removed after each run, as by `flyte-decl runs prune`; all criteria given must hold."""

    keep: Annotated[int, Field(ge=1)] | None = Field(None, description="Keep the newest this many runs.")
    older_than: Age | None = Field(None, description="Remove runs started longer ago, e.g. '30d'.")
    status: list[Literal["succeeded", "failed", "timed_out", "aborted"]] | None = Field(
        None, description="Remove only runs that ended in these statuses."
    )


class Run(_Strict):
    """Where `flyte-decl run` runs actions when no `--backend` flag (or `with_runcontext(backend=...)`) says."""

    backend: Literal["local", "ray"] | None = Field(
        None, description="'local' (this machine, the default) or 'ray' (a Ray cluster; the 'ray' extra)."
    )
    address: str | None = Field(
        None,
        description="The Ray cluster with backend 'ray': 'auto', 'ray://host:port' or 'host:port'; "
        "default: Ray's own rule (RAY_ADDRESS, else a Ray instance started for the run).",
    )


class Match(_Strict):
    """Which tasks an override applies to; shell-style globs on names."""

    environment: str | None = Field(None, description="Environment name glob, e.g. 'env*'.")
    task: str | None = Field(None, description="Task short name or full name glob, e.g. 'sq*'.")
    queue: str | None = Field(None, description="Effective queue glob.")


class Override(_Strict):
    """A GitOps patch: settings applied to every matching task, after environments and tasks."""

    match: Match = Field(description="Which tasks to patch.")
    set: Settings = Field(description="The settings to apply.")
    description: str | None = Field(None, description="Why this override exists.")


class Profile(_Strict):
    """A partial document overlaid by `--profile NAME`."""

    defaults: Settings | None = Field(None, description="Overlaid on `defaults`.")
    queues: dict[Name, Queue | None] | None = Field(None, description="Overlaid on `queues`.")
    capacity: Capacity | None = Field(None, description="Overlaid on `capacity`.")
    run: Run | None = Field(None, description="Overlaid on `run`.")
    environments: dict[Name, Environment | None] | None = Field(
        None, description="Overlaid on `environments`."
    )
    overrides: list[Override] | None = Field(None, description="Replaces `overrides`.")


class Document(_Strict):
    """flyte-decl environments file (environments.yaml or .toml)."""

    version: Literal[1] = Field(description="Format version; 1.")
    defaults: Settings | None = Field(None, description="The lowest layer; applies to every task.")
    queues: dict[Name, Queue | None] | None = Field(
        None, description="Queues by name; 'default' always exists."
    )
    capacity: Capacity | None = Field(None, description="What the local scheduler may hand out.")
    retention: Retention | None = Field(None, description="Which recorded runs to remove after each run.")
    run: Run | None = Field(None, description="Where runs execute: {backend: local | ray, address}.")
    environments: dict[Name, Environment | None] | None = Field(
        None, description="Task environments by name."
    )
    overrides: list[Override] | None = Field(None, description="Patches applied in order after environments.")
    profiles: dict[Name, Profile] | None = Field(
        None, description="Partial documents selected with --profile."
    )
