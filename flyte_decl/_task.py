"""`TaskTemplate`: a declared task. Outside a run it is the plain function; inside an action, a call
submits a new action in the task's own environment (through the submitter the runtime installs).

    await square(5)                                              # in an action: a new action in env2
    await square.override(resources=Resources(memory="1Gi"))(5)  # layer 6, merged field by field
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from flyte_decl.config.read import display_path
from flyte_decl.problems import ConfigLoadError, Mark, Problem

if TYPE_CHECKING:
    from flyte_decl._task_environment import TaskEnvironment

_PACKAGE_DIR = str(Path(__file__).resolve().parent)


class Submitter(Protocol):
    """What the runtime installs inside an action so task calls become new actions."""

    def submit(self, task: TaskTemplate, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any: ...

    async def submit_async(
        self, task: TaskTemplate, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any: ...


_submitter: Submitter | None = None


def install_submitter(submitter: Submitter | None) -> None:
    """Called by the runtime in an action process (None uninstalls)."""
    global _submitter
    _submitter = submitter


def code_mark() -> Mark:
    """Where user code called into this package (file relative to the working directory, line)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return Mark("<code>")
    return Mark(display_path(frame.f_code.co_filename), frame.f_lineno, 1)


_DECLARATION_MODULES = tuple(
    str(Path(_PACKAGE_DIR) / name) for name in ("_task_environment.py", "_resources.py", "_task.py")
)


def declaration_error(exc: BaseException) -> ConfigLoadError | None:
    """A ValueError or TypeError that a declaration (`TaskEnvironment(name="My Env")`) raised while user
    code was imported, as one located error at the user's line; None for any other exception.

    The exception keeps Flyte's type and text for code that catches it; the command line shows it as
    `FILE:LINE:COL: error: message` (exit 2), as it shows a wrong value in environments.yaml.
    """
    if not isinstance(exc, (ValueError, TypeError)):
        return None
    entries, tb = [], exc.__traceback__
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    if not entries or entries[-1].tb_frame.f_code.co_filename not in _DECLARATION_MODULES:
        return None
    # The user's line: the innermost frame outside the package and the code it generates (`<string>`
    # is a dataclass's __init__).
    outside = (
        t for t in reversed(entries) if not t.tb_frame.f_code.co_filename.startswith((_PACKAGE_DIR, "<"))
    )
    caller = next(outside, None)
    if caller is None:
        return None
    mark = Mark(display_path(caller.tb_frame.f_code.co_filename), caller.tb_lineno, 1)
    return ConfigLoadError([Problem(mark, "", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)])


def module_name(func: Callable[..., Any]) -> str:
    """The importable module name of a function; `python hello.py` makes it "__main__", we need "hello"."""
    name = func.__module__
    if name == "__main__":
        filename = getattr(sys.modules["__main__"], "__file__", None)
        if filename:
            return Path(filename).stem
    return name


def _declared(name: str) -> Any:
    """Flyte's task attribute `name` as a property (the value declared in code, see _task_attributes)."""

    def get(self: TaskTemplate) -> Any:
        from flyte_decl._task_attributes import declared

        return declared(self, name)

    return property(
        get, doc=f"Flyte's `task.{name}`, as declared in code (environments.yaml applies at run time)."
    )


@dataclass
class TaskTemplate:
    """A task declared with `@env.task`; call it like the function."""

    func: Callable[..., Any]
    env: TaskEnvironment | None
    short_name: str  # Flyte's display label; the identity is the function's name, as in Flyte
    settings: dict[str, Any] = field(default_factory=dict)  # decorator arguments (layer 4, beneath YAML)
    call_settings: dict[str, Any] = field(default_factory=dict)  # .override() arguments (layer 6)
    mark: Mark = field(default_factory=lambda: Mark("<code>"))
    report: bool = False  # `@env.task(report=True)`: `flyte.report` writes the action's report.html
    given: dict[str, Any] = field(
        default_factory=dict
    )  # decorator and override arguments as given (attributes)

    # Flyte's task attributes: the task's own argument, else its environment's, else Flyte's default.
    resources = _declared("resources")
    cache = _declared("cache")
    retries = _declared("retries")
    timeout = _declared("timeout")
    reusable = _declared("reusable")
    pod_template = _declared("pod_template")
    interruptible = _declared("interruptible")
    queue = _declared("queue")
    env_vars = _declared("env_vars")
    secrets = _declared("secrets")
    max_inline_io_bytes = _declared("max_inline_io_bytes")
    service_account = _declared("service_account")
    plugin_config = _declared("plugin_config")

    def __post_init__(self) -> None:
        self.__name__ = getattr(self.func, "__name__", self.short_name)
        self.__doc__ = self.func.__doc__
        self.__wrapped__ = self.func

    @property
    def name(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        name = getattr(self.func, "__name__", self.short_name)
        return f"{self.env.name}.{name}" if self.env else name

    @property
    def display_name(self) -> str | None:
        """The `short_name` when it is not the function's own name: a label shown beside the action's."""
        return self.short_name if self.short_name != getattr(self.func, "__name__", None) else None

    @property
    def fn(self) -> str:
        """The dotted path the runtime imports: "module:qualname" (a script run as __main__ by its file name)."""
        return f"{module_name(self.func)}:{self.func.__qualname__}"

    @property
    def root_dir(self) -> Path:
        """The folder to put on sys.path so that `fn` imports: above the module's top-level package."""
        filename = getattr(sys.modules.get(self.func.__module__), "__file__", None)
        if filename is None:
            return Path.cwd()
        path = Path(filename).resolve().parent
        for _ in range(module_name(self.func).count(".")):
            path = path.parent
        return path

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _submitter is None:
            return self.func(*args, **kwargs)  # outside a run: just the function, as in Flyte
        if self.is_async:
            return _submitter.submit_async(self, args, kwargs)
        return _submitter.submit(self, args, kwargs)

    async def aio(self, *args: Any, **kwargs: Any) -> Any:
        """Await a task from async code, sync tasks included."""
        if _submitter is None:
            result = self.func(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result
        return await _submitter.submit_async(self, args, kwargs)

    def override(self, **kwargs: Any) -> TaskTemplate:
        """A copy whose calls apply these settings on top of every layer below run level.

        Unlike Flyte, settings merge field by field (overriding memory keeps the environment's cpu)
        and falsy values really apply (`retries=0`, `queue=None` reset). As in Flyte, `short_name`
        is a display label only, and a task of a reusable environment changes its resources,
        env_vars, secrets or service_account only together with `reusable="off"` (ValueError).
        Flyte's arguments with no local meaning (`pod_template`, `links`, ...) are accepted.
        """
        from flyte_decl._task_attributes import with_arguments
        from flyte_decl._task_environment import environment_settings

        forbidden = {"name", "image", "docs", "interface"} & set(kwargs)
        if forbidden:
            raise ValueError(f"{sorted(forbidden)[0].capitalize()} cannot be overridden")
        unknown = sorted(set(kwargs) - _OVERRIDABLE - _NOT_LOCAL - {"short_name"})
        if unknown:
            raise TypeError(f"override() got an unexpected keyword argument {unknown[0]!r}")
        self._check_reuse_override(kwargs)
        label = kwargs.pop("short_name", None)
        given = with_arguments(self.given, kwargs)
        for name in _NOT_LOCAL:
            kwargs.pop(name, None)
        settings = _merge(self.call_settings, environment_settings(**kwargs))
        return replace(self, call_settings=settings, short_name=label or self.short_name, given=given)

    def _check_reuse_override(self, kwargs: dict[str, Any]) -> None:
        """Flyte's rule: a reusable task's pod-shaping settings change only with reuse turned off."""
        reusable = kwargs.get("reusable", _MISSING)
        changed = sorted({"resources", "env_vars", "secrets", "service_account"} & set(kwargs))
        if not changed or reusable == "off":
            return
        if reusable is not _MISSING and reusable is not None:
            raise ValueError(
                f"Cannot override {changed[0]} together with a new reuse policy: a pool's workers all share "
                f"one {changed[0]} (set reusable='off' to change {changed[0]} for this call)"
            )
        if self.reusable is not None:
            raise ValueError(
                f"Cannot override {changed[0]} when reusable is set: a reusable task's {changed[0]} come from "
                "its environment (set reusable='off' in the same override to change them)"
            )

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function itself in this action, with no new action (Flyte's `forward`)."""
        return self.func(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        # A task passed as an input travels as where to import it from, plus its override settings.
        return (
            _template_at,
            (module_name(self.func), self.func.__qualname__, self.call_settings, self.short_name),
        )

    with_overrides = override


# Flyte's class of the task `@env.task` makes of a function, sync or async (`flyte._task`).
AsyncFunctionTaskTemplate = TaskTemplate


_MISSING: Any = object()
_OVERRIDABLE = {"resources", "env_vars", "secrets", "cache", "retries", "timeout", "max_inline_io_bytes", "queue",
                "interruptible", "reusable"}  # fmt: skip
# Flyte's override arguments that mean nothing locally: accepted and left out.
_NOT_LOCAL = {"pod_template", "service_account", "entrypoint", "produces_artifacts", "links", "plugin_config",
              "report", "triggers"}  # fmt: skip


def _template_at(module: str, qualname: str, call_settings: dict[str, Any], short_name: str) -> Any:
    """The declared task at `module:qualname`, with these override settings (how a task unpickles)."""
    import importlib

    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    if isinstance(target, TaskTemplate) and (call_settings or short_name != target.short_name):
        target = replace(target, call_settings=call_settings, short_name=short_name)
    return target


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
