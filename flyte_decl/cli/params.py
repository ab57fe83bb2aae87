"""Task parameters on the command line, from the function's signature and type hints.

    async def hello_wf(data: str = "hello", lt: list[int] | None = None) -> ...
    flyte-decl run hello_wf --data hi --lt '[1,2,3]'

Strings are taken as written; other types are read as JSON (falling back to the raw text) and
checked by pydantic against the annotation. Booleans are flags: `--x/--no-x`.
"""

from __future__ import annotations

import datetime
import enum
import inspect
import json
import re
import typing
from collections.abc import Callable
from typing import Any

import click
from pydantic import TypeAdapter, ValidationError

from flyte_decl.problems import UsageError


def _annotation(fn: Callable[..., Any], name: str, parameter: inspect.Parameter) -> Any:
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to the raw annotation
        hints = {}
    annotation = hints.get(name, parameter.annotation)
    return Any if annotation is inspect.Parameter.empty else annotation


def _type_label(annotation: Any) -> str:
    if annotation is Any:
        return "VALUE"
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def task_command(
    task_name: str, fn: Callable[..., Any], on_values: Callable[[dict[str, Any]], Any]
) -> click.Command:
    """A click command whose options are `fn`'s parameters; calls `on_values(inputs)` once parsed."""
    params: list[click.Parameter] = []
    adapters: dict[str, tuple[Any, TypeAdapter[Any]]] = {}
    for name, parameter in inspect.signature(fn).parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        annotation = _annotation(fn, name, parameter)
        required = parameter.default is inspect.Parameter.empty
        default = None if required else parameter.default
        flag = "--" + name
        if annotation is bool:
            params.append(
                click.Option(
                    [f"{flag}/--no-{name}"], default=default, required=required, show_default=not required
                )
            )
            continue
        adapters[name] = (annotation, TypeAdapter(annotation))
        shown = repr(default) if not required and default is not None else None
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            shown = f"{shown}; " if shown else ""
            shown += "one of " + ", ".join(annotation.__members__)
            params.append(click.Option([flag], type=str, required=required, default=None,
                                       metavar=annotation.__name__.upper(), help=shown))  # fmt: skip
            adapters[name] = (annotation, TypeAdapter(annotation))
            continue
        params.append(
            click.Option(
                [flag],
                type=str,
                required=required,
                default=None,
                metavar=_type_label(annotation).upper(),
                help=f"default {shown}" if shown else ("required" if required else None),
            )
        )

    def callback(**raw: Any) -> Any:
        inputs: dict[str, Any] = {}
        for name, value in raw.items():
            if value is None:
                continue  # not given: the function's own default applies
            if name in adapters:
                annotation, adapter = adapters[name]
                inputs[name] = _convert(name, value, annotation, adapter)
            else:
                inputs[name] = value
        return on_values(inputs)

    doc = inspect.getdoc(fn) or ""
    return click.Command(task_name, params=params, callback=callback, help=doc, no_args_is_help=False)


def _convert(name: str, text: str, annotation: Any, adapter: TypeAdapter[Any]) -> Any:
    if annotation is str:
        return text
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum) and text in annotation.__members__:
        return annotation[text]  # a member's name, as `flyte run` takes it (its value works too)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        for candidate in (text, _json_or_text(text)):
            try:
                return annotation(candidate)
            except ValueError:
                pass
        names = ", ".join(annotation.__members__)
        values = ", ".join(repr(m.value) for m in annotation)
        raise UsageError(f"--{name}: expected one of {names} (or a value: {values}), got {text!r}")
    value: Any = _flyte_time(text, annotation)
    if value is None:
        try:
            value = json.loads(text)
        except ValueError:
            value = text
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "".join(f"[{p}]" for p in first["loc"])
        raise UsageError(
            f"--{name}{where}: {first['msg'].lower()}, got {text!r} "
            f"(expected {_type_label(annotation)}; lists and mappings are JSON, e.g. '[1,2]')"
        ) from None


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


_SHIFTED = re.compile(r"^(.+?)\s+([-+])\s+(.+)$")  # Flyte's "<datetime> - <duration>"
_CLOCK = re.compile(r"^(?:(\d+):)?(\d+)$")  # "1:24" is 1 min 24 s
_UNITS = re.compile(r"^(\d+)\s*(day|hour|minute|second)s?$")


def _flyte_time(text: str, annotation: Any) -> datetime.datetime | datetime.timedelta | None:
    """What `flyte run` reads that pydantic does not: `now`, `today` and `<datetime> - <duration>` for
    a datetime; `1:24`, `10 minutes` and `[1 hour | 30 minutes]` for a timedelta. None: not one of them."""
    if annotation is datetime.datetime:
        return _flyte_datetime(text.strip())
    if annotation is datetime.timedelta:
        return _flyte_timedelta(text.strip())
    return None


def _flyte_datetime(text: str) -> datetime.datetime | None:
    now = datetime.datetime.now()
    if text in ("now", "today"):
        return now if text == "now" else datetime.datetime(now.year, now.month, now.day)
    shifted = _SHIFTED.match(text)
    if shifted is None:
        return None
    base, sign, duration = shifted.groups()
    try:
        start = _flyte_datetime(base) or TypeAdapter(datetime.datetime).validate_python(base)
        delta = _flyte_timedelta(duration) or TypeAdapter(datetime.timedelta).validate_python(duration)
    except ValidationError:
        return None  # the whole text is then validated, and refused, as any other
    return start - delta if sign == "-" else start + delta


def _flyte_timedelta(text: str) -> datetime.timedelta | None:
    total = datetime.timedelta()
    for part in (part.strip().lower() for part in text.strip("[]").split("|")):
        clock, units = _CLOCK.match(part), _UNITS.match(part)
        if clock and ":" in part:
            total += datetime.timedelta(minutes=int(clock.group(1) or 0), seconds=int(clock.group(2)))
        elif units:
            total += datetime.timedelta(**{units.group(2) + "s": int(units.group(1))})
        else:
            return None
    return total
