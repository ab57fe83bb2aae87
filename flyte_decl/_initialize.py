"""`flyte.init`, `init_from_config`, `init_from_api_key`, `init_in_cluster`: accepted; runs stay local.

Flyte 2 programs call one of these in `__main__` to reach a control plane. flyte-decl has none: every
run is local, as Flyte's own local mode is when no endpoint is configured. Each function accepts
Flyte's arguments (and `await f.aio(...)`), honours `log_level`, and prints one notice line on stderr
when an endpoint, API key or config file asks for a remote control plane::

    flyte.init_from_config()                  # no file found: silent, the run is local
    flyte.init(endpoint="dns:///flyte.example.com")
    # flyte-decl: flyte.init(endpoint=...) asks for a remote control plane; runs stay local
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

_noticed: set[str] = set()


def _notice(call: str, reason: str) -> None:
    """One line on stderr per call site kind, so a loop calling init does not flood the output."""
    if call in _noticed:
        return
    _noticed.add(call)
    print(f"flyte-decl: {call}({reason}) asks for a remote control plane; runs stay local", file=sys.stderr)


def _log_level(level: int | None) -> None:
    if level is not None:
        logging.getLogger().setLevel(level)


class _SyncAio:
    """A sync function with an async `.aio` twin, as Flyte's `@syncify` functions are."""

    def __init__(self, func: Callable[..., None]) -> None:
        self._func = func
        self.__name__ = func.__name__
        self.__doc__ = func.__doc__

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self._func(*args, **kwargs)

    async def aio(self, *args: Any, **kwargs: Any) -> None:
        self._func(*args, **kwargs)


def _init(
    org: str | None = None,
    project: str | None = None,
    domain: str | None = None,
    root_dir: Path | None = None,
    log_level: int | None = None,
    *,
    endpoint: str | None = None,
    api_key: str | None = None,
    **_settings: Any,
) -> None:
    """Flyte's `init`: nothing to connect to locally; notice if `endpoint` or `api_key` is given."""
    _log_level(log_level)
    if endpoint:
        _notice("flyte.init", "endpoint=...")
    elif api_key:
        _notice("flyte.init", "api_key=...")


def _init_from_config(
    path_or_config: str | Path | Any = None,
    root_dir: Path | None = None,
    log_level: int | None = None,
    **_settings: Any,
) -> None:
    """Flyte's `init_from_config`: a notice when a config file is given or found (FLYTECTL_CONFIG, ...)."""
    _log_level(log_level)
    if path_or_config is not None:
        _notice("flyte.init_from_config", repr(str(path_or_config)) if isinstance(path_or_config, (str, Path))
                else "a config")  # fmt: skip
        return
    found = _found_config()
    if found is not None:
        _notice("flyte.init_from_config", f"found {found}")


def _found_config() -> str | None:
    """The Flyte connection config file that Flyte's `config.auto()` would read, if any has an endpoint."""
    candidates = [Path("config.yaml"), Path(".flyte/config.yaml")]
    candidates += [
        Path(os.environ[name]) for name in ("UCTL_CONFIG", "FLYTECTL_CONFIG") if os.environ.get(name)
    ]
    candidates += [Path.home() / ".union/config.yaml", Path.home() / ".flyte/config.yaml"]
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        if "endpoint" in text:
            return str(path)
    if os.environ.get("FLYTE_ADMIN_ENDPOINT"):
        return "FLYTE_ADMIN_ENDPOINT"
    return None


def _init_from_api_key(api_key: str | None = None, **settings: Any) -> None:
    """Flyte's `init_from_api_key`: always a remote control plane, so always the notice."""
    _log_level(settings.get("log_level"))
    _notice("flyte.init_from_api_key", "api_key=...")


def _init_in_cluster(org: str | None = None, project: str | None = None, domain: str | None = None,
                     **settings: Any) -> None:  # fmt: skip
    """Flyte's `init_in_cluster`: meaningful inside a Flyte cluster only."""
    _log_level(settings.get("log_level"))
    _notice("flyte.init_in_cluster", "")


def _init_passthrough(*_args: Any, **settings: Any) -> None:
    """Flyte's `init_passthrough`: as `init`."""
    _log_level(settings.get("log_level"))


init = _SyncAio(_init)
init_from_config = _SyncAio(_init_from_config)
init_from_api_key = _SyncAio(_init_from_api_key)
init_in_cluster = _SyncAio(_init_in_cluster)
init_passthrough = _SyncAio(_init_passthrough)
