"""Check a document: shape and values (the model), then references, cycles and likely mistakes.

Every finding is a located `Problem`; nothing stops at the first one.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from flyte_decl.config.model import Document
from flyte_decl.config.read import Document as ParsedDocument
from flyte_decl.config.read import Path_, dotted
from flyte_decl.config.schema import json_schema
from flyte_decl.problems import Problem, did_you_mean
from flyte_decl.quantity import QuantityError, cpu_limit_problem, memory_warning, parse_cpu, parse_memory
from flyte_decl.spec import DEFAULT_QUEUE

_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "none_required": "null",
}
_PATTERN_HINTS = {
    "environments": "use lower-case letters and digits joined by single '-' or '_', e.g. 'gpu-pool'",
    "tasks": "use lower-case letters and digits joined by single '-' or '_', e.g. 'train_model'",
    "queues": "use lower-case letters and digits joined by single '-' or '_', e.g. 'spot-pool'",
    "env_vars": "variable names use letters, digits and '_', not starting with a digit",
    "secrets": "secret names use letters, digits and '_', not starting with a digit",
    "fn": "write 'package.module:function' or 'package.module.function'",
    "memory": "write '2x' to double the limit or '+512Mi' to add to it",
    "gpu": "write a count, or an accelerator and a count such as 'A100:2'",
}


def check_shape(doc: ParsedDocument) -> list[Problem]:
    """Validate against the model; one problem per wrong place, with the model's knowledge as hints.

    Values that YAML 1.1 typed from text that means something else elsewhere (`0755` octal, `on`
    true, `1:30` ninety) are errors even where the model would accept what YAML made of them.
    """
    try:
        Document.model_validate(doc.data)
    except ValidationError as exc:
        problems = _translate(doc, exc.errors(include_url=False))
    else:
        problems = []
    if doc.texts:
        reported = {p.path for p in problems}
        problems += [p for p in _implicit_typing(doc) if p.path not in reported]
        problems.sort(key=lambda p: (p.mark.file, p.mark.line, p.mark.col))
    return problems


# Plain scalars whose YAML 1.1 value is what any reader would take them for.
_CANONICAL = re.compile(
    r"true|false|True|False|TRUE|FALSE|[-+]?(0|[1-9][0-9]*)|[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?"
)


def _implicit_typing(doc: ParsedDocument) -> Iterator[Problem]:
    """A problem for each plain scalar that YAML 1.1 typed from a form YAML 1.2 and people read otherwise."""
    for path, text in doc.texts.items():
        if text in ("", "~", "null", "Null", "NULL") or _CANONICAL.fullmatch(text):
            continue
        value = _value_at(doc.data, path)
        if isinstance(value, (bool, int, float)):
            shown = str(value).lower() if isinstance(value, bool) else repr(value)
            yield Problem(
                doc.mark(path),
                dotted(path),
                f"YAML 1.1 reads {text!r} as {shown}",
                f'write {shown} if you mean {shown}, or quote it: "{text}"',
            )


def _value_at(data: Any, path: Path_) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _written(doc: ParsedDocument, path: Path_, value: Any) -> str:
    """A value as the user wrote it (YAML 1.1 made `0755` into 493), for messages and hints."""
    text = doc.texts.get(path)
    return text if text is not None else str(value)


def _translate(doc: ParsedDocument, errors: list[Any]) -> list[Problem]:
    by_path: dict[Path_, list[Any]] = {}
    for error in errors:
        path, is_key = _document_path(doc.data, error["loc"], error["type"])
        by_path.setdefault((*path, "[key]") if is_key else path, []).append(error)
    # A union that failed in a nested place also reports its other branches at the parent: keep the nested one.
    deeper = {q[:end] for q in by_path for end in range(len(q))}  # every proper prefix: linear, not pairwise
    for shallow in [p for p in by_path if p in deeper]:
        del by_path[shallow]
    problems = []
    for raw_path, group in by_path.items():
        is_key = bool(raw_path) and raw_path[-1] == "[key]"
        path = raw_path[:-1] if is_key else raw_path
        problems.append(_problem(doc, path, is_key, group))
    return sorted(problems, key=lambda p: (p.mark.file, p.mark.line, p.mark.col))


def _document_path(data: Any, loc: tuple[Any, ...], kind: str) -> tuple[Path_, bool]:
    """Keep the parts of a pydantic location that name places in the document (not union branches)."""
    path: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        if part == "[key]":
            return tuple(path), True
        if (
            isinstance(node, dict)
            and part in node
            or isinstance(node, list)
            and isinstance(part, int)
            and part < len(node)
        ):
            path.append(part)
            node = node[part]
        elif kind == "missing" and index == len(loc) - 1:
            path.append(part)
    return tuple(path), False


def _problem(doc: ParsedDocument, path: Path_, is_key: bool, group: list[Any]) -> Problem:
    # Of a union's branches, a value of the right type that misses its pattern says the most.
    error = next((e for e in group if e["type"] == "string_pattern_mismatch"), group[0])
    kind = error["type"]
    where = doc.key_mark(path) if (is_key or kind == "extra_forbidden") else doc.mark(path)
    name = path[-1] if path else ""
    field = next((p for p in reversed(path) if isinstance(p, str)), "")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(path[:-1])
        return Problem(where, dotted(path), "unknown key", did_you_mean(str(name), allowed))
    if kind == "missing":
        return Problem(doc.mark(path[:-1]), dotted(path), f"missing required key {name!r}")
    if kind == "quantity":
        ctx = error.get("ctx", {})
        return Problem(where, dotted(path), ctx.get("message", error["msg"]), ctx.get("hint", ""))
    if kind == "string_pattern_mismatch":
        value = path[-1] if is_key else error["input"]
        container = path[-2] if is_key and len(path) > 1 else field
        what = "name" if is_key or container in ("environments", "tasks", "queues") else "value"
        return Problem(
            where,
            dotted(path),
            f"{value!r} is not a valid {what}",
            _PATTERN_HINTS.get(str(container), ""),
        )
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        text = doc.texts.get(path)
        got = repr(text) if text is not None and not _CANONICAL.fullmatch(text) else repr(error["input"])
        hint = ""
        if isinstance(error["input"], str):  # a near miss of one of the choices: say which
            near = did_you_mean(error["input"], re.findall(r"'([^']*)'", expected))
            hint = near if near.startswith("did you mean") else ""
        return Problem(where, dotted(path), f"must be {expected}, got {got}", hint)
    if kind in ("greater_than_equal", "greater_than"):
        return Problem(
            where, dotted(path), f"must be at least {error['ctx'].get('ge', 1)}, got {error['input']!r}"
        )
    wanted = [_TYPE_WORDS[e["type"]] for e in group if e["type"] in _TYPE_WORDS]
    if wanted:
        got = _type_name(error["input"])
        expected = " or ".join(dict.fromkeys(wanted))
        hint = ""
        if (
            field != "env_vars"
            and len(path) > 1
            and path[-2] == "env_vars"
            and not isinstance(error["input"], str)
        ):
            hint = f'quote it: "{_written(doc, path, error["input"])}"'
        elif path in doc.texts and ("a string" in wanted or not _CANONICAL.fullmatch(doc.texts[path])):
            hint = f'quote it: "{doc.texts[path]}"'
        elif field in ("env_vars", "secrets") and path and path[-1] == field:
            hint = "e.g. {LOG_LEVEL: debug}" if field == "env_vars" else "e.g. [API_TOKEN]"
        return Problem(where, dotted(path), f"must be {expected}, got {got}", hint)
    return Problem(where, dotted(path), error["msg"][0].lower() + error["msg"][1:])


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _allowed_keys(path: Path_) -> list[str]:
    """Property names the schema allows at `path` (walking $refs and nullable unions)."""
    schema = json_schema()
    node: Any = schema

    def deref(node: Any) -> Any:
        while True:
            if "$ref" in node:
                node = schema["$defs"][node["$ref"].split("/")[-1]]
            elif "anyOf" in node:
                objects = [deref(n) for n in node["anyOf"] if n.get("type") != "null"]
                node = next((n for n in objects if n.get("type") == "object"), objects[0] if objects else {})
            else:
                return node

    for part in path:
        node = deref(node)
        if isinstance(part, int):
            node = node.get("items", {})
        elif part in node.get("properties", {}):
            node = node["properties"][part]
        else:
            patterns = list(node.get("patternProperties", {}).values())
            node = patterns[0] if patterns else node.get("additionalProperties", {})
    return list(deref(node).get("properties", {}))


# --------------------------------------------------------------------------- references


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _settings_blocks(data: dict[str, Any]) -> Iterator[tuple[Path_, dict[str, Any]]]:
    """Every mapping that holds settings (defaults, environments, tasks, override sets), with its path."""
    yield ("defaults",), _mapping(data.get("defaults"))
    for env_name, env in _mapping(data.get("environments")).items():
        yield ("environments", env_name), _mapping(env)
        for task_name, task in _mapping(_mapping(env).get("tasks")).items():
            yield ("environments", env_name, "tasks", task_name), _mapping(task)
    overrides = data.get("overrides")
    for index, override in enumerate(overrides if isinstance(overrides, list) else []):
        yield ("overrides", index, "set"), _mapping(_mapping(override).get("set"))


def check_references(
    doc: ParsedDocument, code_environments: Collection[str] = (), code_tasks: Collection[str] = ()
) -> list[Problem]:
    """Undeclared environments and queues, cycles, request above limit, ambiguous units.

    Environments and tasks declared in code count as declared (a YAML task of one needs no `fn`).
    """
    data = doc.data
    problems: list[Problem] = []
    environments = {**dict.fromkeys(code_environments, {}), **_mapping(data.get("environments"))}
    queues = set(_mapping(data.get("queues"))) | {DEFAULT_QUEUE}

    def refer(path: Path_, name: Any, known: set[str] | dict[str, Any], what: str) -> None:
        if isinstance(name, str) and name not in known:
            hint = did_you_mean(name, known) or f"declare it under '{what}s'"
            problems.append(Problem(doc.mark(path), dotted(path), f"unknown {what} {name!r}", hint))

    for base, block in _settings_blocks(data):
        for key in ("queue", "task_queue"):
            refer((*base, key), block.get(key), queues, "queue")
        if "queue" in block and "task_queue" in block:
            problems.append(
                Problem(
                    doc.key_mark((*base, "task_queue")),
                    dotted((*base, "task_queue")),
                    "both 'queue' and its alias 'task_queue' are set",
                    "keep only 'queue'",
                )
            )
    problems += check_resources(doc)

    for env_name, env in environments.items():
        env = _mapping(env)
        refer(("environments", env_name, "extends"), env.get("extends"), environments, "environment")
        depends_on = env.get("depends_on")
        for index, dep in enumerate(depends_on if isinstance(depends_on, list) else []):
            refer(("environments", env_name, "depends_on", index), dep, environments, "environment")
        for task_name, task in _mapping(env.get("tasks")).items():
            if isinstance(task, dict) and not task.get("fn") and f"{env_name}.{task_name}" not in code_tasks:
                path = ("environments", env_name, "tasks", task_name)
                problems.append(
                    Problem(
                        doc.key_mark(path),
                        dotted((*path, "fn")),
                        "missing required key 'fn'",
                        "bind the task to a function, e.g. fn: 'hello:square'",
                    )
                )
    problems.extend(_cycles(doc, environments, "extends"))
    problems.extend(_cycles(doc, environments, "depends_on"))
    return problems


def check_resources(doc: ParsedDocument) -> list[Problem]:
    """Values the model cannot judge alone: request above limit, a cpu limit below what the kernel
    enforces, decimal memory units, an out-of-range `on_oom` growth."""
    problems: list[Problem] = []
    for base, block in _settings_blocks(doc.data):
        problems.extend(_resource_problems(doc, base, _mapping(block.get("resources"))))
        on_oom = _mapping(_mapping(block.get("retries")).get("on_oom"))
        grow = on_oom.get("memory")
        if isinstance(grow, str) and grow.startswith("+"):
            try:
                parse_memory(grow[1:], field="on_oom memory")
            except QuantityError as exc:
                path = (*base, "retries", "on_oom", "memory")
                problems.append(Problem(doc.mark(path), dotted(path), exc.message, exc.hint))
        elif isinstance(grow, str) and re.fullmatch(OOM_FACTOR, grow) and not _growth_factor_ok(grow[:-1]):
            path = (*base, "retries", "on_oom", "memory")
            problems.append(
                Problem(
                    doc.mark(path),
                    dotted(path),
                    f"growth factor {grow!r} is out of range",
                    f"write a factor above 1x and at most {MAX_GROWTH_FACTOR}x, e.g. 2x",
                )
            )
    return problems


def _resource_problems(doc: ParsedDocument, base: Path_, resources: dict[str, Any]) -> list[Problem]:
    problems = []
    for key in ("cpu", "memory"):
        pair = resources.get(key)
        if isinstance(pair, dict):
            request, limit = _amount(key, pair.get("request")), _amount(key, pair.get("limit"))
            # An unparsable side is reported where it is written; comparing it would add a false error.
            if request is not None and limit is not None and request > limit:
                path = (*base, "resources", key, "request")
                problems.append(
                    Problem(
                        doc.mark(path),
                        dotted(path),
                        f"request {pair['request']} is above the limit {pair['limit']}",
                        "a request cannot exceed its limit; lower the request or raise the limit",
                    )
                )
    cpu = resources.get("cpu")
    limit_path = (
        (*base, "resources", "cpu", "limit") if isinstance(cpu, dict) else (*base, "resources", "cpu")
    )
    limit = cpu.get("limit") if isinstance(cpu, dict) else cpu
    too_small = cpu_limit_problem(limit) if limit is not None else None
    if too_small:
        problems.append(Problem(doc.mark(limit_path), dotted(limit_path), too_small.message, too_small.hint))
    for path, value in _memory_values(base, resources):
        warning = memory_warning(value) if isinstance(value, str) else None
        if warning:
            problems.append(Problem(doc.mark(path), dotted(path), warning, severity="warning"))
    return problems


MAX_GROWTH_FACTOR = 1024
OOM_FACTOR = r"\d+(\.\d+)?x"


def _growth_factor_ok(text: str) -> bool:
    try:
        factor = Decimal(text)
    except InvalidOperation:
        return False
    return 1 < factor <= MAX_GROWTH_FACTOR


def _memory_values(base: Path_, resources: dict[str, Any]) -> Iterator[tuple[Path_, Any]]:
    memory = resources.get("memory")
    if isinstance(memory, dict):
        for key in ("request", "limit"):
            yield (*base, "resources", "memory", key), memory.get(key)
    else:
        yield (*base, "resources", "memory"), memory


def _amount(key: str, value: Any) -> Decimal | None:
    """The value in cores or bytes, or None when it is absent or not valid."""
    if value is None:
        return None
    try:
        return parse_cpu(value) if key == "cpu" else Decimal(parse_memory(value))
    except QuantityError:
        return None


def _cycles(doc: ParsedDocument, environments: dict[str, Any], key: str) -> list[Problem]:
    """Each cycle along `extends` or `depends_on`, reported once, at its first environment.

    Iterative depth-first search: a chain may be thousands of environments long.
    """

    def targets(name: str) -> list[str]:
        value = _mapping(environments.get(name)).get(key)
        items = value if isinstance(value, list) else [value]
        return [t for t in items if isinstance(t, str) and t in environments]

    problems, reported = [], set()
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []
    on_stack: dict[str, int] = {}  # name -> its index in stack

    for root in environments:
        if root in state:
            continue
        state[root] = 1
        stack.append(root)
        on_stack[root] = 0
        pending = [iter(targets(root))]
        while pending:
            target = next(pending[-1], None)
            if target is None:
                pending.pop()
                name = stack.pop()
                del on_stack[name]
                state[name] = 2
            elif state.get(target) == 1:
                cycle = stack[on_stack[target] :] + [target]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    path = ("environments", cycle[0], key)
                    problems.append(
                        Problem(
                            doc.mark(path),
                            dotted(path),
                            f"{key} cycle: {' -> '.join(_cut(cycle))}",
                            f"remove one '{key}' link of the cycle",
                        )
                    )
            elif target not in state:
                state[target] = 1
                on_stack[target] = len(stack)
                stack.append(target)
                pending.append(iter(targets(target)))
    return problems


def _cut(cycle: list[str]) -> list[str]:
    """A long cycle shown by its ends, so that the message stays one readable line."""
    return cycle if len(cycle) <= 8 else [*cycle[:4], f"... {len(cycle) - 7} more ...", *cycle[-3:]]
