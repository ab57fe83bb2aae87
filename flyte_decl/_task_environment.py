"""`TaskEnvironment` and `@env.task`: Flyte 2's names, declarations that environments.yaml can layer over.

    env2 = flyte_decl.TaskEnvironment(name="env2", resources=flyte_decl.Resources(cpu=1, memory="250Mi"))

    @env2.task(retries=3, timeout=30)
    async def square(i: int = 3) -> int:
        return i * i

Every argument you pass becomes one layer of settings (SPEC §3): an environment declared in code
lies beneath the YAML environment of the same name, and decorator arguments beneath the YAML task
entry. Arguments you do not pass set nothing, so they never hide a value from the YAML file.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from flyte_decl._cache import Cache, behavior_of
from flyte_decl._cache import CachePolicy as CachePolicy  # re-exported: `flyte._cache` resolves here
from flyte_decl._cache import FunctionBodyPolicy as FunctionBodyPolicy
from flyte_decl._cache import VersionParameters as VersionParameters
from flyte_decl._cache import cache_from_request as cache_from_request
from flyte_decl._image import Image
from flyte_decl._resources import Resources
from flyte_decl._task import _PACKAGE_DIR, TaskTemplate, code_mark
from flyte_decl.config.read import display_path
from flyte_decl.config.resolve import CodeLayers
from flyte_decl.problems import Mark
from flyte_decl.spec import DEFAULT_QUEUE, QueueSpec, RunConfig

_NAME = re.compile(r"^[a-z0-9]+([_-][a-z0-9]+)*$")
_UNSET: Any = object()

# Every environment constructed in this process, by name (the last one of a name wins; duplicates are
# reported when configurations are built).
ENVIRONMENTS: dict[str, list[TaskEnvironment]] = {}


def _timedelta(value: int | float | timedelta) -> timedelta:
    return value if isinstance(value, timedelta) else timedelta(seconds=value)


@dataclass(frozen=True)
class ReusePolicy:
    """Keep warm workers, as Flyte's `ReusePolicy`: `replicas` (a count or a (min, max) range, kept as
    a tuple), `idle_ttl` (the pool's idle time before it stops), `scaledown_ttl` (how long one idle worker
    waits before it stops), `concurrency` (actions per worker; locally 1 at a time). Times are seconds or
    timedeltas, kept as timedeltas.

    Locally the pool grows to the largest replica count, and an idle worker stops after `scaledown_ttl`
    when given, else after `idle_ttl`.
    """

    replicas: int | tuple[int, int] = 2
    idle_ttl: int | float | timedelta = 30
    concurrency: int = 1
    scaledown_ttl: int | float | timedelta | None = None

    def __post_init__(self) -> None:
        replicas = self.replicas
        if isinstance(replicas, int) and not isinstance(replicas, bool):
            replicas = (replicas, replicas)
        if (not isinstance(replicas, tuple) or len(replicas) != 2 or not all(isinstance(r, int) for r in replicas)
                or not 0 <= replicas[0] <= replicas[1] or replicas[1] < 1):  # fmt: skip
            raise ValueError(f"replicas must be a count >= 1 or a (min, max) range, got {self.replicas!r}")
        object.__setattr__(self, "replicas", replicas)
        object.__setattr__(self, "idle_ttl", _timedelta(self.idle_ttl))
        if self.scaledown_ttl is not None:
            object.__setattr__(self, "scaledown_ttl", _timedelta(self.scaledown_ttl))
        if (
            isinstance(self.concurrency, bool)
            or not isinstance(self.concurrency, int)
            or self.concurrency < 1
        ):
            raise ValueError(f"concurrency must be an int >= 1, got {self.concurrency!r}")

    @property
    def max_replicas(self) -> int:
        return self.replicas[1]  # type: ignore[index]

    def to_settings(self) -> dict[str, Any]:
        return {
            "replicas": self.max_replicas,
            "idle_ttl": seconds(self.scaledown_ttl if self.scaledown_ttl is not None else self.idle_ttl),
            "concurrency": self.concurrency,
        }


@dataclass(frozen=True)
class Backoff:
    """Flyte's retry backoff: the n-th retry waits `min(base * factor**n, cap)`; `factor` >= 1, and a
    `cap` is required when `factor` > 1. Locally the wait before the n-th retry is flyte-decl's retry
    policy, `base * 2**n`; `factor` and `cap` are checked and kept, not applied."""

    base: timedelta
    factor: float = 1.0
    cap: timedelta | None = None

    def __post_init__(self) -> None:
        if self.base < timedelta(0):
            raise ValueError(f"Backoff.base must be >= 0, got {self.base}")
        if not isinstance(self.factor, (int, float)) or not math.isfinite(self.factor):
            raise ValueError(f"Backoff.factor must be a finite number, got {self.factor!r}")
        if self.factor < 1.0:
            raise ValueError(f"Backoff.factor must be >= 1.0, got {self.factor}")
        if self.cap is not None and self.cap < timedelta(0):
            raise ValueError(f"Backoff.cap must be >= 0, got {self.cap}")
        if self.factor > 1.0 and self.cap is None:
            raise ValueError("Backoff.cap is required when factor > 1.0 (the delay would grow without bound)")

    def compute_delay(self, n: int) -> timedelta:
        """The wait before retry `n` (0-based) under Flyte's rule."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        delay = self.base.total_seconds() * self.factor**n
        if self.cap is not None:
            delay = min(delay, self.cap.total_seconds())
        return timedelta(seconds=delay)


@dataclass(frozen=True)
class RetryStrategy:
    """`count` retries after the first attempt; `backoff` (seconds, a timedelta or a `Backoff`) before the
    first retry, doubling each time."""

    count: int
    backoff: float | timedelta | Backoff | None = None

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 0:
            raise ValueError(f"RetryStrategy.count must be an int >= 0, got {self.count!r}")


@dataclass(frozen=True)
class Timeout:
    """Flyte's `Timeout`: `max_runtime` (each attempt's running time), `max_queued_time` (each attempt's
    wait for a queue slot or capacity) and `deadline` (the whole action, from its first queued moment to
    its end, across all attempts and backoffs); each seconds or a timedelta, kept as given; None or 0
    for no bound. All three are enforced locally: an action past one ends `timed_out`, and its caller
    gets `MaxRuntimeExceededError`, `MaxQueuedTimeExceededError` or `DeadlineExceededError` (all
    `TaskTimeoutError`s). A deadline ends the action whatever retries are left, as in Flyte.
    """

    max_runtime: int | float | timedelta | None = None
    max_queued_time: int | float | timedelta | None = None
    deadline: int | float | timedelta | None = None


def timeout_from_request(timeout: Any) -> Timeout:
    """A Timeout from Flyte's TimeoutType: a Timeout as is, else an int or timedelta as `max_runtime`."""
    if isinstance(timeout, Timeout):
        return timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float, timedelta)):
        raise ValueError(f"Timeout must be an instance of Timeout, int, or timedelta, got {timeout!r}")
    return Timeout(max_runtime=_timedelta(timeout))


@dataclass
class Secret:
    """A secret a task needs, as Flyte's `Secret`: `key` in the store, optional `group`, exposed as the
    environment variable `as_env_var` (default: "GROUP_KEY" or "KEY", upper case, "-" as "_", as in Flyte).

    Locally the value is read from the runner's environment variable of that name and never stored.
    """

    key: str
    group: str | None = None
    mount: Any = None
    as_env_var: str | None = None

    def __post_init__(self) -> None:
        if not self.as_env_var:
            name = f"{self.group}_{self.key}" if self.group else self.key
            self.as_env_var = name.replace("-", "_").upper()
        if not re.match(r"^[A-Z_][A-Z0-9_]*$", self.as_env_var):
            raise ValueError(
                f"Invalid environment variable name: {self.as_env_var}, must match ^[A-Z_][A-Z0-9_]*$"
            )

    def __hash__(self) -> int:
        return hash((self.key, self.group, str(self.mount), self.as_env_var))


@dataclass
class PodTemplate:
    """Flyte's Kubernetes pod template: accepted and kept; pods do not exist locally."""

    pod_spec: Any = None
    primary_container_name: str = "primary"
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


def seconds(value: int | float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def retries_settings(retries: Any) -> dict[str, Any]:
    if isinstance(retries, RetryStrategy):
        out: dict[str, Any] = {"count": retries.count}
        backoff = retries.backoff
        if isinstance(backoff, Backoff):
            backoff = backoff.base
        if backoff is not None:
            out["backoff"] = seconds(backoff)
        return out
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise ValueError(f"retries must be an int (a retry count) or a flyte.RetryStrategy, got {retries!r}")
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    return {"count": retries}


def timeout_settings(timeout: Any) -> float | dict[str, float] | None:
    """The `timeout:` config value of a timeout argument: seconds, or a Timeout's bounds in seconds.

    Raises ValueError for a value that is no Timeout, int or timedelta, or a negative one.
    """
    if isinstance(timeout, Timeout):
        bounds = {
            name: _bound(name, getattr(timeout, name))
            for name in ("max_runtime", "max_queued_time", "deadline")
        }
        if not bounds["max_queued_time"] and not bounds["deadline"]:
            return bounds["max_runtime"] or None  # the scalar form, as `timeout=SECONDS`
        return {name: value for name, value in bounds.items() if value}
    if timeout is None:
        return None
    return _bound("timeout", timeout) or None  # 0 means no timeout, as in Flyte


def _bound(name: str, value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float, timedelta)):
        raise ValueError(f"Timeout must be an instance of Timeout, int, or timedelta, got {value!r}")
    value = seconds(value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0 seconds, got {value}")
    return value


def cache_settings(cache: Any) -> str | dict[str, Any]:
    """The `cache:` config value of a cache argument: a behavior string, or a Cache's mapping.

    Raises TypeError for a value that is no string or Cache (Flyte's message), ValueError for an
    unknown behavior.
    """
    if isinstance(cache, Cache):
        return cache.to_settings()
    if not isinstance(cache, str):
        raise TypeError(f"Expected cache to be of type str or Cache, got {type(cache)}")
    return behavior_of(cache)


def secrets_settings(secrets: Any) -> list[str]:
    """Variable names from Flyte's SecretRequest: a name, a `Secret`, or a list of them."""
    if not isinstance(secrets, (str, Secret, list, tuple)):
        raise TypeError(f"Expected secrets to be of type SecretRequest, got {type(secrets)}")
    items = [secrets] if isinstance(secrets, (str, Secret)) else list(secrets)
    names: list[str] = []
    for item in items:
        if isinstance(item, str) and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", item):
            item = Secret(key=item)  # "openai-key" is the variable OPENAI_KEY, as in Flyte
        name = getattr(item, "as_env_var", None) or getattr(item, "key", item)
        if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise ValueError(f"secret names must be environment variable names like API_TOKEN, got {name!r}")
        names.append(name)
    return names


def image_settings(image: Any) -> str | dict[str, Any]:
    """The `image:` config value of a code-declared image: a URI string, or an image's `to_config()`."""
    if isinstance(image, str):
        return image
    to_config = getattr(image, "to_config", None)
    if not callable(to_config):
        raise TypeError(f"image must be a URI string or a flyte_decl.Image, got {type(image).__name__}")
    config: str | dict[str, Any] = to_config()
    return config


def environment_settings(**kwargs: Any) -> dict[str, Any]:
    """Settings (environments.yaml shape) from the arguments that were given (not _UNSET)."""
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if value is _UNSET:
            continue
        if value is None:
            out[key] = None  # an explicit None resets the field (layer semantics)
        elif key == "resources":
            if not isinstance(value, Resources):
                raise TypeError(f"Expected resources to be of type Resources, got {type(value)}")
            out[key] = value.to_settings()
        elif key == "env_vars":
            if not isinstance(value, dict):
                raise TypeError(f"Expected env_vars to be of type Dict[str, str], got {type(value)}")
            out[key] = {str(k): (None if v is None else str(v)) for k, v in value.items()}
        elif key == "secrets":
            out[key] = secrets_settings(value)
        elif key == "cache":
            out[key] = cache_settings(value)
        elif key == "retries":
            out[key] = retries_settings(value)
        elif key == "timeout":
            out[key] = timeout_settings(value)
        elif key == "reusable":
            if value != "off" and not isinstance(value, ReusePolicy):
                raise TypeError(f"Expected reusable to be of type ReusePolicy, got {type(value)}")
            out[key] = "off" if value == "off" else value.to_settings()
        elif key == "max_inline_io_bytes":
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise ValueError(f"max_inline_io_bytes must be an int number of bytes, got {value!r}")
            out[key] = value
        elif key == "queue":
            if not isinstance(value, str) or not _NAME.match(value):
                raise ValueError(f"queue must be a name like 'gpu-pool', got {value!r}")
            out[key] = value
        elif key == "interruptible":
            out[key] = bool(value)
        elif key == "image":
            out[key] = image_settings(value)
    return out


class TaskEnvironment:
    """A named environment: resources, env vars, secrets, queue and the tasks declared in it.

    Example::

        env = flyte_decl.TaskEnvironment(name="env2", resources=flyte_decl.Resources(memory="250Mi"))

        @env.task
        async def square(i: int) -> int:
            return i * i
    """

    def __init__(
        self,
        name: str,
        depends_on: list[TaskEnvironment] | None = None,
        pod_template: Any = None,
        description: str | None = None,
        secrets: Any = _UNSET,
        env_vars: dict[str, str] | None = _UNSET,
        resources: Resources | None = _UNSET,
        interruptible: bool = _UNSET,
        image: str | Image | None = "auto",
        include: tuple[str, ...] = (),
        service_account: str | None = None,
        cache: Any = _UNSET,
        reusable: ReusePolicy | Literal["off"] | None = _UNSET,
        plugin_config: Any = None,
        queue: str | None = _UNSET,
        task_queue: str | None = _UNSET,
    ) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"Environment name {name!r} must be in snake_case or kebab-case format.")
        for dep in depends_on or []:
            if not isinstance(dep, TaskEnvironment):
                raise TypeError(f"Expected depends_on to be of type List[Environment], got {type(dep)}")
        if isinstance(include, str):
            raise TypeError("include must be a sequence of str paths, not a single str")
        include = tuple(include or ())
        if not all(isinstance(item, str) for item in include):
            raise TypeError(f"include entries must be str, got {include!r}")
        if not isinstance(image, (str, Image)) and image is not None:
            raise TypeError(f"Expected image to be of type str or Image, got {type(image)}")
        if queue is not _UNSET and task_queue is not _UNSET:
            raise ValueError("set either queue or task_queue (an alias), not both")
        self.name = name
        self.description = description[:255] if description else description
        self.depends_on: list[TaskEnvironment] = list(depends_on or [])
        self.pod_template = pod_template
        self.image = image
        self.include = include
        self.service_account = service_account
        self.plugin_config = plugin_config
        self._given = {
            "resources": resources, "env_vars": env_vars, "secrets": secrets, "interruptible": interruptible,
            "cache": cache, "reusable": reusable, "queue": queue if task_queue is _UNSET else task_queue,
        }  # fmt: skip
        # "auto" (Flyte's default image) and None declare nothing: lower layers or the export decide.
        code_image = _UNSET if image is None or (isinstance(image, str) and image == "auto") else image
        self.settings = environment_settings(**self._given, image=code_image)
        self.mark: Mark = code_mark()
        # The file that declared it (Flyte resolves `include` paths against it).
        self._declaring_file = _declaring_file()
        self._tasks: dict[str, TaskTemplate] = {}
        ENVIRONMENTS.setdefault(name, []).append(self)

    def __repr__(self) -> str:
        return f"TaskEnvironment(name={self.name!r}, settings={self.settings!r})"

    @property
    def resources(self) -> Any:
        return self._given["resources"] if self._given["resources"] is not _UNSET else None

    @property
    def queue(self) -> str | None:
        return self.settings.get("queue")

    @property
    def cache(self) -> Any:
        """The cache argument as given ("disable" when none was)."""
        return self._given["cache"] if self._given["cache"] is not _UNSET else "disable"

    @property
    def reusable(self) -> Any:
        return self._given["reusable"] if self._given["reusable"] is not _UNSET else None

    @property
    def secrets(self) -> Any:
        return self._given["secrets"] if self._given["secrets"] is not _UNSET else None

    @property
    def interruptible(self) -> bool | None:
        return self._given["interruptible"] if self._given["interruptible"] is not _UNSET else None

    @property
    def env_vars(self) -> dict[str, str] | None:
        return self.settings.get("env_vars")

    @property
    def tasks(self) -> dict[str, TaskTemplate]:
        """Tasks declared in this environment, by full name (`env.task`)."""
        return dict(self._tasks)

    def add_dependency(self, *env: TaskEnvironment) -> None:
        for other in env:
            if other is self:
                raise ValueError("Cannot add self as a dependency")
            if not isinstance(other, TaskEnvironment):
                raise TypeError(f"Expected Environment, got {type(other)}")
            self.depends_on.append(other)

    def clone_with(
        self,
        name: str,
        image: Any = None,
        resources: Resources | None = None,
        env_vars: dict[str, str] | None = None,
        secrets: Any = None,
        depends_on: list[TaskEnvironment] | None = None,
        description: str | None = None,
        interruptible: bool | None = None,
        include: tuple[str, ...] | None = None,
        service_account: str | None = None,
        **kwargs: Any,
    ) -> TaskEnvironment:
        """A copy under a new name; arguments given replace this environment's, the rest are copied."""
        unexpected = sorted(set(kwargs) - {"cache", "reusable"})
        if unexpected:
            raise TypeError(f"Unexpected keyword arguments: {unexpected}")
        given = dict(self._given)
        for key, value in (("resources", resources), ("env_vars", env_vars), ("secrets", secrets),
                           ("interruptible", interruptible)):  # fmt: skip
            if value is not None:
                given[key] = value
        given.update(kwargs)
        queue = given.pop("queue")
        return TaskEnvironment(
            name, depends_on=depends_on if depends_on is not None else list(self.depends_on),
            description=description if description is not None else self.description,
            image=image if image is not None else self.image,
            include=include if include is not None else self.include,
            service_account=service_account if service_account is not None else self.service_account,
            queue=queue, **given,
        )  # fmt: skip

    @classmethod
    def from_task(
        cls, name: str, *tasks: TaskTemplate, depends_on: list[TaskEnvironment] | None = None
    ) -> TaskEnvironment:
        """An environment wrapping tasks that have none yet."""
        if any(t.env is not None for t in tasks):
            raise ValueError("Tasks cannot assigned to multiple environments.")
        env = cls(name, depends_on=depends_on)
        for t in tasks:
            t.env = env
            env._tasks[t.full_name] = t
        return env

    def task(
        self,
        _func: Callable[..., Any] | None = None,
        *,
        short_name: str | None = None,
        cache: Any = _UNSET,
        retries: Any = _UNSET,
        timeout: Any = _UNSET,
        docs: Any = None,
        pod_template: Any = None,
        report: bool = False,
        interruptible: bool | None = _UNSET,
        max_inline_io_bytes: int = _UNSET,
        queue: str | None = _UNSET,
        service_account: str | None = None,
        triggers: Any = (),
        links: Any = (),
        task_resolver: Any = None,
        entrypoint: bool = False,
        produces_artifacts: bool = False,
    ) -> Any:
        """Declare a task: `@env.task` or `@env.task(retries=3, timeout=30, ...)`."""
        arguments = {"cache": cache, "retries": retries, "timeout": timeout, "interruptible": interruptible,
                     "max_inline_io_bytes": max_inline_io_bytes, "queue": queue}  # fmt: skip
        settings = environment_settings(**arguments)
        arguments.update(pod_template=pod_template, service_account=service_account)
        given = {
            name: value for name, value in arguments.items() if value is not _UNSET and value is not None
        }

        if pod_template is not None and self.settings.get("reusable") not in (None, "off"):
            raise ValueError(
                f"pod_template cannot be set on a task of the reusable environment {self.name!r}: "
                "its workers share the environment's pod"
            )

        def decorate(func: Callable[..., Any]) -> TaskTemplate:
            if not callable(func):
                raise TypeError(f"@{self.name}.task decorates a function, got {type(func).__name__}")
            template = TaskTemplate(
                func=func,
                env=self,
                short_name=short_name or func.__name__,
                settings=settings,
                mark=_function_mark(func),
                report=report,
                given=given,
            )
            self._tasks[template.full_name] = template
            return template

        return decorate(_func) if _func is not None else decorate


def _declaring_file() -> str | None:
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
    return frame.f_code.co_filename if frame is not None else None


def _function_mark(func: Callable[..., Any]) -> Mark:
    code = getattr(func, "__code__", None)
    if code is None:
        return code_mark()
    return Mark(display_path(code.co_filename), code.co_firstlineno, 1)


def declared_environments() -> dict[str, TaskEnvironment]:
    """Environments declared in code so far, by name; two different ones with one name is an error."""
    out = {}
    for name, envs in ENVIRONMENTS.items():
        if len({id(e) for e in envs}) > 1 and len({repr(e.settings) for e in envs}) > 1:
            raise ValueError(
                f"Duplicate environment name {name!r} found. Each TaskEnvironment must have a unique name."
            )
        out[name] = envs[-1]
    return out


def short_name_of(function: Any) -> str | None:
    """The display `short_name` code gave the task bound to `function` (None: none, or not code-declared)."""
    for env in declared_environments().values():
        for template in env.tasks.values():
            if template.func is function:
                return template.display_name
    return None


def code_layers() -> CodeLayers:
    """Every environment and task declared in code so far, as resolution layers beneath the YAML file."""
    layers = CodeLayers()
    for name, env in declared_environments().items():
        layers.environments[name] = (env.settings, env.mark)
        for full, template in env.tasks.items():
            layers.tasks[full] = (template.fn, template.settings, template.mark)
            layers.root_dir = layers.root_dir or template.root_dir
    return layers


_warned_queues: set[str] = set()


def admit_code_queues(config: RunConfig) -> None:
    """Queues named only in code (`queue="serial-1"`) run unlimited, with one warning line each.

    Flyte's local mode ignores queue names, so a Flyte program may name queues no environments.yaml
    declares; declared queues keep their concurrency, and a queue named in the YAML only must exist.
    """
    named = set()
    for env in declared_environments().values():
        named.add(env.settings.get("queue"))
        named.update(template.settings.get("queue") for template in env.tasks.values())
    for name in sorted(n for n in named if n and n != DEFAULT_QUEUE and n not in config.queues):
        config.queues[name] = QueueSpec(name, None, "named in code only")
        if name not in _warned_queues:
            _warned_queues.add(name)
            print(f"flyte-decl: queue {name!r} is named in code but not declared in environments.yaml; "
                  "it runs with unlimited concurrency", file=sys.stderr)  # fmt: skip
