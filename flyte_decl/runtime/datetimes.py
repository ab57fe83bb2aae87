"""Datetimes across the action boundary as Flyte carries them: as UTC timestamps.

Flyte's type engine turns a `datetime` input or output into a protobuf Timestamp and back into a
UTC-aware datetime: an aware value comes back converted to UTC, a naive one is taken as UTC. That holds
for values passed directly and inside lists, dicts and tuples (Flyte's collection types); a datetime
inside a dataclass or pydantic model travels as an ISO string and keeps its offset, or its naivety, and
`date` and `timedelta` values are unchanged. `dump_payload` applies the same rule, so a task sees the
same values under flyte-decl as under Flyte. In JSON (`run --json`, the store, the console) they are
ISO 8601 text (`json_default`).

    as_flyte_carries((datetime(2024, 1, 1, 12),), {})
    # ((datetime(2024, 1, 1, 12, tzinfo=timezone.utc),), {})
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

# Every pickle that holds a datetime names its class; one without this text has none to convert.
MARK = b"datetime"


def with_defaults(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """`kwargs` plus each parameter default of `function` that holds a datetime and is not given, as
    Flyte carries it: a default reaches the task through the type engine too (UTC-aware)."""
    defaults = _datetime_defaults(function)
    if not defaults:
        return kwargs
    given = inspect.signature(function).bind_partial(*args, **kwargs).arguments
    return {**kwargs, **{name: value for name, value in defaults.items() if name not in given}}


def prepare_defaults(function: Callable[..., Any]) -> None:
    """Work out now what `with_defaults` needs for `function`, e.g. in a fork server before it forks.

    Each action is a fork of the server: what the server has cached, no action computes again.
    """
    _datetime_defaults(function)


@functools.lru_cache(maxsize=4096)
def _datetime_defaults(function: Callable[..., Any]) -> dict[str, Any]:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return {}
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {
        p.name: as_flyte_carries(p.default)
        for p in parameters
        if p.kind in keyword and p.default is not p.empty and _holds_datetime(p.default)
    }


def _holds_datetime(value: Any) -> bool:
    kind = type(value)
    if kind is datetime:
        return True
    if kind is list or isinstance(value, tuple):
        return any(_holds_datetime(item) for item in value)
    if kind is dict:
        return any(_holds_datetime(item) for item in value.values())
    return False


def as_flyte_carries(value: Any) -> Any:
    """`value` with each datetime in it, directly or in lists, dicts and tuples, made UTC-aware."""
    kind = type(value)
    if kind is datetime:
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    if kind is list:
        return [as_flyte_carries(item) for item in value]
    if kind is dict:
        return {key: as_flyte_carries(item) for key, item in value.items()}
    if isinstance(value, tuple):
        items = [as_flyte_carries(item) for item in value]
        return value._make(items) if hasattr(value, "_make") else kind(items)  # a NamedTuple's fields, too
    return value


def json_default(value: Any) -> str:
    """`json.dumps(default=...)` for time values: datetimes, dates and times as ISO 8601
    ("2024-01-01T12:00:00+00:00"), timedeltas as ISO 8601 durations ("P1DT2H"); TypeError otherwise."""
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        # Imported here: every fork server and action imports this module, and pydantic_core adds
        # about 4 MiB to the memory each fork copies the page tables of.
        from pydantic_core import to_jsonable_python

        text: str = to_jsonable_python(value)
        return text
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
