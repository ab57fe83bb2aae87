"""Render a resolved task's effective settings with the provenance of each value."""

from __future__ import annotations

import json
from typing import Any

from flyte_decl import masking
from flyte_decl.backends.choice import BackendChoice
from flyte_decl.config.resolve import ResolvedTask

_ORDER = (
    "resources",
    "queue",
    "env_vars",
    "secrets",
    "timeout",
    "retries",
    "max_inline_io_bytes",
    "cache",
    "reusable",
    "interruptible",
    "image",
)


IMAGE_NOTE = "image is not used by local runs (they use this Python); `flyte-decl export flyte` deploys it"


def field_order(path: str) -> tuple[int, str]:
    head = path.split(".", 1)[0]
    # Requests read before limits.
    return (_ORDER.index(head) if head in _ORDER else len(_ORDER), path.replace(".request", ".!"))


def explain_data(
    task: ResolvedTask, overrides: list[dict[str, Any]] | None = None, backend: BackendChoice | None = None
) -> dict[str, Any]:
    """The task's fields as JSON-ready data; values of declared secrets show as `****`.

    With `backend` (the config's `run:` section chose one), `run` says which and where it is set."""
    masker = masking.current()
    data: dict[str, Any] = {
        "task": task.name,
        "environment": task.environment,
        "fn": task.fn,
        "declared_at": task.mark.short if task.mark else None,
        "fields": [
            {"path": path, "value": masker.value(value) if masker else value, **origin.as_dict()}
            for path, (value, origin) in sorted(task.fields.items(), key=lambda item: field_order(item[0]))
        ],
    }
    notes = []
    if any(path == "image" or path.startswith("image.") for path in task.fields):
        notes.append(IMAGE_NOTE)
    if backend is not None:
        data["run"] = {"backend": backend.name, "address": backend.address, "source": backend.source}
        at = f" at {backend.address}" if backend.address else ""
        notes.append(f"runs on {backend.name}{at}, set by {backend.source} (--backend overrides it)")
    if notes:
        data["notes"] = notes
    if overrides is not None:
        data["overrides"] = overrides
    return data


def render_explain(
    task: ResolvedTask,
    fmt: str,
    overrides: list[dict[str, Any]] | None = None,
    backend: BackendChoice | None = None,
) -> str:
    data = explain_data(task, overrides, backend)
    if fmt == "json":
        return json.dumps(data, indent=2)
    rows = [
        (f["path"], _show(f["value"]), f["layer"] + (f" ({f['file']}:{f['line']})" if f["line"] else ""))
        for f in data["fields"]
    ]
    width = [max([len(r[i]) for r in rows] + [5]) for i in range(2)]
    where = f"  declared at {data['declared_at']}" if data["declared_at"] else ""
    lines = [f"{task.name}  fn={task.fn}{where}", ""]
    lines += [f"  {p:<{width[0]}}  {v:<{width[1]}}  {o}" for p, v, o in rows]
    lines += [f"  note: {note}" for note in data.get("notes", [])]
    if overrides is not None:
        lines.append("")
        if not overrides:
            lines.append("  no overrides match this task")
        for entry in overrides:
            selector = ", ".join(f"{k}={v}" for k, v in (entry["match"] or {}).items())
            lines.append(f"  overrides[{entry['index']}] matches ({entry['at']}): {selector}")
    return "\n".join(lines)


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
