"""Render a ConfigDiff as aligned text, a Markdown PR comment, or JSON; the same data in each."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import Any

from flyte_decl import masking
from flyte_decl.config.resolve import Origin
from flyte_decl.render.explain import field_order
from flyte_decl.review.changes import Change, ConfigDiff
from flyte_decl.words import counted

MARKDOWN_MARKER = "<!-- flyte-decl diff -->"  # lets a CI job find and update its earlier comment
_KIND_ORDER = ("task", "environment", "queue", "capacity", "run")


def render_diff(diff: ConfigDiff, fmt: str) -> str:
    """`fmt` is "text", "markdown" or "json"; values of declared secrets show as `****`."""
    masker = masking.current()
    if masker:  # before the layout, which would show a secret's length
        masked = [
            dataclasses.replace(c, old=masker.value(c.old), new=masker.value(c.new)) for c in diff.changes
        ]
        diff = dataclasses.replace(diff, changes=masked)
    if fmt == "json":
        return json.dumps(diff_data(diff), indent=2)
    if fmt == "markdown":
        return _markdown(diff)
    return _text(diff)


def diff_data(diff: ConfigDiff) -> dict[str, Any]:
    """The diff as JSON-ready data: `{"old", "new", "changed", "changes", "added", "removed", ...}`."""
    return {
        "old": diff.old,
        "new": diff.new,
        "changed": diff.changed,
        "changes": [
            {
                "subject": c.subject,
                "kind": c.kind,
                "path": c.path,
                "old": c.old,
                "new": c.new,
                "source": c.source.as_dict() if c.source else None,
                "was": c.was.as_dict() if c.was else None,
            }
            for c in _ordered(diff.changes)
        ],
        "added": {"environments": diff.environments_added, "tasks": diff.tasks_added},
        "removed": {"environments": diff.environments_removed, "tasks": diff.tasks_removed},
        "renamed": [{"old": r.old, "new": r.new, "tasks": list(r.tasks)} for r in diff.renamed],
        "risks": [{"subject": r.subject, "kind": r.kind, "message": r.message} for r in diff.risks],
        "summary": summary(diff),
    }


def summary(diff: ConfigDiff) -> str:
    """One line: `2 task settings changed in 1 task; 1 environment renamed` or `no effective changes`."""
    if not diff.changed:
        return "no effective changes"
    parts = []
    kinds = Counter(c.kind for c in diff.changes)
    for kind in _KIND_ORDER:
        if kinds[kind]:
            part = counted(kinds[kind], f"{kind} setting") + " changed"
            if kind == "task":
                part += " in " + counted(len({c.subject for c in diff.changes if c.kind == "task"}), "task")
            parts.append(part)
    for count, noun, verb in (
        (len(diff.renamed), "environment", "renamed"),
        (len(diff.environments_added), "environment", "added"),
        (len(diff.environments_removed), "environment", "removed"),
        (len(diff.tasks_added), "task", "added"),
        (len(diff.tasks_removed), "task", "removed"),
        (len(diff.risks), "risk", "to review"),
    ):
        if count:
            parts.append(f"{counted(count, noun)} {verb}")
    return "; ".join(parts)


def _ordered(changes: list[Change]) -> list[Change]:
    """Tasks first, by name; within one, fn, then settings in the order `explain` shows them."""
    return sorted(
        changes,
        key=lambda c: (_KIND_ORDER.index(c.kind), c.subject, c.path != "fn", field_order(c.path)),
    )


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def _provenance(change: Change) -> tuple[str, Origin] | None:
    """Where the new value is set, or ("was ", where) a removed one was."""
    if change.source is not None:
        return "", change.source
    return ("was ", change.was) if change.was is not None else None


def _source(change: Change) -> str:
    """`overrides[0], environments.yaml:31`, or `was environment env2, HEAD:environments.yaml:12`."""
    found = _provenance(change)
    if found is None:
        return ""
    was, origin = found
    return was + (f"{origin.layer}, {origin.mark.short}" if origin.mark else origin.layer)


def _events(diff: ConfigDiff) -> list[tuple[str, str, str]]:
    """(verb, what, name) for additions and removals."""
    events: list[tuple[str, str, str]] = []
    for verb, what, names in (
        ("added", "environment", diff.environments_added),
        ("added", "task", diff.tasks_added),
        ("removed", "environment", diff.environments_removed),
        ("removed", "task", diff.tasks_removed),
    ):
        events += [(verb, what, name) for name in names]
    return events


# --------------------------------------------------------------------------- text


def _text(diff: ConfigDiff) -> str:
    rows = [
        (c.subject, c.path, f"{_show(c.old)} -> {_show(c.new)}", _source(c)) for c in _ordered(diff.changes)
    ]
    width = [max((len(r[i]) for r in rows), default=0) for i in range(3)]
    lines = [
        f"{subject:<{width[0]}}  {path:<{width[1]}}  {values:<{width[2]}}  ({source})".rstrip()
        if source
        else f"{subject:<{width[0]}}  {path:<{width[1]}}  {values}"
        for subject, path, values, source in rows
    ]
    lines += [f"renamed environment {r.old} -> {r.new} (tasks: {', '.join(r.tasks)})" for r in diff.renamed]
    lines += [f"{verb} {what} {name}" for verb, what, name in _events(diff)]
    if diff.risks:
        lines += ["", "risks:"] + [f"  {r.subject}: {r.message}" for r in diff.risks]
    if lines:
        lines.append("")
    lines.append(f"{diff.old} -> {diff.new}: {summary(diff)}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- markdown


def _code(text: str) -> str:
    """An inline code span that survives a Markdown table cell."""
    text = text.replace("\n", " ").replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_source(change: Change) -> str:
    found = _provenance(change)
    if found is None:
        return ""
    was, origin = found
    layer = origin.layer.replace("|", "\\|")
    return was + (f"{layer} ({_code(origin.mark.short)})" if origin.mark else layer)


def _markdown(diff: ConfigDiff) -> str:
    lines = [MARKDOWN_MARKER, f"### flyte-decl diff: {_code(diff.old)} → {_code(diff.new)}", ""]
    if not diff.changed:
        lines.append("No effective changes.")
        return "\n".join(lines)
    if diff.changes:
        lines += ["| Task | Setting | Old | New | Set by |", "| --- | --- | --- | --- | --- |"]
        for c in _ordered(diff.changes):
            old = _code(_show(c.old)) if c.old is not None else "*unset*"
            new = _code(_show(c.new)) if c.new is not None else "*unset*"
            source = _md_source(c)
            lines.append(f"| {_code(c.subject)} | {_code(c.path)} | {old} | {new} | {source} |")
        lines.append("")
    events = [
        f"- Renamed environment {_code(r.old)} → {_code(r.new)} (tasks {', '.join(map(_code, r.tasks))})"
        for r in diff.renamed
    ]
    events += [f"- {verb.capitalize()} {what} {_code(name)}" for verb, what, name in _events(diff)]
    if events:
        lines += [*events, ""]
    if diff.risks:
        lines += ["**Risks**", ""]
        lines += [f"- {_code(r.subject)}: {r.message}" for r in diff.risks]
        lines.append("")
    text = summary(diff)
    lines.append(text[:1].upper() + text[1:] + ".")
    return "\n".join(lines)
